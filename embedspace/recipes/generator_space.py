"""A generator for any space: tokenizer and prior trained on the space's own images (``embedspace train generator --space``).

The training set is the space's image items, at the recipe's size (each image's file, or
its stored thumbnail when the file is gone; unreadable ones are skipped and counted). The
prior's conditions are points of the space's own model, read from the space, so no encoder
is loaded:

- each image's own stored vector;
- the vector of its caption where the space links texts to images: a text item that shares
  the image's ``key`` metadata value (the link :meth:`embedspace.Space.modality_gap` uses;
  the demo space has it). Without such a link the prior learns from the images' own vectors
  only, and text queries reach it across the modality gap;
- likewise the vector of a linked audio item (a spoken caption), when there is one.

Sizes come from the number of images (:func:`plan_training`): three tiers built on the
shipped recipes (``shapes`` below 1,000 images, ``emoji`` below 50,000, a wider ``emoji``
above), with epochs set to reach the tier's number of optimiser steps (and at least the
tier's fewest epochs). A small set is
repeated so an epoch is at least :data:`MIN_EPOCH_STEPS` steps. At most
:data:`MAX_TRAIN_IMAGES` images are used (a seeded sample).

The training itself is :func:`embedspace.recipes.generator_build.build_tokenizer` and
:func:`~embedspace.recipes.generator_build.build_prior` (tqdm bars, checkpoints after each
epoch). Before training, the pace of both loops is measured on a few steps here and the
whole run is estimated from it; ``space-training.json`` beside the generator records the
plan, the estimate and the time it took. With ``resume``, a run that was interrupted goes
on from its checkpoints: a tokenizer already written is kept and the prior continues.
At the end the space records the generator (:meth:`embedspace.Space.set_generator`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from embedspace.errors import ImageDecodeError, SpaceError
from embedspace.generator.pipeline import Generator
from embedspace.generator.serialization import read_json, write_json
from embedspace.models.model import load_image
from embedspace.recipes.generator_build import Conditions, build_prior, build_tokenizer
from embedspace.recipes.generator_data import RECIPES, GeneratorData, Recipe
from embedspace.recipes.generator_training import PRIOR_CHECKPOINT, TOKENIZER_CHECKPOINT, train_prior, train_tokenizer
from embedspace.recipes.loop import read_checkpoint
from embedspace.space import Space

logger = logging.getLogger(__name__)

#: Fewest images a space needs for a generator (below it the tokenizer's codebook and the
#: prior have almost nothing to learn from).
MIN_IMAGES = 16
#: Most images one training uses; larger spaces train on a seeded sample of this many.
MAX_TRAIN_IMAGES = 100_000
#: A small set is repeated until an epoch has at least this many optimiser steps.
MIN_EPOCH_STEPS = 8
#: The metadata column that links a space's texts and sounds to its images.
LINK_COLUMN = "key"
RECORD = "space-training.json"


@dataclass(frozen=True)
class Tier:
    """Sizes for spaces of up to ``max_images`` images: a recipe, the optimiser steps of each loop
    and the fewest epochs of each (so that a large space is not seen only once or twice)."""

    max_images: int | None
    name: str
    recipe: Recipe
    tokenizer_steps: int
    prior_steps: int
    tokenizer_min_epochs: int = 1
    prior_min_epochs: int = 1


def _tiers() -> tuple[Tier, ...]:
    shapes, emoji = RECIPES["shapes"], RECIPES["emoji"]
    small = replace(shapes, text_probability=0.5, audio_probability=0.2, dropout=0.1, part_probability=0.0, condition_parts=1)
    wide = replace(emoji.tokenizer, widths=(64, 128, 256), codebook_size=1024)
    large = replace(emoji, tokenizer=wide, tokenizer_batch_size=128, prior_batch_size=128, n_layer=8, n_head=8, n_embd=384)
    return (
        Tier(999, "small (the shapes recipe)", small, 1_500, 2_000),
        Tier(49_999, "medium (the emoji recipe)", emoji, 1_500, 3_000, 8, 16),
        Tier(None, "large (a wider emoji recipe)", large, 10_000, 20_000, 4, 8),
    )


#: The tiers, smallest first.
TIERS: tuple[Tier, ...] = _tiers()


@dataclass(frozen=True)
class TrainingPlan:
    """What :func:`train_space_generator` will train.

    Attributes:
        tier: the name of the size tier.
        images: images used (at most :data:`MAX_TRAIN_IMAGES`).
        repeats: how many times each image appears in an epoch.
        recipe: sizes, with the epochs of both loops filled in.
    """

    tier: str
    images: int
    repeats: int
    recipe: Recipe

    @property
    def tokenizer_steps(self) -> int:
        return self.recipe.tokenizer_epochs * max(1, self.images * self.repeats // self.recipe.tokenizer_batch_size)

    @property
    def prior_steps(self) -> int:
        return self.recipe.prior_epochs * max(1, self.images * self.repeats // self.recipe.prior_batch_size)

    def describe(self) -> str:
        """One line: the tier, images, epochs and steps of both loops."""
        r = self.recipe
        return (f"{self.images:,} images ({self.tier} tier, each seen {self.repeats}× per epoch): "
                f"tokenizer {r.tokenizer.widths} K={r.tokenizer.codebook_size} {r.tokenizer_epochs} epochs ({self.tokenizer_steps:,} steps), "
                f"prior {r.n_layer}×{r.n_embd} {r.prior_epochs} epochs ({self.prior_steps:,} steps), {r.image_size} px")


def check_image_count(count: int, space_path: str | os.PathLike) -> None:
    """Raise :class:`SpaceError` unless ``count`` images are enough for a generator (:data:`MIN_IMAGES`)."""
    if count == 0:
        raise SpaceError(f"space {space_path} has no images; a generator needs at least {MIN_IMAGES} image items "
                         f"(add them with `embedspace add {space_path} FOLDER`)")
    if count < MIN_IMAGES:
        raise SpaceError(f"space {space_path} has {count} image(s); a generator needs at least {MIN_IMAGES} "
                         f"(add {MIN_IMAGES - count} more with `embedspace add {space_path} FOLDER`)")


def plan_training(n_images: int, epochs: int | None = None) -> TrainingPlan:
    """The sizes for a space of ``n_images`` images; ``epochs`` replaces both loops' epochs.

    Raises:
        ValueError: fewer than :data:`MIN_IMAGES` images.
    """
    if n_images < MIN_IMAGES:
        raise ValueError(f"a generator needs at least {MIN_IMAGES} images, got {n_images}")
    used = min(n_images, MAX_TRAIN_IMAGES)
    tier = next(t for t in TIERS if t.max_images is None or n_images <= t.max_images)
    recipe = tier.recipe
    repeats = math.ceil(MIN_EPOCH_STEPS * recipe.tokenizer_batch_size / used)
    rows = used * repeats
    tokenizer_epochs = epochs or max(tier.tokenizer_min_epochs, round(tier.tokenizer_steps / max(1, rows // recipe.tokenizer_batch_size)))
    prior_epochs = epochs or max(tier.prior_min_epochs, round(tier.prior_steps / max(1, rows // recipe.prior_batch_size)))
    return TrainingPlan(tier.name, used, repeats, replace(recipe, tokenizer_epochs=tokenizer_epochs, prior_epochs=prior_epochs))


def _linked(items: pd.DataFrame, image_rows: pd.DataFrame, modality: str) -> pd.Series:
    """For each image row, the id of the first ``modality`` item sharing its :data:`LINK_COLUMN` value (NaN: none)."""
    if LINK_COLUMN not in items.columns:
        return pd.Series(np.nan, index=image_rows.index)
    others = items[(items["modality"] == modality) & items[LINK_COLUMN].notna()]
    first = others.drop_duplicates(LINK_COLUMN).set_index(LINK_COLUMN)["id"]
    return image_rows[LINK_COLUMN].map(first)


def _rows_of(space: Space, ids: pd.Series) -> tuple[np.ndarray, int]:
    """(N, D) float32: the vectors of ``ids``, NaN rows where an id is missing; and how many are present."""
    present = ids.notna().to_numpy()
    vectors = np.full((len(ids), space.dim), np.nan, np.float32)
    if present.any():
        vectors[present] = space.vectors_of(ids[present].astype(np.int64).to_numpy())
    return vectors, int(present.sum())


def _pixels(space: Space, item_id: int, size: int) -> np.ndarray | None:
    """(size, size, 3) uint8 pixels of an image item (its file, else its thumbnail), or None when neither is readable."""
    for path in (space.source_path(item_id), space.thumbnail_path(item_id)):
        if path is None or not path.is_file():
            continue
        try:
            return np.asarray(load_image(path).resize((size, size), Image.Resampling.BOX), dtype=np.uint8)
        except ImageDecodeError as error:
            logger.warning("skipping image item %d: %s", item_id, error)
    return None


def load_space_data(space: Space, plan: TrainingPlan, seed: int = 0) -> tuple[GeneratorData, Conditions, dict[str, int]]:
    """The training set of ``space`` for ``plan``: images, their conditions and counts (images, captions, sounds, skipped).

    Rows are repeated ``plan.repeats`` times. Raises :class:`SpaceError` when fewer than
    :data:`MIN_IMAGES` images can be read.
    """
    items = space.items
    images = items[items["modality"] == "image"]
    if len(images) > plan.images:
        images = images.iloc[np.sort(np.random.default_rng(seed).choice(len(images), plan.images, replace=False))]
    size = plan.recipe.image_size
    pixels = [_pixels(space, int(item_id), size) for item_id in images["id"]]
    readable = np.array([p is not None for p in pixels], dtype=bool)
    images = images[readable]
    check_image_count(len(images), space.path)
    ids = images["id"].to_numpy(np.int64)
    image_vectors = space.vectors_of(ids)
    text_vectors, captions = _rows_of(space, _linked(items, images, "text"))
    audio_vectors, sounds = _rows_of(space, _linked(items, images, "audio"))
    labels = items.set_index("id")["label"]
    caption_ids = _linked(items, images, "text")
    caption_text = [str(labels[int(c)]) if pd.notna(c) else "" for c in caption_ids]
    k = plan.repeats
    data = GeneratorData(
        kind="space", images=np.tile(np.stack([p for p in pixels if p is not None]), (k, 1, 1, 1)),
        captions=caption_text * k, groups=[str(i) for i in ids] * k, split=np.full(len(ids) * k, "train"),
        keys=[str(i) for i in ids] * k, source=str(space.path), chosen_recipe=plan.recipe,
    )
    conditions = Conditions(
        np.tile(image_vectors, (k, 1)),
        np.tile(text_vectors, (k, 1)) if captions else None,
        np.tile(audio_vectors, (k, 1)) if sounds else None,
    )
    counts = {"images": len(ids), "captions": captions, "sounds": sounds, "skipped": int((~readable).sum())}
    return data, conditions, counts


def measure_pace(recipe: Recipe, condition_dim: int, device: str = "cpu", seed: int = 0) -> tuple[float, float]:
    """Seconds per optimiser step of the tokenizer and the prior of ``recipe`` here, measured with the training loops themselves.

    Each loop runs on random data for one step (a warm-up, not timed), then for one step and
    for three; the difference of the last two runs, over two steps, is the pace (set-up costs
    cancel out; if noise makes it negative, the three-step run over three).
    """
    rng = np.random.default_rng(seed)
    size, grid = recipe.image_size, recipe.tokenizer.grid_size
    paces = []
    for part in ("tokenizer", "prior"):
        batch = recipe.tokenizer_batch_size if part == "tokenizer" else recipe.prior_batch_size
        seconds = []
        for steps in (1, 1, 3):
            started = time.perf_counter()
            if part == "tokenizer":
                images = rng.integers(0, 256, (batch * steps, size, size, 3), dtype=np.uint8)
                train_tokenizer(images, recipe.tokenizer, epochs=1, batch_size=batch, device=device, progress=False,
                                objective=recipe.tokenizer_objective)
            else:
                codes = rng.integers(0, recipe.tokenizer.codebook_size, (batch * steps, grid, grid))
                conditions = rng.standard_normal((batch * steps, condition_dim)).astype(np.float32)
                conditions /= np.linalg.norm(conditions, axis=1, keepdims=True)
                train_prior(codes, conditions, config=recipe.prior_config(condition_dim), epochs=1, batch_size=batch,
                            device=device, progress=False)
            seconds.append(time.perf_counter() - started)
        paces.append((seconds[2] - seconds[1]) / 2 if seconds[2] > seconds[1] else seconds[2] / 3)
    return paces[0], paces[1]


def _epochs_done(path: Path) -> int:
    return read_checkpoint(path)["epoch"] if path.is_file() else 0


def _ids_digest(data: GeneratorData) -> str:
    return hashlib.sha256(",".join(data.keys).encode()).hexdigest()


def _format_seconds(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def train_space_generator(
    space: str | os.PathLike | Space,
    out: str | os.PathLike,
    epochs: int | None = None,
    time_budget_s: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
    report: Callable[[str], None] = logger.info,
) -> Generator:
    """Train a generator on the images of ``space``, write it to ``out`` and record it in the space.

    Args:
        space: a space folder or an open :class:`Space`.
        out: the generator folder to write (checkpoints in ``out/checkpoints``).
        epochs: epochs of both loops (default: from the number of images, :func:`plan_training`).
        time_budget_s: wall-clock seconds for the training, shared between the two loops in
            proportion to their estimated time; each stops early to fit its share.
        device: "cpu" or "cuda".
        seed: seeds the sample of a large space, the weights and the data order.
        resume: go on from the checkpoints in ``out`` (a tokenizer already written is kept).
        report: called with each line for the user (the plan, the estimate, the time taken).

    Returns:
        The trained generator, also saved in ``out`` and recorded as the space's generator.

    Raises:
        SpaceError: no images, or fewer than :data:`MIN_IMAGES` (nothing is written).
        ValueError: ``resume`` with checkpoints of another space or other sizes.
    """
    started = time.perf_counter()
    space = space if isinstance(space, Space) else Space.open(space)
    count = int((space.items["modality"] == "image").sum())
    check_image_count(count, space.path)
    plan = plan_training(count, epochs)
    data, conditions, counts = load_space_data(space, plan, seed)
    out = Path(out)
    record_path = out / RECORD
    digest = _ids_digest(data)
    if resume and record_path.is_file() and read_json(record_path).get("ids_sha256") != digest:
        raise ValueError(f"{out} holds a training run on other images (the space changed since); train without --resume or into another --out")
    linked = f"{counts['captions']} with a linked caption, {counts['sounds']} with a linked sound" if counts["captions"] or counts["sounds"] \
        else f"no texts linked to them (no '{LINK_COLUMN}' shared with a text item): conditioned on the images' own vectors"
    report(f"training a generator for {space.path}: {plan.describe()}; {linked}"
           + (f"; {counts['skipped']} unreadable image(s) skipped" if counts["skipped"] else ""))

    tokenizer_done = resume and (out / "tokenizer" / "config.json").is_file() and (out / "training-tokenizer.json").is_file()
    tokenizer_left = 0 if tokenizer_done else plan.tokenizer_steps * (1 - (_epochs_done(out / "checkpoints" / TOKENIZER_CHECKPOINT) if resume else 0) / plan.recipe.tokenizer_epochs)
    prior_left = plan.prior_steps * (1 - (_epochs_done(out / "checkpoints" / PRIOR_CHECKPOINT) if resume and tokenizer_done else 0) / plan.recipe.prior_epochs)
    tokenizer_pace, prior_pace = measure_pace(plan.recipe, space.dim, device, seed)
    estimate = max(0.0, tokenizer_left) * tokenizer_pace + max(0.0, prior_left) * prior_pace
    report(f"estimated time: {_format_seconds(estimate)} (tokenizer {tokenizer_left:,.0f} steps at {tokenizer_pace:.3f} s, "
           f"prior {prior_left:,.0f} steps at {prior_pace:.3f} s, measured here on {device})"
           + (f"; the budget of {_format_seconds(time_budget_s)} cuts the epochs to fit" if time_budget_s and estimate > time_budget_s else ""))
    share = (tokenizer_left * tokenizer_pace) / estimate if estimate > 0 else 0.5
    budgets = (None, None) if time_budget_s is None else (time_budget_s * share, time_budget_s * (1 - share))

    training_started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    entry = {"space": str(space.path), "plan": {"tier": plan.tier, "images": plan.images, "repeats": plan.repeats,
             "recipe": asdict(plan.recipe)}, "counts": counts, "ids_sha256": digest, "estimate_s": round(estimate, 1),
             "device": device, "seed": seed, "time_budget_s": time_budget_s, "finished": False}
    write_json(record_path, entry)
    options = {"time_budget_s": None, "device": device, "seed": seed, "resume": resume}
    if not tokenizer_done:
        build_tokenizer(data, out, epochs=plan.recipe.tokenizer_epochs, **dict(options, time_budget_s=budgets[0]))
    generator = build_prior(data, out, conditions, space.model_id, space.info()["fingerprint"],
                            epochs=plan.recipe.prior_epochs, **dict(options, time_budget_s=budgets[1], resume=resume and tokenizer_done))
    seconds, total = time.perf_counter() - training_started, time.perf_counter() - started
    write_json(record_path, dict(entry, seconds=round(seconds, 1), total_seconds=round(total, 1), finished=True))
    space.set_generator(out)
    planned = f"estimated {_format_seconds(estimate)}" + (" for every epoch, cut by the budget" if time_budget_s and estimate > time_budget_s else "")
    report(f"trained in {_format_seconds(seconds)} ({planned}; {_format_seconds(total)} with loading and measuring); "
           f"{space.path} now generates with {out}")
    return generator
