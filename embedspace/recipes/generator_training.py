"""Training loops for the VQ tokenizer and the transformer prior.

- :func:`train_tokenizer`: VQ-VAE reconstruction + commitment loss (van den Oord et
  al., 2017), an optional perceptual callable, and the optional VQGAN patch-GAN hinge
  loss (Esser et al., 2021), weighted as a :class:`TokenizerObjective` says (training
  settings: they are recorded with the run, not saved with the tokenizer).
- :func:`train_prior`: next-code cross-entropy given a condition. Each sample's
  condition is its image embedding or its caption's text embedding, with gaussian
  noise added and renormalised to bridge the image/text gap (CLIP-GEN, Wang et al.,
  2022; LAFITE, Zhou et al., 2022), replaced by the null condition with probability
  ``condition_dropout`` for classifier-free guidance (Ho & Salimans, 2022).

Both loops are seeded by one CPU ``torch.Generator`` (data order, noise, codebook
restarts), use AdamW with linear warm-up and cosine decay, bfloat16 autocast on CUDA,
show a tqdm bar with the loss, and write a resumable checkpoint after every epoch
when ``checkpoint_dir`` is given; the schedule, the epoch plan under a time budget and
the checkpoints are :mod:`embedspace.recipes.loop`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from embedspace.generator.prior import Prior, PriorConfig
from embedspace.generator.tokenizer import TokenizerConfig, VQTokenizer
from embedspace.recipes.loop import (
    EpochPlan,
    capped_warmup,
    read_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    set_learning_rate,
    warmup_cosine,
)

logger = logging.getLogger(__name__)

TOKENIZER_CHECKPOINT = "tokenizer_checkpoint.pt"
PRIOR_CHECKPOINT = "prior_checkpoint.pt"
#: Final learning rate of both loops, as a fraction of the peak.
FINAL_LR_FRACTION = 0.1
RECONSTRUCTION_LOSSES = ("l1", "mse")

Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``perceptual(images, reconstructions) -> scalar`` loss, both ``(B, 3, H, W)`` in [-1, 1]."""


@dataclass(frozen=True)
class TokenizerObjective:
    """What :func:`train_tokenizer` minimises: the loss terms and their weights (training only).

    Attributes:
        reconstruction_loss: "mse" (default) or "l1". L1 washes out the colour of small
            objects on a plain background (measured on the shapes set: 16% vs 100% colour
            read back after 400 steps of a plain autoencoder).
        commitment_weight: beta of the VQ-VAE commitment loss.
        perceptual_weight: weight of the perceptual callable, when one is given.
        gan_weight: weight of the patch-GAN generator loss; 0 turns the GAN off.
        gan_start_step: optimiser step at which the GAN term starts (VQGAN warm-up).
        discriminator_width: channels of the first discriminator layer.
    """

    reconstruction_loss: str = "mse"
    commitment_weight: float = 0.25
    perceptual_weight: float = 0.5
    gan_weight: float = 0.0
    gan_start_step: int = 0
    discriminator_width: int = 64

    def __post_init__(self) -> None:
        if self.reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"reconstruction_loss={self.reconstruction_loss!r}; allowed: {RECONSTRUCTION_LOSSES}.")
        weights = {"commitment_weight": self.commitment_weight, "perceptual_weight": self.perceptual_weight, "gan_weight": self.gan_weight}
        for name, value in weights.items():
            if not value >= 0:
                raise ValueError(f"{name}={value} must be >= 0.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tokenizer_loss(
    images: torch.Tensor,
    reconstruction: torch.Tensor,
    stats: dict[str, torch.Tensor],
    objective: TokenizerObjective,
    perceptual: Perceptual | None = None,
) -> dict[str, torch.Tensor]:
    """The tokenizer's training loss from one forward pass (the GAN term is added by the loop).

    Args:
        images: (B, 3, H, W) float in [-1, 1], the input.
        reconstruction: (B, 3, H, W), what :meth:`VQTokenizer.forward` returned for them.
        stats: the quantizer stats it returned (``commitment``, ``perplexity``, ``used_codes``).
        objective: the loss terms' weights.
        perceptual: optional ``perceptual(images, reconstruction) -> scalar``.

    Returns:
        ``loss`` (the weighted sum), ``reconstruction``, ``perceptual`` (0 without a
        callable) and the quantizer's stats, all scalars.
    """
    if objective.reconstruction_loss == "l1":
        error = F.l1_loss(reconstruction.float(), images.float())
    else:
        error = F.mse_loss(reconstruction.float(), images.float())
    perceptual_loss = perceptual(images, reconstruction) if perceptual is not None else reconstruction.new_zeros(())
    loss = error + objective.commitment_weight * stats["commitment"] + objective.perceptual_weight * perceptual_loss
    return {"loss": loss, "reconstruction": error, "perceptual": perceptual_loss, **stats}


