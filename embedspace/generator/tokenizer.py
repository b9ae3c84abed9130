"""VQ image tokenizer: image ⇄ grid of discrete codes.

Implements a VQ-VAE (van den Oord et al., 2017, "Neural Discrete Representation
Learning") with the codebook tricks that keep a small codebook used and sharp:

- l2-normalised, low-dimensional codes looked up by cosine similarity (Yu et al., 2022,
  "Vector-quantized Image Modeling with Improved VQGAN", ViT-VQGAN);
- codebook initialised by spherical k-means on the first training batch and updated
  by exponential moving averages (VQ-VAE appendix; Razavi et al., 2019, VQ-VAE-2);
- dead-code restarts: a code whose EMA usage falls below a threshold is moved onto an
  encoder output of the current batch (Dhariwal et al., 2020, Jukebox), drawn in
  proportion to its quantisation error as in k-means++ seeding (Arthur &
  Vassilvitskii, 2007), which also seeds the first-batch k-means.

The loss is the trainer's: reconstruction error, the commitment term this module
returns, an optional perceptual term and VQGAN's patch-GAN term, with their weights, are
training settings (:class:`embedspace.recipes.generator_training.TokenizerObjective`),
not part of the saved tokenizer.

Shapes: images are float ``(B, 3, H, W)`` in [-1, 1]; codes are int64 ``(B, h, w)``
with ``h = H / downsample_factor``.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from embedspace.generator.serialization import load_component, save_component
from embedspace.typed_config import from_json_dict

#: Keys of tokenizer ``config.json`` files written before the loss settings moved to the
#: trainer (:class:`embedspace.recipes.generator_training.TokenizerObjective`): they are
#: read and ignored, so generator folders saved by earlier versions still load.
LEGACY_TRAINING_KEYS = frozenset(
    {"reconstruction_loss", "commitment_weight", "perceptual_weight", "gan_weight", "gan_start_step", "discriminator_width"}
)


@dataclass(frozen=True)
class TokenizerConfig:
    """Architecture of a :class:`VQTokenizer` and its codebook's update rule (saved as ``config.json``).

    Attributes:
        image_size: side of the square input images in pixels (default 32).
        widths: channels at each resolution level; ``len(widths) - 1`` stride-2
            downsamplings, so the default ``(64, 128, 128)`` gives 4× (32 px -> 8×8 codes).
        blocks_per_level: residual blocks per level in the encoder (decoder uses one more).
        codebook_size: number of codes K (the prior's vocabulary).
        code_dim: dimension of the l2-normalised codes (small: 8–64 works best).
        ema_decay: decay of the codebook's exponential moving averages, in (0, 1).
        dead_code_threshold: EMA usage (vectors per batch) under which a code restarts.
        kmeans_iterations: spherical k-means iterations for the first-batch init.
        norm_groups: groups of the GroupNorm layers. 1 (a per-image layer norm) keeps
            the colour of a single object on a plain background; VQGAN's 32 groups of
            few channels normalise each channel's response away and wash colours out.
    """

    image_size: int = 32
    widths: tuple[int, ...] = (64, 128, 128)
    blocks_per_level: int = 1
    codebook_size: int = 512
    code_dim: int = 32
    ema_decay: float = 0.99
    dead_code_threshold: float = 1.0
    kmeans_iterations: int = 10
    norm_groups: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.widths) < 1:
            raise ValueError("TokenizerConfig.widths needs at least one level, e.g. (64, 128, 128).")
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by the downsample factor "
                f"{self.downsample_factor} implied by widths={self.widths}."
            )
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay} must be in (0, 1).")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.widths) - 1)

    @property
    def grid_size(self) -> int:
        """Side of the code grid: ``image_size // downsample_factor``."""
        return self.image_size // self.downsample_factor

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["widths"] = list(self.widths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenizerConfig":
        """A config from its JSON form (legacy loss keys ignored, see :data:`LEGACY_TRAINING_KEYS`).

        Raises:
            ValueError: an unknown key, a missing one or a value of the wrong type (naming it).
        """
        return from_json_dict(cls, data, "tokenizer config", ignored=LEGACY_TRAINING_KEYS)


@dataclass(frozen=True)
class CodebookUsage:
    """How much of the codebook a set of codes uses.

    Attributes:
        used_codes: number of distinct codes that occur.
        codebook_size: K.
        perplexity: exp(entropy) of the code histogram; K when perfectly uniform.
    """

    used_codes: int
    codebook_size: int
    perplexity: float

    @property
    def used_fraction(self) -> float:
        return self.used_codes / self.codebook_size


def codebook_usage(codes: torch.Tensor, codebook_size: int) -> CodebookUsage:
    """Usage report of integer ``codes`` (any shape) over a codebook of ``codebook_size``."""
    counts = torch.bincount(codes.reshape(-1).long().cpu(), minlength=codebook_size).double()
    probs = counts / counts.sum().clamp(min=1)
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum().item()
    return CodebookUsage(int((counts > 0).sum()), codebook_size, math.exp(entropy))


def _group_norm(channels: int, groups: int = 1) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=1e-6)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv ×2 with a skip (1×1 conv when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1):
        super().__init__()
        self.norm1 = _group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _group_norm(out_channels, groups)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Encoder(nn.Module):
    """(B, 3, H, W) -> (B, code_dim, h, w), unnormalised."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        widths = config.widths
        self.conv_in = nn.Conv2d(3, widths[0], 3, padding=1)
        layers: list[nn.Module] = []
        width = widths[0]
        for level, level_width in enumerate(widths):
            for _ in range(config.blocks_per_level):
                layers.append(ResidualBlock(width, level_width, config.norm_groups))
                width = level_width
            if level < len(widths) - 1:
                layers.append(nn.Conv2d(width, width, 3, stride=2, padding=1))  # downsample ×2
        layers.append(ResidualBlock(width, width, config.norm_groups))
        self.layers = nn.Sequential(*layers)
        self.norm_out = _group_norm(width, config.norm_groups)
        self.conv_out = nn.Conv2d(width, config.code_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.conv_in(x))
        return self.conv_out(F.silu(self.norm_out(x)))


class Decoder(nn.Module):
    """(B, code_dim, h, w) -> (B, 3, H, W), unclamped."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        widths = config.widths[::-1]
        width = widths[0]
        self.conv_in = nn.Conv2d(config.code_dim, width, 3, padding=1)
        layers: list[nn.Module] = [ResidualBlock(width, width, config.norm_groups)]
        for level, level_width in enumerate(widths):
            for _ in range(config.blocks_per_level + 1):
                layers.append(ResidualBlock(width, level_width, config.norm_groups))
                width = level_width
            if level < len(widths) - 1:
                layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
                layers.append(nn.Conv2d(width, width, 3, padding=1))
        self.layers = nn.Sequential(*layers)
        self.norm_out = _group_norm(width, config.norm_groups)
        self.conv_out = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.conv_in(z))
        return self.conv_out(F.silu(self.norm_out(x)))


