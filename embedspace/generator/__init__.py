"""Autoregressive image generator conditioned on points of the embedding space.

vector -> prefix -> transformer prior -> image codes -> VQ decoder -> image.

This package is the library part: models, sampling, moves and loading. Training, the
training sets and the quality report are recipes (:mod:`embedspace.recipes`).
"""

from embedspace.generator.moves import arithmetic, interpolate, random_walk
from embedspace.generator.options import GenerationRequest, SamplingOptions
from embedspace.generator.pipeline import GenerationResult, Generator, list_pretrained
from embedspace.generator.prior import Prior, PriorConfig
from embedspace.generator.registry import default_generator
from embedspace.generator.sampling import sample
from embedspace.generator.tokenizer import CodebookUsage, TokenizerConfig, VQTokenizer

__all__ = [
    "CodebookUsage",
    "GenerationRequest",
    "GenerationResult",
    "Generator",
    "Prior",
    "PriorConfig",
    "SamplingOptions",
    "TokenizerConfig",
    "VQTokenizer",
    "arithmetic",
    "default_generator",
    "interpolate",
    "list_pretrained",
    "random_walk",
    "sample",
]
