"""Named embedding models with text, image and audio towers that share one space."""

from embedspace.models.config import AudioConfig, ModelConfig
from embedspace.models.model import EmbeddingModel, ImageDecodeError, ModelLoadError
from embedspace.models.audio import AudioDecodeError
from embedspace.models.registry import DEFAULT_MODEL, list_models, model_info, resolve_model

__all__ = [
    "AudioConfig",
    "AudioDecodeError",
    "DEFAULT_MODEL",
    "EmbeddingModel",
    "ImageDecodeError",
    "ModelConfig",
    "ModelLoadError",
    "list_models",
    "model_info",
    "resolve_model",
]