class VectorQuantizer(nn.Module):
    """Nearest l2-normalised code by cosine similarity; EMA updates; k-means init; restarts.

    The codebook is a buffer, not a parameter: it moves by EMA of the (normalised)
    encoder outputs assigned to each code, never by gradients.
    """

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        K, d = config.codebook_size, config.code_dim
        self.register_buffer("codebook", F.normalize(torch.randn(K, d), dim=-1))  # (K, d), unit rows
        self.register_buffer("cluster_size", torch.zeros(K))  # EMA of vectors per code per batch
        self.register_buffer("embed_sum", torch.zeros(K, d))  # EMA of the sum of assigned vectors
        self.register_buffer("initialized", torch.tensor(False))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) int64 -> quantised vectors (B, d, h, w)."""
        return self.codebook[codes].permute(0, 3, 1, 2).contiguous()

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """flat (N, d) unit vectors -> indices (N,) of the most similar codes."""
        return (flat @ self.codebook.t()).argmax(dim=-1)

    @staticmethod
    def _sample_by_error(error: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` row indices drawn with probability proportional to ``error`` (N,) (k-means++)."""
        weights = error.detach().float().clamp(min=1e-6).cpu()
        picked = torch.multinomial(weights, count, replacement=count > weights.numel(), generator=generator)
        return picked.to(error.device)

    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor, generator: torch.Generator) -> None:
        """k-means++ seeding then spherical Lloyd iterations on the first batch (N, d)."""
        K = self.config.codebook_size
        centroids = torch.empty(K, flat.shape[1], device=flat.device)
        centroids[0] = flat[torch.randint(flat.shape[0], (1,), generator=generator).item()]
        distance = 1 - flat @ centroids[0]  # (N,) cosine distance to the nearest centroid so far
        for k in range(1, K):
            centroids[k] = flat[self._sample_by_error(distance, 1, generator)[0]]
            distance = torch.minimum(distance, 1 - flat @ centroids[k])
        counts = torch.zeros(K, device=flat.device)
        for _ in range(max(1, self.config.kmeans_iterations)):
            assign = (flat @ centroids.t()).argmax(dim=-1)
            sums = torch.zeros_like(centroids).index_add_(0, assign, flat)
            counts = torch.bincount(assign, minlength=K).float()
            filled = counts > 0
            centroids[filled] = F.normalize(sums[filled], dim=-1)
        self.codebook.copy_(centroids)
        self.cluster_size.copy_(counts)
        self.embed_sum.copy_(centroids * counts[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor, error: torch.Tensor,
                    generator: torch.Generator) -> None:
        decay, K = self.config.ema_decay, self.config.codebook_size
        counts = torch.bincount(codes, minlength=K).float()
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        self.codebook.copy_(F.normalize(self.embed_sum, dim=-1))
        dead = self.cluster_size < self.config.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead:
            # restart dead codes on encoder outputs of this batch, drawn in proportion to
            # their quantisation error (k-means++ style): rare content, such as a small
            # object on a plain background, gets codes instead of more background copies
            pick = self._sample_by_error(error, n_dead, generator)
            self.codebook[dead] = flat[pick]
            self.cluster_size[dead] = self.config.dead_code_threshold
            self.embed_sum[dead] = flat[pick] * self.config.dead_code_threshold

    def forward(
        self, z: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Quantise encoder outputs.

        Args:
            z: (B, d, h, w) encoder outputs (any norm).
            generator: CPU generator for k-means init and restarts (training only).

        Returns:
            ``(z_q, codes, stats)``: straight-through quantised vectors (B, d, h, w),
            codes (B, h, w) int64 and stats with ``commitment`` (a loss), ``perplexity``
            and ``used_codes`` (detached) of this batch.
        """
        B, d, h, w = z.shape
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = F.normalize(z.float(), dim=1)
            flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, d)
            if self.training:
                generator = generator if generator is not None else torch.Generator().manual_seed(0)
                if not bool(self.initialized):
                    self._kmeans_init(flat.detach(), generator)
            similarity, codes = (flat.detach() @ self.codebook.t()).max(dim=-1)  # (B*h*w,)
            z_q = self.codebook[codes].view(B, h, w, d).permute(0, 3, 1, 2)  # before this step's update
            if self.training:
                self._ema_update(flat.detach(), codes, 1 - similarity, generator)
            commitment = F.mse_loss(z, z_q.detach())
            z_q = z + (z_q - z).detach()  # straight-through estimator
        probs = torch.bincount(codes, minlength=self.config.codebook_size).float() / codes.numel()
        stats = {
            "commitment": commitment,
            "perplexity": torch.exp(-(probs * probs.clamp(min=1e-12).log()).sum()).detach(),
            "used_codes": (probs > 0).sum().detach().float(),
        }
        return z_q, codes.view(B, h, w), stats


class VQTokenizer(nn.Module):
    """VQ autoencoder: ``encode`` images to code grids, ``decode`` code grids to images."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quantizer = VectorQuantizer(config)
        self.decoder = Decoder(config)

    @property
    def device(self) -> torch.device:
        return self.quantizer.codebook.device

    def _check_images(self, images: torch.Tensor) -> None:
        size = self.config.image_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != size or images.shape[3] != size:
            raise ValueError(
                f"expected images of shape (B, 3, {size}, {size}) in [-1, 1], got {tuple(images.shape)}."
            )

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) float in [-1, 1] -> codes (B, h, w) int64."""
        self._check_images(images)
        z = F.normalize(self.encoder(images).float(), dim=1)  # (B, d, h, w)
        B, d, h, w = z.shape
        return self.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, d)).view(B, h, w)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, h, w) int64 -> images (B, 3, H, W) float, clamped to [-1, 1]."""
        if codes.ndim != 3:
            raise ValueError(f"expected codes of shape (B, h, w), got {tuple(codes.shape)}.")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size}).")
        return self.decoder(self.quantizer.lookup(codes.to(self.device))).clamp(-1.0, 1.0)

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Reconstruct ``images`` through the codebook and return ``(reconstruction, stats)``.

        Args:
            images: (B, 3, H, W) float in [-1, 1].
            generator: CPU generator for codebook init/restarts (training).

        Returns:
            reconstruction (B, 3, H, W), unclamped (gradients reach the encoder through
            the straight-through estimator), and the quantizer's ``commitment`` loss
            (unweighted) with the detached ``perplexity`` and ``used_codes`` of this batch.
            The trainer builds the loss from them
            (:func:`embedspace.recipes.generator_training.tokenizer_loss`).
        """
        self._check_images(images)
        z_q, _, stats = self.quantizer(self.encoder(images), generator)
        return self.decoder(z_q), stats  # (B, 3, H, W)

    def codebook_usage(self, codes: torch.Tensor) -> CodebookUsage:
        """Usage report (distinct codes, perplexity) of ``codes`` produced by :meth:`encode`."""
        return codebook_usage(codes, self.config.codebook_size)

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
        """Write ``folder/config.json`` and ``folder/model.safetensors`` (weights in ``dtype`` if given)."""
        save_component(self, self.config.to_dict(), folder, dtype)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "VQTokenizer":
        """Load a tokenizer saved by :meth:`save_pretrained`, in eval mode on ``device``.

        Raises:
            FileNotFoundError: the folder lacks ``config.json`` or ``model.safetensors``.
            ValueError: ``config.json`` is not a valid tokenizer config (naming the file and key).
        """
        config, state = load_component(folder, TokenizerConfig.from_dict)
        model = cls(config)
        model.load_state_dict(state)
        return model.to(device).eval()
