"""Registry of named models: JSON configs shipped in the package, trained weights beside them.

A name resolves to ``embedspace/models/configs/<name>.json``; when a trained folder
``embedspace/models/pretrained/<name>/`` (config.json + model.safetensors) exists it
takes precedence. Any other argument is taken as a model folder on disk.

A model folder is untrusted input: its ``config.json`` is type-checked field by field
(:meth:`ModelConfig.load`), its weights are read only from ``model.safetensors``
(tensors, never code), and what the config names is never imported or downloaded (see
:func:`embedspace.models.model._build_clip`). Anything wrong is a :class:`ModelLoadError`
naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from embedspace.errors import ModelLoadError
from embedspace.models.config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig

DEFAULT_MODEL = "emoji-mini"


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("embedspace.models") / name))


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry as listed by ``embedspace models``."""

    name: str
    embed_dim: int
    trained: tuple[str, ...]
    has_audio: bool
    description: str


def list_models() -> list[str]:
    """Names of the models in the registry, sorted."""
    return sorted(path.stem for path in _package_dir("configs").glob("*.json"))


def model_info(name: str) -> ModelInfo:
    config, _ = resolve_model(name)
    return ModelInfo(config.name, config.embed_dim, config.trained, config.audio is not None, config.description)


def resolve_model(name_or_path: str | Path) -> tuple[ModelConfig, Path | None]:
    """Find the config and weights file (or None) for a registry name or a model folder.

    Raises:
        ModelLoadError: neither a known name nor a folder holding config.json, or a
            config.json that is not valid (the message names the file and the field).
    """
    name = str(name_or_path)
    if name in list_models():
        trained = _package_dir("pretrained") / name
        if (trained / CONFIG_NAME).is_file():
            folder = trained
        else:
            return _load_config(_package_dir("configs") / f"{name}.json"), None
    else:
        folder = Path(name_or_path)
        if not (folder / CONFIG_NAME).is_file():
            raise ModelLoadError(
                f"unknown model {name!r}: not a registry name ({', '.join(list_models())}) "
                f"and not a folder with {CONFIG_NAME}; run `embedspace models` to list models"
            )
    weights = folder / WEIGHTS_NAME
    return _load_config(folder / CONFIG_NAME), weights if weights.is_file() else None


def _load_config(path: Path) -> ModelConfig:
    """``ModelConfig.load`` with its ValueError (naming the file and the bad field) as a ModelLoadError."""
    try:
        return ModelConfig.load(path)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
