"""Deterministic dataset builders for the default model `emoji-mini`.

``build_emoji_dataset`` renders OpenMoji SVGs to captioned PNGs; ``build_speech_dataset``
speaks the same captions in several voice styles with espeak-ng. Both write a documented
folder (see the module docstrings of :mod:`.emoji` and :mod:`.speech`) that the trainer
reads back with the ``load_*`` functions.
"""

from embedspace.datasets.emoji import (
    EMOJI_COLUMNS,
    EmojiDatasetSummary,
    build_emoji_dataset,
    load_emoji_dataset,
    load_emoji_images,
)
from embedspace.datasets.speech import (
    SAMPLE_RATE,
    SPEECH_COLUMNS,
    VOICE_STYLES,
    SpeechDatasetSummary,
    SpeechSynthesizer,
    VoiceStyle,
    build_speech_dataset,
    load_speech_dataset,
)

__all__ = [
    "EMOJI_COLUMNS",
    "SAMPLE_RATE",
    "SPEECH_COLUMNS",
    "VOICE_STYLES",
    "EmojiDatasetSummary",
    "SpeechDatasetSummary",
    "SpeechSynthesizer",
    "VoiceStyle",
    "build_emoji_dataset",
    "build_speech_dataset",
    "load_emoji_dataset",
    "load_emoji_images",
    "load_speech_dataset",
]
