"""The demo space: every emoji image, its caption as a text item, and its spoken captions.

Built from the dataset folder (made first if missing) with the default model; metadata
columns carry the Unicode group and subgroup and the voice style.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from embedspace.datasets.emoji import build_emoji_dataset, load_emoji_dataset
from embedspace.datasets.speech import build_speech_dataset, load_speech_dataset

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path("data/datasets/emoji")
DEFAULT_SPACE = Path("data/spaces/emoji")


def ensure_dataset(data_dir: Path, progress: bool = True) -> Path:
    """Build the emoji images and spoken captions in ``data_dir`` unless they are there."""
    data_dir = Path(data_dir)
    if not (data_dir / "emoji.parquet").is_file():
        build_emoji_dataset(data_dir, progress=progress)
    if not (data_dir / "speech.parquet").is_file():
        build_speech_dataset(data_dir, progress=progress)
    return data_dir


def build_demo_space(
    out: str | Path = DEFAULT_SPACE,
    data_dir: str | Path = DEFAULT_DATA,
    model: str = "emoji-mini",
    styles: tuple[str, ...] | None = None,
    progress: bool = True,
):
    """Create the demo Space at ``out`` (a new folder) and fill it; returns the open Space.

    styles: voice styles to include as audio items (default: all).
    """
    from embedspace.space import Space

    started = time.time()
    data_dir = ensure_dataset(Path(data_dir), progress)
    emoji = load_emoji_dataset(data_dir)
    speech = load_speech_dataset(data_dir)
    if styles is not None:
        speech = speech[speech["style"].isin(styles)]
    space = Space.create(out, model=model)
    groups = emoji.set_index("key")[["group", "subgroup"]]
    meta = [{"group": row.group, "subgroup": row.subgroup, "key": row.key, "skin_tone": row.skin_tone, "split": row.split} for row in emoji.itertuples()]
    space.add_images([data_dir / path for path in emoji["image"]], metadata=meta, labels=emoji["caption"].tolist())
    space.add_texts(emoji["caption"].tolist(), metadata=meta)
    audio_meta = [
        {"group": groups.loc[row.key, "group"], "subgroup": groups.loc[row.key, "subgroup"], "key": row.key, "style": row.style, "split": row.split}
        for row in speech.itertuples()
    ]
    labels = [f"{row.caption} ({row.style})" for row in speech.itertuples()]
    space.add_audio([data_dir / path for path in speech["audio"]], metadata=audio_meta, labels=labels)
    logger.info("built demo space %s with %d items in %.0f s", out, len(space), time.time() - started)
    return space
