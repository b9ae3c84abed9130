"""Choosing the transcript weight ``w`` of a model's audio vectors on the validation split, never the test split.

The clips are the held-out voice (a speaker the audio tower never heard) saying the
captions of the validation emoji: training base emoji that :func:`validation_split` kept
apart, whose clips the tower was never trained on. For every ``w`` on a grid the fused
vectors (:func:`embedspace.models.fusion.fuse_transcript`) rank all captions, as
``embedspace eval`` does; the best R@5 wins, the smallest ``w`` on a tie.

Reproduce::

    python -c "from embedspace.recipes.transcript_weight import select_transcript_weight; \\
               print(select_transcript_weight('emoji-mini', 'data/emoji').lines())"
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from embedspace.models.model import EmbeddingModel
from embedspace.models.fusion import fuse_transcript
from embedspace.models.transcriber import Transcriber
from embedspace.recipes.emoji import load_emoji_dataset
from embedspace.recipes.encoder_training import training_config_of, validation_split
from embedspace.recipes.metrics import recall_at
from embedspace.recipes.speech import load_speech_dataset

logger = logging.getLogger(__name__)

#: The weights tried: 0 (acoustic alone) to 1 (transcript alone) in steps of 0.05.
WEIGHT_GRID = tuple(round(step * 0.05, 2) for step in range(21))
#: Share of training base emoji kept for validation when the model folder holds no training.json.
DEFAULT_VALIDATION_FRACTION = 0.06


@dataclass(frozen=True)
class TranscriptWeightScores:
    """Held-out voice audio→caption R@5 of the validation clips for each weight tried.

    weights: the ``w`` tried, ascending. recall_at_5: R@5 for each, row-aligned with ``weights``.
    best_weight, best_recall_at_5: the winner (smallest ``w`` among equal scores).
    clips: how many clips were scored; empty_transcripts: how many had no words heard.
    examples: (caption, transcript) of the first clips, to read what Whisper heard.
    """

    weights: tuple[float, ...]
    recall_at_5: tuple[float, ...]
    best_weight: float
    best_recall_at_5: float
    clips: int
    empty_transcripts: int
    examples: tuple[tuple[str, str], ...]

    def lines(self) -> str:
        rows = [f"w={weight:.2f}  R@5={score:.3f}" for weight, score in zip(self.weights, self.recall_at_5)]
        return "\n".join(
            rows
            + [
                f"best: w={self.best_weight:.2f} (validation R@5 {self.best_recall_at_5:.3f}, acoustic alone {self.recall_at_5[0]:.3f}) "
                f"over {self.clips} held-out voice clips, {self.empty_transcripts} with an empty transcript"
            ]
        )


def validation_fraction_of(model_name: str | Path) -> float:
    """The validation fraction the model's towers were trained with (its ``training.json``), or the default."""
    return float((training_config_of(model_name) or {}).get("validation_fraction", DEFAULT_VALIDATION_FRACTION))


def heldout_voice_clips(data_dir: str | Path, split: str, validation_fraction: float, style: str = "heldout") -> pd.DataFrame:
    """Rows of ``speech.parquet`` in ``style`` whose emoji fall in ``split`` ("validation" or "test") once the validation split is drawn."""
    if split not in ("validation", "test"):
        raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
    data_dir = Path(data_dir)
    emoji = load_emoji_dataset(data_dir)
    splits = {key: validation_split(base, split_name, validation_fraction) for key, base, split_name in zip(emoji["key"], emoji["base"], emoji["split"])}
    speech = load_speech_dataset(data_dir)
    chosen = (speech["style"] == style) & (speech["key"].map(splits) == split)
    return speech[chosen].reset_index(drop=True)


def select_transcript_weight(
    model_name: str | Path, data_dir: str | Path, weights: tuple[float, ...] = WEIGHT_GRID, progress: bool = True
) -> TranscriptWeightScores:
    """Score every weight of ``weights`` on the validation clips of the held-out voice (see the module docstring).

    The model is loaded with the Whisper tiny.en transcriber whatever its config says, so
    a model shipped without one can be measured before it gets one.
    """
    data_dir = Path(data_dir)
    model = EmbeddingModel.load(model_name)
    if model.audio is None:
        raise ValueError(f"model {model_name!r} has no audio tower, so it has no transcript weight to choose")
    transcriber = model.transcriber or Transcriber()
    model.transcriber = transcriber
    clips = heldout_voice_clips(data_dir, "validation", validation_fraction_of(model_name))
    if clips.empty:
        raise ValueError(f"{data_dir} has no held-out voice clips of validation emoji; build the speech data with `embedspace data build`")
    captions = sorted(set(load_emoji_dataset(data_dir)["caption"]))
    position = {caption: row for row, caption in enumerate(captions)}
    caption_vectors = model.embed_text(captions, progress=progress)
    correct = np.array([position[caption] for caption in clips["caption"]])
    paths = [data_dir / path for path in clips["audio"]]
    acoustic = model.embed_acoustic(paths, progress=progress)
    transcripts = model.transcribe(paths, progress=progress)
    text, heard = model.embed_transcripts(transcripts)
    scores = tuple(recall_at(fuse_transcript(acoustic, text, heard, weight) @ caption_vectors.T, correct, (5,))["R@5"] for weight in weights)
    best = int(np.argmax(scores))  # the first maximum: the smallest weight on a tie
    return TranscriptWeightScores(
        weights=tuple(weights),
        recall_at_5=tuple(float(score) for score in scores),
        best_weight=float(weights[best]),
        best_recall_at_5=float(scores[best]),
        clips=len(clips),
        empty_transcripts=int((~heard).sum()),
        examples=tuple(zip(clips["caption"].tolist()[:10], transcripts[:10])),
    )
