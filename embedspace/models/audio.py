"""Audio tower: decoding, a log-mel front end and a small CNN into the shared space.

The tower is trained against a frozen text tower with the CLIP contrastive loss
(Radford et al., 2021), so spoken words land near their written form.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
import torch
from scipy.signal import resample_poly
from torch import nn

from embedspace.errors import AudioDecodeError
from embedspace.limits import DEFAULT_LIMITS, InputLimits
from embedspace.models.config import AudioConfig

AudioInput = str | Path | tuple[np.ndarray, int]

#: Frames decoded per block while mixing a file down to mono (a block holds at most about 2 MB).
_BLOCK_VALUES = 1 << 18

#: Largest denominator of the resampling ratio; odd rates are resampled by the nearest ratio within it.
_MAX_RESAMPLE_DENOMINATOR = 1000


@dataclass(frozen=True)
class DecodedAudio:
    """Mono samples ready for the audio tower, and what decoding did to get them.

    samples: ``(T,)`` float32 in [-1, 1] at ``sample_rate`` Hz: the first ``seconds`` of the input.
    sample_rate: the rate ``samples`` are at (Hz).
    source_rate: the rate of the file or array (Hz).
    channels: how many channels were averaged into ``samples``.
    duration_seconds: length of the whole input (seconds); the file header's for files.
    truncated: the input was longer than the window read, so only its start is in ``samples``.
    peak: the largest absolute sample read; above 1.0 the samples were divided by it.
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    channels: int
    duration_seconds: float
    truncated: bool
    peak: float

    @property
    def seconds(self) -> float:
        """Length of ``samples`` in seconds."""
        return self.samples.shape[0] / self.sample_rate

    @property
    def normalised(self) -> bool:
        """True when the input's peak was above 1.0 and the samples were scaled down to it."""
        return self.peak > 1.0


def decode_audio(source: AudioInput, sample_rate: int, seconds: float | None = None, limits: InputLimits = DEFAULT_LIMITS) -> DecodedAudio:
    """Decode at most the first ``seconds`` of ``source`` (a file path, or ``(samples, rate)``) to mono at ``sample_rate``.

    The window read is ``min(seconds, limits.max_audio_seconds_read)``; nothing beyond it
    is decoded. Channels are averaged, a peak above 1.0 is divided out, and only then is
    the window resampled. An array is ``(T,)`` or ``(T, channels)``, float (taken as is)
    or 8/16/32-bit integer PCM (scaled by its type's range, as a WAV file is).

    Raises:
        AudioDecodeError: the file is missing, empty or not audio; the array has the wrong
            type or shape; the rate or channel count is outside ``limits``; or the input holds
            no samples or NaN/infinite ones. The message names the input and the limit.
    """
    window_seconds = limits.max_audio_seconds_read if seconds is None else min(float(seconds), limits.max_audio_seconds_read)
    if isinstance(source, tuple):
        name, mono, rate, channels, total_frames = _read_array(source, window_seconds, limits)
    elif isinstance(source, (str, os.PathLike)):
        name, mono, rate, channels, total_frames = _read_file(Path(source), window_seconds, limits)
    else:
        hint = " (to use bytes, write them to a file, or decode them to an array and give (samples, rate))" if isinstance(source, (bytes, bytearray, memoryview)) else ""
        raise AudioDecodeError(f"{type(source).__name__} {_short_repr(source)} is not audio: give a file path or a (samples, sample_rate) tuple{hint}")
    if mono.size == 0:
        raise AudioDecodeError(f"{name}: holds no audio samples")
    peak = float(np.max(np.abs(mono)))
    if not math.isfinite(peak):
        raise AudioDecodeError(f"{name}: contains NaN or infinite samples")
    if peak > 1.0:
        mono /= peak
    if rate != sample_rate:
        ratio = Fraction(sample_rate, rate).limit_denominator(_MAX_RESAMPLE_DENOMINATOR)
        mono = resample_poly(mono, ratio.numerator, ratio.denominator)
    samples = np.clip(mono, -1.0, 1.0).astype(np.float32)
    return DecodedAudio(samples, sample_rate, rate, channels, total_frames / rate, total_frames > _window_frames(window_seconds, rate), peak)


