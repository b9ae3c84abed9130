"""Audio tower: decoding, a log-mel front end and a small CNN into the shared space.

The tower is trained against a frozen text tower with the CLIP contrastive loss
(Radford et al., 2021), so spoken words land near their written form.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly
from torch import nn

from embedspace.models.config import AudioConfig

AudioInput = str | Path | tuple[np.ndarray, int]


class AudioDecodeError(ValueError):
    """A file or array that cannot be used as audio."""


def load_audio(source: AudioInput, sample_rate: int) -> np.ndarray:
    """Decode ``source`` (a file path, or ``(samples, rate)``) to mono float32 at ``sample_rate``.

    Returns:
        ``(T,)`` float32 samples in [-1, 1].

    Raises:
        AudioDecodeError: the file is missing, empty, not audio, or holds no samples.
    """
    if isinstance(source, tuple):
        samples, rate = source
        samples = np.asarray(samples, dtype=np.float32)
        name = "audio array"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise AudioDecodeError(f"{path}: no such audio file")
        if path.stat().st_size == 0:
            raise AudioDecodeError(f"{path}: the file is empty (0 bytes); give a WAV, FLAC or OGG file")
        try:
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
        except Exception as error:  # soundfile raises its own LibsndfileError and RuntimeError
            raise AudioDecodeError(f"{path}: not a readable audio file ({error}); give a WAV, FLAC or OGG file") from None
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1 or samples.size == 0:
        raise AudioDecodeError(f"{name}: holds no audio samples")
    if not np.isfinite(samples).all():
        raise AudioDecodeError(f"{name}: contains NaN or infinite samples")
    if rate <= 0:
        raise AudioDecodeError(f"{name}: invalid sample rate {rate}")
    if rate != sample_rate:
        divisor = math.gcd(int(rate), int(sample_rate))
        samples = resample_poly(samples, sample_rate // divisor, int(rate) // divisor).astype(np.float32)
    return samples.astype(np.float32, copy=False)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad ``(T,)`` samples to ``(length,)``, keeping the start."""
    if samples.shape[0] >= length:
        return samples[:length]
    return np.pad(samples, (0, length - samples.shape[0]))


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK-style mel filters, ``(n_mels, n_fft // 2 + 1)`` float32."""

    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    frequencies = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(20.0)), hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (frequencies[None, :] - lower) / (centre - lower)
    falling = (upper - frequencies[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


class LogMel(nn.Module):
    """Waveform ``(B, T)`` float32 -> log-mel spectrogram ``(B, 1, n_mels, frames)``."""

    def __init__(self, config: AudioConfig):
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        filters = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels)
        self.register_buffer("filters", torch.from_numpy(filters), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        spectrum = torch.stft(waveform, self.n_fft, self.hop_length, window=self.window, return_complex=True)
        power = spectrum.abs().pow(2)  # (B, F, frames)
        mel = torch.matmul(self.filters, power)  # (B, n_mels, frames)
        return torch.log(mel + 1e-6).unsqueeze(1)


class AudioTower(nn.Module):
    """Log-mel front end, a strided stem and conv stages with batch norm, mean+max pooling, projection to ``embed_dim``.

    ``config.channels[0]`` is the stem's width; each further entry is a stage of two 3×3
    convolutions followed by 2×2 max pooling.
    """

    def __init__(self, config: AudioConfig, embed_dim: int):
        super().__init__()
        self.config = config
        self.front = LogMel(config)
        self.norm = nn.BatchNorm2d(1)
        first = config.channels[0]
        stages = [nn.Conv2d(1, first, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(first), nn.GELU()]  # halves mels and frames
        in_channels = first
        for out_channels in config.channels[1:]:
            stages += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.GELU(),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.GELU(),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.project = nn.Sequential(nn.Linear(2 * in_channels, in_channels, bias=False), nn.GELU(), nn.Linear(in_channels, embed_dim, bias=False))

    @property
    def num_samples(self) -> int:
        return int(self.config.sample_rate * self.config.max_seconds)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` float32 waveform at ``config.sample_rate`` -> ``(B, embed_dim)`` (not normalised)."""
        features = self.stages(self.norm(self.front(waveform)))  # (B, C, mels', frames')
        features = features.mean(dim=2)  # (B, C, frames')
        pooled = torch.cat([features.mean(dim=2), features.amax(dim=2)], dim=1)  # (B, 2C)
        return self.project(pooled)


def waveform_batch(sources: list[AudioInput], config: AudioConfig) -> torch.Tensor:
    """Decode, resample and fit a list of audio inputs to ``(B, T)`` float32."""
    length = int(config.sample_rate * config.max_seconds)
    rows = [fit_length(load_audio(source, config.sample_rate), length) for source in sources]
    return torch.from_numpy(np.stack(rows))