def images_to_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1] (on the input's device)."""
    x = torch.as_tensor(images)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {x.dtype} {tuple(x.shape)}.")
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix / VQGAN): (B, 3, H, W) -> logits (B, 1, H/4, W/4)."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width * 2, 4, stride=2, padding=1),
            nn.GroupNorm(1, width * 2, eps=1e-6),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, width * 2, 3, padding=1),
            nn.GroupNorm(1, width * 2, eps=1e-6),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width * 2, 1, 3, padding=1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge loss of the discriminator (VQGAN): mean(relu(1 - real)) + mean(relu(1 + fake)), halved."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN: -mean(D(reconstruction))."""
    return -fake_logits.mean()


def inverse_frequency_weights(groups: Sequence[Hashable]) -> np.ndarray:
    """(N,) float64 sampling weights 1 / (size of each item's group), for ``balance_weights``.

    With groups = base emoji (skin-tone variants share one), every base emoji is drawn
    equally often, so people do not dominate the training data.
    """
    counts = Counter(groups)
    return np.array([1.0 / counts[g] for g in groups], dtype=np.float64)


def _epoch_order(n: int, weights: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Indices for one epoch: a permutation, or n draws with replacement by ``weights``."""
    if weights is None:
        return torch.randperm(n, generator=generator)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def _check_weights(weights: np.ndarray | None, n: int) -> torch.Tensor | None:
    if weights is None:
        return None
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if w.shape != (n,) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"balance_weights must be ({n},) finite, >= 0 and not all zero; got shape {tuple(w.shape)}.")
    return w


def _autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def train_tokenizer(
    images: np.ndarray,
    config: TokenizerConfig | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    perceptual: Perceptual | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    balance_weights: np.ndarray | None = None,
    warmup_steps: int = 200,
    time_budget_s: float | None = None,
    objective: TokenizerObjective | None = None,
) -> VQTokenizer:
    """Train a :class:`VQTokenizer` on ``images``.

    Args:
        images: (N, H, W, 3) uint8 with H = W = ``config.image_size``.
        config: architecture (default :class:`TokenizerConfig`).
        epochs: passes over the data (N samples each).
        batch_size: images per step.
        lr: peak AdamW learning rate (betas 0.5, 0.9 as in VQGAN).
        seed: seeds weights, data order and codebook restarts.
        device: "cpu" or "cuda" (bfloat16 autocast on CUDA).
        perceptual: optional ``perceptual(images, recon) -> scalar`` (e.g. cosine
            distance of image-tower embeddings), weighted by ``objective.perceptual_weight``.
        checkpoint_dir: folder for ``tokenizer_checkpoint.pt``, written every epoch.
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        progress: show a tqdm bar.
        balance_weights: optional (N,) sampling weights (e.g. 1 / size of each base
            emoji's group); epochs then draw N samples with replacement.
        warmup_steps: linear warm-up steps (capped at a tenth of training).
        time_budget_s: optional wall-clock budget for this call: after each epoch the
            number of epochs is cut to what fits at the pace so far, and the learning-rate
            schedule is stretched to end there. The epochs run are logged and kept in the
            checkpoint history; pass ``epochs=`` that number to reproduce a run exactly.
        objective: the loss terms and their weights, the GAN's included (default
            :class:`TokenizerObjective`: MSE, commitment 0.25, no GAN).

    Returns:
        The trained tokenizer in eval mode on ``device``.
    """
    config = config or TokenizerConfig()
    objective = objective or TokenizerObjective()
    device = torch.device(device)
    data = torch.as_tensor(np.asarray(images))
    images_to_tensor(data[:1])  # validates dtype and layout
    if data.shape[1] != config.image_size or data.shape[2] != config.image_size:
        raise ValueError(f"images are {tuple(data.shape[1:3])} px but config.image_size is {config.image_size}.")
    data = data.to(device)
    weights = _check_weights(balance_weights, len(data))
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VQTokenizer(config).to(device)
        discriminator = PatchDiscriminator(objective.discriminator_width).to(device) if objective.gan_weight > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
    d_optimizer = (
        torch.optim.AdamW(discriminator.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
        if discriminator is not None else None
    )
    steps_per_epoch = max(1, len(data) // batch_size)
    warmup = capped_warmup(warmup_steps, epochs * steps_per_epoch)
    path = Path(checkpoint_dir) / TOKENIZER_CHECKPOINT if checkpoint_dir is not None else None
    parts = {"model": model, "optimizer": optimizer, "discriminator": discriminator, "d_optimizer": d_optimizer}
    settings = {**config.to_dict(), **objective.to_dict()}  # the checkpoint's config: both (as before they were split)
    start_epoch, step, history = resume_checkpoint(path, settings, resume, generator, **parts)
    logger.info("training tokenizer: %d images, %d epochs × %d steps, config %s, objective %s",
                len(data), epochs, steps_per_epoch, config, objective)
    model.train()
    plan = EpochPlan(epochs, steps_per_epoch, start_epoch, time_budget_s, "tokenizer")
    for epoch in plan:
        order = _epoch_order(len(data), weights, generator)
        totals: dict[str, float] = {}
        bar = tqdm(range(steps_per_epoch), desc=f"tokenizer {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i in bar:
            x = images_to_tensor(data[order[i * batch_size : (i + 1) * batch_size].to(device)])  # (B, 3, H, W)
            set_learning_rate(optimizer, lr * warmup_cosine(step, plan.total_steps, warmup, FINAL_LR_FRACTION))
            use_gan = discriminator is not None and step >= objective.gan_start_step
            with _autocast(device):
                recon, stats = model(x, generator)
                losses = tokenizer_loss(x, recon, stats, objective, perceptual)
                loss = losses["loss"]
                if use_gan:
                    adversarial = generator_adversarial_loss(discriminator(recon))
                    losses["adversarial"] = adversarial
                    loss = loss + objective.gan_weight * adversarial
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if use_gan:
                with _autocast(device):
                    d_loss = discriminator_hinge_loss(discriminator(x), discriminator(recon.detach()))
                d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                d_optimizer.step()
                losses["discriminator"] = d_loss
            step += 1
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value.detach()
            if progress and (i % 10 == 0 or i == steps_per_epoch - 1):
                bar.set_postfix(loss=f"{loss.item():.4f}", perplexity=f"{losses['perplexity'].item():.0f}")
        summary = {key: float(value) / steps_per_epoch for key, value in totals.items()}
        history.append(summary)
        logger.info("tokenizer epoch %d/%d: %s", epoch + 1, epochs,
                    ", ".join(f"{k}={v:.4g}" for k, v in summary.items()))
        save_checkpoint(path, settings, generator, epoch + 1, step, history, **parts)
    return model.eval()


def _as_conditions(vectors: np.ndarray | None, n: int, dim: int | None, name: str) -> torch.Tensor | None:
    if vectors is None:
        return None
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] != n or (dim is not None and x.shape[1] != dim):
        raise ValueError(f"{name} must be float32 (N={n}, D{'=' + str(dim) if dim else ''}), got {tuple(x.shape)}.")
    return x


def _part_slots(condition: torch.Tensor, part_c: torch.Tensor | None, has_part: torch.Tensor | None, idx: torch.Tensor,
                probability: float, keep: float, noise_norm: float, slots: int, generator: torch.Generator) -> torch.Tensor:
    """(B, slots, D) conditions for a prior that composes: each row holds its one condition, or
    (with ``probability``, where it has parts) each of its parts kept with probability ``keep``,
    noised like the conditions; empty slots are zero rows; every row's slots are shuffled."""
    B, D = condition.shape
    out = torch.zeros(B, slots, D)
    out[:, 0] = condition
    if part_c is not None:
        parts = part_c[idx]  # (B, K, D)
        K = parts.shape[1]
        noise = torch.randn(B, K, D, generator=generator)
        parts = F.normalize(parts + noise_norm * noise / noise.norm(dim=2, keepdim=True), dim=2)
        kept = has_part[idx] & (torch.rand(B, K, generator=generator) < keep)  # (B, K)
        use = (torch.rand(B, generator=generator) < probability) & has_part[idx].any(dim=1)  # (B,)
        out[use, :K] = torch.where(kept[use, :, None], parts[use], 0.0)
        out[use, K:] = 0.0
    order = torch.argsort(torch.rand(B, slots, generator=generator), dim=1)  # (B, slots)
    return torch.gather(out, 1, order[:, :, None].expand(B, slots, D))


def train_prior(
    codes: np.ndarray,
    image_conditions: np.ndarray,
    text_conditions: np.ndarray | None = None,
    config: PriorConfig | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 6e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    condition_noise: float = 0.1,
    condition_dropout: float = 0.1,
    text_probability: float = 0.5,
    balance_weights: np.ndarray | None = None,
    weight_decay: float = 0.1,
    audio_conditions: np.ndarray | None = None,
    audio_probability: float = 0.0,
    part_conditions: np.ndarray | None = None,
    part_probability: float = 0.0,
    part_keep: float = 0.7,
    token_noise: float = 0.0,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    warmup_steps: int = 200,
    time_budget_s: float | None = None,
) -> Prior:
    """Train a :class:`Prior` on code grids with their conditions.

    Args:
        codes: (N, h, w) int64 code grids from the tokenizer.
        image_conditions: (N, D) float32 unit embeddings of the images.
        text_conditions: optional (N, D) float32 unit embeddings of their captions; a
            row of NaN means "no caption" and falls back to the image embedding.
        config: architecture (default: PriorConfig fitted to the data's grid, D and
            largest code; pass one to fix vocab_size to the codebook size).
        epochs, batch_size, lr, weight_decay, warmup_steps: optimisation (AdamW,
            betas 0.9/0.95, decay on matrices only, warm-up then cosine).
        seed: seeds weights, data order, modality choice, noise and dropout.
        device: "cpu" or "cuda" (bfloat16 autocast on CUDA).
        condition_noise: norm of the gaussian perturbation added to each unit
            condition before renormalising (0.1 ≈ 6 degrees).
        condition_dropout: probability of replacing a condition by the null one.
        text_probability: probability of using the caption rather than the image.
        audio_conditions: optional (N, D) float32 unit embeddings of a spoken caption of
            each image (a row of NaN means none), so that sounds, which sit apart from
            texts and images in the space, are conditions the prior has seen.
        audio_probability: probability of using the spoken caption instead of the
            image or caption chosen above (where there is one).
        part_conditions: optional (N, K, D) float32 unit embeddings of K texts that each
            name one part of the image ("red shape", "circle", "shape at the top left"; a
            row of NaN means none), for a prior that composes (``config.condition_parts``
            >= K; see :mod:`embedspace.generator.prior`).
        part_probability: probability of conditioning on the row's parts instead of the
            condition chosen above: each part is kept with probability ``part_keep``
            (attribute dropout), and the points are put in shuffled slots, so the prior
            learns what each part asks for, in any order and in any subset.
        token_noise: fraction of the input codes replaced by random codes (the targets stay
            the real codes), so the prior learns to recover from tokens that went astray,
            as its own samples do, and to lean on the condition rather than on recalling a
            training sequence from its first tokens.
        balance_weights: optional (N,) sampling weights (balance by base emoji).
        checkpoint_dir, resume, progress, time_budget_s: as in :func:`train_tokenizer`.

    Returns:
        The trained prior in eval mode on ``device``.
    """
    device = torch.device(device)
    codes_t = torch.as_tensor(np.asarray(codes)).long()
    if codes_t.ndim != 3 or codes_t.shape[1] != codes_t.shape[2]:
        raise ValueError(f"codes must be (N, h, w) with h == w, got {tuple(codes_t.shape)}.")
    N = codes_t.shape[0]
    image_c = _as_conditions(image_conditions, N, None, "image_conditions")
    D = image_c.shape[1]
    text_c = _as_conditions(text_conditions, N, D, "text_conditions")
    audio_c = _as_conditions(audio_conditions, N, D, "audio_conditions")
    part_c = None if part_conditions is None else torch.as_tensor(np.asarray(part_conditions, dtype=np.float32))
    if part_c is not None and (part_c.ndim != 3 or part_c.shape[0] != N or part_c.shape[2] != D):
        raise ValueError(f"part_conditions must be float32 (N={N}, K, D={D}), got {tuple(part_c.shape)}.")
    if config is None:
        config = PriorConfig(vocab_size=int(codes_t.max()) + 1, grid_size=codes_t.shape[1], condition_dim=D)
        logger.warning("no PriorConfig given; using %s", config)
    if config.grid_size != codes_t.shape[1] or config.condition_dim != D or int(codes_t.max()) >= config.vocab_size:
        raise ValueError(
            f"the data (grid {codes_t.shape[1]}, D={D}, codes up to {int(codes_t.max())}) does not fit {config}."
        )
    if part_c is not None and part_c.shape[1] > config.condition_parts:
        raise ValueError(f"part_conditions hold {part_c.shape[1]} parts per image; the prior takes "
                         f"{config.condition_parts} (set condition_parts in its config).")
    if not 0 <= condition_dropout < 1 or not all(0 <= p <= 1 for p in (text_probability, audio_probability, part_probability, part_keep)) \
            or condition_noise < 0 or not 0 <= token_noise < 1:
        raise ValueError("condition_dropout and token_noise must be in [0, 1), text_probability, audio_probability, "
                         "part_probability and part_keep in [0, 1], condition_noise >= 0.")
    has_text = torch.isfinite(text_c).all(dim=1) if text_c is not None else torch.zeros(N, dtype=torch.bool)
    if text_c is not None:
        text_c = torch.nan_to_num(text_c)
    has_audio = torch.isfinite(audio_c).all(dim=1) if audio_c is not None else torch.zeros(N, dtype=torch.bool)
    if audio_c is not None:
        audio_c = torch.nan_to_num(audio_c)
    has_part = torch.isfinite(part_c).all(dim=2) if part_c is not None else None  # (N, K)
    if part_c is not None:
        part_c = torch.nan_to_num(part_c)
    weights = _check_weights(balance_weights, N)
    sequences = codes_t.view(N, -1).to(device)  # (N, L)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Prior(config).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.95),
    )
    steps_per_epoch = max(1, N // batch_size)
    warmup = capped_warmup(warmup_steps, epochs * steps_per_epoch)
    path = Path(checkpoint_dir) / PRIOR_CHECKPOINT if checkpoint_dir is not None else None
    start_epoch, step, history = resume_checkpoint(path, config.to_dict(), resume, generator, model=model, optimizer=optimizer)
    logger.info("training prior (%.1fM parameters): %d sequences, %d epochs × %d steps, config %s",
                model.num_parameters() / 1e6, N, epochs, steps_per_epoch, config)
    model.train()
    plan = EpochPlan(epochs, steps_per_epoch, start_epoch, time_budget_s, "prior")
    for epoch in plan:
        order = _epoch_order(N, weights, generator)
        total = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"prior {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = order[i * batch_size : (i + 1) * batch_size]  # (B,) on CPU
            B = idx.shape[0]
            condition = image_c[idx]  # (B, D)
            if text_c is not None:
                use_text = (torch.rand(B, generator=generator) < text_probability) & has_text[idx]
                condition = torch.where(use_text[:, None], text_c[idx], condition)
            if audio_c is not None:
                use_audio = (torch.rand(B, generator=generator) < audio_probability) & has_audio[idx]
                condition = torch.where(use_audio[:, None], audio_c[idx], condition)
            noise = torch.randn(B, D, generator=generator)
            noise = condition_noise * noise / noise.norm(dim=1, keepdim=True)
            condition = F.normalize(condition + noise, dim=1)
            if config.condition_parts > 1:
                condition = _part_slots(condition, part_c, has_part, idx, part_probability, part_keep,
                                        condition_noise, config.condition_parts, generator)
            condition = condition.to(device)
            drop = (torch.rand(B, generator=generator) < condition_dropout).to(device)
            targets = sequences[idx.to(device)]  # (B, L)
            inputs = targets[:, :-1]
            if token_noise > 0:
                swap = torch.rand(inputs.shape, generator=generator) < token_noise
                random_codes = torch.randint(config.vocab_size, inputs.shape, generator=generator)
                inputs = torch.where(swap.to(device), random_codes.to(device), inputs)
            set_learning_rate(optimizer, lr * warmup_cosine(step, plan.total_steps, warmup, FINAL_LR_FRACTION))
            with _autocast(device):
                _, loss = model(inputs, condition, targets=targets, drop_condition=drop)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            total += loss.detach()
            if progress and (i % 10 == 0 or i == steps_per_epoch - 1):
                bar.set_postfix(loss=f"{loss.item():.4f}")
        history.append({"loss": float(total) / steps_per_epoch})
        logger.info("prior epoch %d/%d: loss=%.4f", epoch + 1, epochs, history[-1]["loss"])
        save_checkpoint(path, config.to_dict(), generator, epoch + 1, step, history, model=model, optimizer=optimizer)
    return model.eval()


def load_history(checkpoint_dir: str | os.PathLike, component: str = "tokenizer") -> list[dict[str, float]]:
    """Per-epoch mean losses stored in a training checkpoint ("tokenizer" or "prior")."""
    names = {"tokenizer": TOKENIZER_CHECKPOINT, "prior": PRIOR_CHECKPOINT}
    if component not in names:
        raise ValueError(f"component={component!r}; allowed: {tuple(names)}.")
    path = Path(checkpoint_dir) / names[component]
    if not path.is_file():
        raise FileNotFoundError(f"no {component} checkpoint at {path}.")
    return read_checkpoint(path)["history"]