def load_audio(source: AudioInput, sample_rate: int, seconds: float | None = None, limits: InputLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode ``source`` (a file path, or ``(samples, rate)``) to mono float32 at ``sample_rate``.

    The samples of :func:`decode_audio`, which says what was cut or scaled and raises the same errors.

    Returns:
        ``(T,)`` float32 samples in [-1, 1], at most ``min(seconds, limits.max_audio_seconds_read)`` long.
    """
    return decode_audio(source, sample_rate, seconds, limits).samples


def _check_rate_and_channels(name: str, rate: int, channels: int, limits: InputLimits) -> None:
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise AudioDecodeError(
            f"{name}: sample rate {rate} Hz is outside {limits.min_sample_rate}–{limits.max_sample_rate} Hz "
            "(InputLimits.min_sample_rate/max_sample_rate); resample it to a common rate such as 16000 or 44100 Hz"
        )
    if not 1 <= channels <= limits.max_channels:
        raise AudioDecodeError(f"{name}: has {channels} channels; give 1 to {limits.max_channels} (InputLimits.max_channels), mixing down first if needed")


def _read_file(path: Path, window_seconds: float, limits: InputLimits) -> tuple[str, np.ndarray, int, int, int]:
    """Read the first ``window_seconds`` of a file as mono float64: ``(name, samples, rate, channels, frames in the file)``."""
    name = str(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty (0 bytes); give a WAV, FLAC or OGG file")
    try:
        with soundfile.SoundFile(str(path)) as file:
            rate, channels, total_frames = int(file.samplerate), int(file.channels), int(file.frames)
            _check_rate_and_channels(name, rate, channels, limits)
            mono = np.empty(min(total_frames, _window_frames(window_seconds, rate)), dtype=np.float64)
            block = max(1, _BLOCK_VALUES // channels)
            filled = 0
            while filled < mono.shape[0]:
                frames = file.read(min(block, mono.shape[0] - filled), dtype="float64", always_2d=True)  # (frames, channels)
                if frames.shape[0] == 0:
                    break  # the header promised more frames than the file holds
                mono[filled : filled + frames.shape[0]] = frames.mean(axis=1)
                filled += frames.shape[0]
    except AudioDecodeError:
        raise
    except Exception as error:  # soundfile raises its own LibsndfileError, RuntimeError and TypeError
        raise AudioDecodeError(f"{path}: not a readable audio file ({error}); give a WAV, FLAC or OGG file") from None
    return name, mono[:filled], rate, channels, total_frames


def _read_array(source: tuple, window_seconds: float, limits: InputLimits) -> tuple[str, np.ndarray, int, int, int]:
    """Check a ``(samples, rate)`` pair and take its first ``window_seconds`` as mono float64."""
    if len(source) != 2:
        raise AudioDecodeError(f"a tuple of {len(source)} items is not audio: give (samples, sample_rate)")
    samples, rate = source
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)) or not float(rate).is_integer():
        raise AudioDecodeError(f"audio array: sample rate {rate!r} is not a whole number of Hz; give (samples, sample_rate) with an int rate")
    rate = int(rate)
    try:
        samples = np.asarray(samples)
    except (ValueError, TypeError) as error:
        raise AudioDecodeError(f"audio array: samples are not an array ({error}); give a numeric (T,) or (T, channels) array") from None
    name = f"audio array of shape {samples.shape} at {rate} Hz"
    if samples.dtype.kind not in "fiu" or (samples.dtype.kind in "iu" and samples.dtype.itemsize > 4):
        raise AudioDecodeError(f"{name}: samples have dtype {samples.dtype}; give float samples in [-1, 1] or 8-, 16- or 32-bit integer PCM")
    if samples.ndim not in (1, 2):
        raise AudioDecodeError(f"{name}: give a (T,) or (T, channels) array")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    if samples.ndim == 2 and channels > limits.max_channels and samples.shape[0] <= limits.max_channels:
        raise AudioDecodeError(f"{name}: arrays are (T, channels); transpose a (channels, T) array")
    _check_rate_and_channels(name, rate, channels, limits)
    total_frames = samples.shape[0]
    window = samples[: _window_frames(window_seconds, rate)]
    mono = window.astype(np.float64) if window.ndim == 1 else window.mean(axis=1, dtype=np.float64)
    if samples.dtype.kind == "u":  # unsigned PCM is centred on half its range
        mono -= 2.0 ** (8 * samples.dtype.itemsize - 1)
    if samples.dtype.kind in "iu":
        mono /= 2.0 ** (8 * samples.dtype.itemsize - 1)
    return name, mono, rate, channels, total_frames


def _window_frames(seconds: float, rate: int) -> int:
    """How many frames at ``rate`` make ``seconds`` (at least one)."""
    return max(1, math.ceil(seconds * rate))


def _short_repr(value: object, limit: int = 40) -> str:
    text = " ".join(repr(value).split())  # one line
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """Waveform ``(B, T)`` float32 -> log-mel spectrogram ``(B, 1, n_mels, frames)``.

    Finite for every waveform in [-1, 1] (silence included): the power of a frame is at
    most ``n_fft ** 2`` and the log's floor is 1e-6. Louder input can overflow float32,
    which is why :func:`decode_audio` divides out any peak above 1.
    """

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


def waveform_batch(sources: list[AudioInput], config: AudioConfig, limits: InputLimits = DEFAULT_LIMITS) -> torch.Tensor:
    """Decode the first ``config.max_seconds`` of each input, resample, and fit them to ``(B, T)`` float32."""
    length = int(config.sample_rate * config.max_seconds)
    rows = [fit_length(load_audio(source, config.sample_rate, config.max_seconds, limits), length) for source in sources]
    return torch.from_numpy(np.stack(rows))

