"""The demo space: every emoji image in all four designs, its caption as a text item, and spoken captions.

Built from the dataset folder (made first if missing) with the default model; metadata
columns carry the Unicode group and subgroup, the design and the voice style. Every caption
is spoken in the plain voice; the other demo voices (whispered, shouted, slow, the held-out
speaker) speak one concept in :data:`MANNER_EVERY`, because each clip is transcribed by
Whisper on the way in, the slowest step of the build on a CPU.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from embedspace.models.registry import resolve_model
from embedspace.recipes.emoji import build_emoji_dataset, load_emoji_dataset
from embedspace.recipes.speech import BUILDER_VERSION, VOICE_STYLES, build_speech_dataset, load_speech_dataset, speech_builder_version

logger = logging.getLogger(__name__)

DEFAULT_DATA = Path("data/datasets/emoji")
DEFAULT_SPACE = Path("data/spaces/emoji")
MANNER_EVERY = 10
"""Voices other than the plain one speak every MANNER_EVERY-th concept (in key order) in the demo."""
PLAIN_VOICE = "normal"


def ensure_dataset(data_dir: Path, progress: bool = True) -> Path:
    """Build the emoji images and spoken captions in ``data_dir`` unless they are there and current.

    Speech made by an older builder (say, before the extra training speakers) is rebuilt;
    its WAVs are deterministic, so clips that already existed come out byte-identical.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "emoji.parquet").is_file():
        build_emoji_dataset(data_dir, progress=progress)
    version = speech_builder_version(data_dir)
    if version != BUILDER_VERSION:
        if version is not None:
            logger.warning("speech in %s is from builder version %d; rebuilding it with version %d", data_dir, version, BUILDER_VERSION)
        build_speech_dataset(data_dir, progress=progress)
    return data_dir


def demo_space_state(out: str | Path, model: str = "emoji-mini") -> str:
    """``"missing"``, ``"current"`` (built with the installed weights of ``model``) or ``"stale"`` (other weights).

    Raises:
        SpaceError: ``out`` exists but is not a space (or a damaged one); the message names it.
    """
    from embedspace.space import Space  # imported on use: `embedspace data build` (ensure_dataset) needs no torch

    out = Path(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return "missing"
    config, weights = resolve_model(model)
    return "current" if Space.open(out).info()["fingerprint"] == config.fingerprint(weights) else "stale"


def refresh_demo_space(out: str | Path = DEFAULT_SPACE, data_dir: str | Path = DEFAULT_DATA, model: str = "emoji-mini", progress: bool = True):
    """Build the demo space when it is missing or was built with other weights of ``model``.

    A stale space is not deleted: it is moved aside to ``<out>.stale-<n>`` (items added to it
    by hand stay there). Returns the state found, where a stale space went (or None) and
    the new Space (None when it was current).
    """
    out = Path(out)
    state = demo_space_state(out, model)
    moved = None
    if state == "stale":
        moved = next(path for path in (out.with_name(f"{out.name}.stale-{number}") for number in range(1, 10_000)) if not path.exists())
        out.rename(moved)
        logger.warning("%s was built with other %s weights; moved it to %s and building it again", out, model, moved)
    space = build_demo_space(out, data_dir, model=model, progress=progress) if state != "current" else None
    return state, moved, space


def build_demo_space(
    out: str | Path = DEFAULT_SPACE,
    data_dir: str | Path = DEFAULT_DATA,
    model: str = "emoji-mini",
    styles: tuple[str, ...] | None = None,
    progress: bool = True,
    manner_every: int = MANNER_EVERY,
):
    """Create the demo Space at ``out`` (a new folder) and fill it; returns the open Space.

    styles: voice styles to include as audio items (default: those with ``in_demo``, i.e. not the
        extra training speakers).
    manner_every: voices other than the plain one speak only every ``manner_every``-th concept (1: all).
    """
    from embedspace.space import Space  # imported on use, as in demo_space_state

    started = time.time()
    data_dir = ensure_dataset(Path(data_dir), progress)
    emoji = load_emoji_dataset(data_dir)  # one row per concept (OpenMoji)
    drawn = load_emoji_dataset(data_dir, designs=None)  # every design
    speech = load_speech_dataset(data_dir)
    if styles is None:
        styles = tuple(name for name, style in VOICE_STYLES.items() if style.in_demo)
    sampled = set(emoji["key"].iloc[:: max(1, manner_every)])
    speech = speech[speech["style"].isin(styles) & ((speech["style"] == PLAIN_VOICE) | speech["key"].isin(sampled))]
    space = Space.create(out, model=model)
    groups = emoji.set_index("key")[["group", "subgroup"]]

    def meta(row) -> dict:
        return {"group": row.group, "subgroup": row.subgroup, "key": row.key, "skin_tone": row.skin_tone, "split": row.split}

    space.add_images(
        [data_dir / path for path in drawn["image"]], metadata=[meta(row) | {"design": row.design} for row in drawn.itertuples()], labels=drawn["caption"].tolist()
    )
    space.add_texts(emoji["caption"].tolist(), metadata=[meta(row) for row in emoji.itertuples()])
    audio_meta = [
        {"group": groups.loc[row.key, "group"], "subgroup": groups.loc[row.key, "subgroup"], "key": row.key, "style": row.style, "split": row.split}
        for row in speech.itertuples()
    ]
    labels = [f"{row.caption} ({row.style})" for row in speech.itertuples()]
    space.add_audio([data_dir / path for path in speech["audio"]], metadata=audio_meta, labels=labels)
    logger.info("built demo space %s with %d items in %.0f s", out, len(space), time.time() - started)
    return space
