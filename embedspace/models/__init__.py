"""Named embedding models with text, image and audio towers that share one space.

Names are imported on first use, so the registry and the errors are available without
importing torch (the CLI builds its help from them).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AudioConfig": "embedspace.models.config",
    "ModelConfig": "embedspace.models.config",
    "EmbeddingModel": "embedspace.models.model",
    "AudioDecodeError": "embedspace.errors",
    "ImageDecodeError": "embedspace.errors",
    "ModelLoadError": "embedspace.errors",
    "DEFAULT_MODEL": "embedspace.models.registry",
    "list_models": "embedspace.models.registry",
    "model_info": "embedspace.models.registry",
    "resolve_model": "embedspace.models.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'embedspace.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
