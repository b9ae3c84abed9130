"""embedspace: text, images and audio in one embedding space, searchable, mappable and generative.

Public API::

    Space.create(path, model="emoji-mini") / Space.open(path)
    list_models(), EmbeddingModel.load(name_or_path)
"""

from embedspace.index import VectorIndex
from embedspace.models import DEFAULT_MODEL, EmbeddingModel, ModelConfig, list_models
from embedspace.space import Space, SpaceError

__all__ = ["DEFAULT_MODEL", "EmbeddingModel", "ModelConfig", "Space", "SpaceError", "VectorIndex", "list_models"]
