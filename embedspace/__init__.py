"""embedspace: text, images and audio in one embedding space, searchable, mappable and generative.

Public API (imported on first use, so ``import embedspace`` stays fast)::

    Space.create(path, model="emoji-mini") / Space.open(path)
    EmbeddingModel.load(name_or_path), list_models()
    VectorIndex(dim, factory)
    Projection (UMAP maps), Generator, GenerationRequest, SamplingOptions, interpolate, arithmetic, random_walk
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_MODEL": "embedspace.models",
    "EmbeddingModel": "embedspace.models",
    "GenerationRequest": "embedspace.generator",
    "GenerationResult": "embedspace.generator",
    "Generator": "embedspace.generator",
    "arithmetic": "embedspace.generator",
    "interpolate": "embedspace.generator",
    "random_walk": "embedspace.generator",
    "ModelConfig": "embedspace.models",
    "list_models": "embedspace.models",
    "Projection": "embedspace.projection",
    "SamplingOptions": "embedspace.generator",
    "Space": "embedspace.space",
    "SpaceError": "embedspace.errors",
    "VectorIndex": "embedspace.index",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'embedspace' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
