"""Recipes: what builds data and trains and evaluates models, on top of the library.

The library (``models``, ``index``, ``space``, ``projection``, ``generator``) never
imports this package; recipes import the library. One module per recipe:

- :mod:`.emoji`, :mod:`.speech`: deterministic builders of the emoji dataset for the
  default model `emoji-mini` (OpenMoji images, spoken captions; needs
  ``embedspace[data]``), each writing a documented folder read back by ``load_*``;
- :mod:`.demo`: the demo space built from that dataset;
- :mod:`.encoder_training`, :mod:`.encoder_evaluation`: training a model's image and
  audio towers, and its held-out report;
- :mod:`.shapes`, :mod:`.generator_data`, :mod:`.generator_training`,
  :mod:`.generator_evaluation`, :mod:`.generator_build`, :mod:`.generator_report`:
  the generator's training sets, training loops, metrics, folder builder and report.

Names are imported on first use, so importing one recipe does not import them all.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EMOJI_COLUMNS": "embedspace.recipes.emoji",
    "EmojiDatasetSummary": "embedspace.recipes.emoji",
    "build_emoji_dataset": "embedspace.recipes.emoji",
    "load_emoji_dataset": "embedspace.recipes.emoji",
    "load_emoji_images": "embedspace.recipes.emoji",
    "SAMPLE_RATE": "embedspace.recipes.speech",
    "SPEECH_COLUMNS": "embedspace.recipes.speech",
    "VOICE_STYLES": "embedspace.recipes.speech",
    "SpeechDatasetSummary": "embedspace.recipes.speech",
    "SpeechSynthesizer": "embedspace.recipes.speech",
    "VoiceStyle": "embedspace.recipes.speech",
    "build_speech_dataset": "embedspace.recipes.speech",
    "load_speech_dataset": "embedspace.recipes.speech",
    "build_demo_space": "embedspace.recipes.demo",
    "train_encoder": "embedspace.recipes.encoder_training",
    "train_prior": "embedspace.recipes.generator_training",
    "train_tokenizer": "embedspace.recipes.generator_training",
    "build_generator": "embedspace.recipes.generator_build",
    "build_tokenizer": "embedspace.recipes.generator_build",
    "load_generator_data": "embedspace.recipes.generator_data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'embedspace.recipes' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
