"""Build a generator folder from a training set: the two steps behind ``embedspace train``.

1. :func:`build_tokenizer` trains the VQ tokenizer on the training images and writes
   ``out/tokenizer/`` (plus a resumable checkpoint and ``training-tokenizer.json``).
2. :func:`build_generator` embeds the conditions with the encoder model and calls
   :func:`build_prior`, which encodes the images with that tokenizer, trains the prior and
   writes the whole generator folder (``Generator.save_pretrained``) with
   ``training-prior.json``. A space's generator (:mod:`embedspace.recipes.generator_space`)
   calls :func:`build_prior` with the vectors the space already holds.

Both take the sizes from :data:`embedspace.recipes.generator_data.RECIPES` (the presets
``embedspace/recipes/presets/generator/*.json``); epochs and a wall-clock budget can be
overridden. Weights are written in float16 (half the size;
they load back as float32).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from embedspace.generator.pipeline import Generator
from embedspace.generator.serialization import write_json
from embedspace.generator.tokenizer import VQTokenizer
from embedspace.models.model import EmbeddingModel
from embedspace.recipes.generator_data import GeneratorData, embed_conditions, embed_parts
from embedspace.recipes.generator_evaluation import encode_images
from embedspace.recipes.generator_training import inverse_frequency_weights, load_history, train_prior, train_tokenizer

logger = logging.getLogger(__name__)


def _record(out: Path, name: str, data: GeneratorData, settings: dict, started: float, checkpoint: Path, part: str) -> None:
    write_json(out / name, {
        "command": " ".join(["embedspace", *sys.argv[1:]]) if sys.argv and "embedspace" in sys.argv[0] else None,
        "data": data.source,
        "train_images": int(len(data.train)),
        "settings": settings,
        "seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        "loss_per_epoch": load_history(checkpoint, part),
    })


def build_tokenizer(
    data: GeneratorData,
    out: str | os.PathLike,
    epochs: int | None = None,
    time_budget_s: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
) -> VQTokenizer:
    """Train the tokenizer of ``data.recipe`` on the training rows; writes ``out/tokenizer/``."""
    out = Path(out)
    recipe = data.recipe
    started = time.perf_counter()
    train = data.train
    settings = {"epochs": epochs or recipe.tokenizer_epochs, "batch_size": recipe.tokenizer_batch_size,
                "lr": recipe.tokenizer_lr, "seed": seed, "device": device, "time_budget_s": time_budget_s,
                "config": recipe.tokenizer.to_dict(), "objective": recipe.tokenizer_objective.to_dict()}
    tokenizer = train_tokenizer(
        data.images[train], recipe.tokenizer, epochs=settings["epochs"], batch_size=recipe.tokenizer_batch_size,
        lr=recipe.tokenizer_lr, seed=seed, device=device, checkpoint_dir=out / "checkpoints", resume=resume,
        balance_weights=inverse_frequency_weights([data.groups[i] for i in train]), time_budget_s=time_budget_s,
        objective=recipe.tokenizer_objective,
    )
    tokenizer.save_pretrained(out / "tokenizer", torch.float16)
    _record(out, "training-tokenizer.json", data, settings, started, out / "checkpoints", "tokenizer")
    logger.info("wrote %s", out / "tokenizer")
    return tokenizer


def build_generator(
    data: GeneratorData,
    out: str | os.PathLike,
    model: str = "emoji-mini",
    epochs: int | None = None,
    time_budget_s: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
) -> Generator:
    """Train the prior on ``out/tokenizer/``'s codes of the training rows; writes the generator folder ``out``.

    The conditions are embedded with encoder ``model`` (:func:`embed_conditions`); see :func:`build_prior`.
    """
    if not (Path(out) / "tokenizer" / "config.json").is_file():
        raise FileNotFoundError(f"{Path(out) / 'tokenizer'} holds no tokenizer; run `embedspace train tokenizer --out {out}` first.")
    encoder = EmbeddingModel.load(model)
    image_conditions, text_conditions, audio_conditions = embed_conditions(data, encoder, seed)
    if image_conditions is None:  # shapes: captions only
        image_conditions, text_conditions = text_conditions, None
    conditions = Conditions(image_conditions, text_conditions, audio_conditions, embed_parts(data, encoder))
    return build_prior(data, out, conditions, encoder.model_id, encoder.fingerprint, epochs, time_budget_s, device, seed, resume)


@dataclass(frozen=True)
class Conditions:
    """The prior's conditions, row-aligned with the training set: each (N, D) float32 unit rows.

    ``text`` and ``audio`` are optional; a row of NaN means "none for this image" (see
    :func:`embedspace.recipes.generator_training.train_prior`). ``parts`` (N, K, D), also
    optional: texts that each name part of the image.
    """

    image: np.ndarray
    text: np.ndarray | None = None
    audio: np.ndarray | None = None
    parts: np.ndarray | None = None


def build_prior(
    data: GeneratorData,
    out: str | os.PathLike,
    conditions: Conditions,
    model_id: str,
    model_fingerprint: str,
    epochs: int | None = None,
    time_budget_s: float | None = None,
    device: str = "cpu",
    seed: int = 0,
    resume: bool = False,
) -> Generator:
    """Train the prior of ``data.recipe`` on ``out/tokenizer/``'s codes with ``conditions`` (points of
    encoder ``model_id``'s space); writes the generator folder ``out`` and ``training-prior.json``."""
    out = Path(out)
    if not (out / "tokenizer" / "config.json").is_file():
        raise FileNotFoundError(f"{out / 'tokenizer'} holds no tokenizer; run `embedspace train tokenizer --out {out}` first.")
    recipe = data.recipe
    started = time.perf_counter()
    tokenizer = VQTokenizer.from_pretrained(out / "tokenizer", device)
    train = data.train
    codes = encode_images(tokenizer, data.images[train])
    config = recipe.prior_config(conditions.image.shape[1])
    settings = {"model": model_id, "encoder_fingerprint": model_fingerprint,
                "epochs": epochs or recipe.prior_epochs, "batch_size": recipe.prior_batch_size, "lr": recipe.prior_lr,
                "seed": seed, "device": device, "time_budget_s": time_budget_s,
                "text_probability": recipe.text_probability, "audio_probability": recipe.audio_probability,
                "condition_noise": recipe.condition_noise, "part_probability": recipe.part_probability,
                "token_noise": recipe.token_noise, "balance_groups": recipe.balance_groups, "config": config.to_dict()}
    prior = train_prior(
        codes, conditions.image[train], None if conditions.text is None else conditions.text[train], config,
        epochs=settings["epochs"], batch_size=recipe.prior_batch_size, lr=recipe.prior_lr, seed=seed, device=device,
        condition_noise=recipe.condition_noise, text_probability=recipe.text_probability,
        audio_conditions=None if conditions.audio is None else conditions.audio[train],
        audio_probability=recipe.audio_probability,
        part_conditions=None if conditions.parts is None else conditions.parts[train], part_probability=recipe.part_probability,
        token_noise=recipe.token_noise,
        balance_weights=inverse_frequency_weights([data.groups[i] for i in train]) if recipe.balance_groups else None,
        checkpoint_dir=out / "checkpoints", resume=resume, time_budget_s=time_budget_s,
    )
    generator = Generator(tokenizer, prior, model_id)
    generator.save_pretrained(out, torch.float16)
    _record(out, "training-prior.json", data, settings, started, out / "checkpoints", "prior")
    logger.info("wrote generator %s", out)
    return generator
