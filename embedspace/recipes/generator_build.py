"""Build a generator folder from a training set: the two steps behind ``embedspace train``.

1. :func:`build_tokenizer` trains the VQ tokenizer on the training images and writes
   ``out/tokenizer/`` (plus a resumable checkpoint and ``training-tokenizer.json``).
2. :func:`build_generator` encodes the images with that tokenizer, embeds the
   conditions with the encoder model, trains the prior and writes the whole
   generator folder (``Generator.save_pretrained``) with ``training-prior.json``.

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
from pathlib import Path

import torch

from embedspace.generator.pipeline import Generator
from embedspace.generator.serialization import write_json
from embedspace.generator.tokenizer import VQTokenizer
from embedspace.models.model import EmbeddingModel
from embedspace.recipes.generator_data import GeneratorData, embed_conditions
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
    """Train the prior on ``out/tokenizer/``'s codes of the training rows; writes the generator folder ``out``."""
    out = Path(out)
    if not (out / "tokenizer" / "config.json").is_file():
        raise FileNotFoundError(f"{out / 'tokenizer'} holds no tokenizer; run `embedspace train tokenizer --out {out}` first.")
    recipe = data.recipe
    started = time.perf_counter()
    tokenizer = VQTokenizer.from_pretrained(out / "tokenizer", device)
    encoder = EmbeddingModel.load(model)
    image_conditions, text_conditions, audio_conditions = embed_conditions(data, encoder, seed)
    train = data.train
    codes = encode_images(tokenizer, data.images[train])
    if image_conditions is None:  # shapes: captions only
        image_conditions, text_conditions = text_conditions, None
    config = recipe.prior_config(encoder.embed_dim)
    settings = {"model": encoder.model_id, "encoder_fingerprint": encoder.fingerprint,
                "epochs": epochs or recipe.prior_epochs, "batch_size": recipe.prior_batch_size, "lr": recipe.prior_lr,
                "seed": seed, "device": device, "time_budget_s": time_budget_s,
                "text_probability": recipe.text_probability, "audio_probability": recipe.audio_probability,
                "condition_noise": recipe.condition_noise,
                "config": config.to_dict()}
    prior = train_prior(
        codes, image_conditions[train], None if text_conditions is None else text_conditions[train], config,
        epochs=settings["epochs"], batch_size=recipe.prior_batch_size, lr=recipe.prior_lr, seed=seed, device=device,
        condition_noise=recipe.condition_noise, text_probability=recipe.text_probability,
        audio_conditions=None if audio_conditions is None else audio_conditions[train],
        audio_probability=recipe.audio_probability,
        balance_weights=inverse_frequency_weights([data.groups[i] for i in train]),
        checkpoint_dir=out / "checkpoints", resume=resume, time_budget_s=time_budget_s,
    )
    generator = Generator(tokenizer, prior, encoder.model_id)
    generator.save_pretrained(out, torch.float16)
    _record(out, "training-prior.json", data, settings, started, out / "checkpoints", "prior")
    logger.info("wrote generator %s", out)
    return generator
