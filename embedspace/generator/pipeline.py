"""The generator pipeline: condition vector -> prefix -> transformer -> codes -> VQ decoder -> image.

Ties a :class:`VQTokenizer` and a :class:`Prior` to the encoder model whose space the
prior was trained on, and saves them as one diffusers-style folder::

    folder/
      config.json          format version, encoder_model_id, condition_dim, image_size
      tokenizer/           config.json + model.safetensors
      prior/               config.json + model.safetensors

Named generators live in ``embedspace/generator/pretrained/<name>/`` in that format.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedspace.generator.prior import Prior
from embedspace.generator.sampling import OnToken, sample, validate_conditions
from embedspace.generator.serialization import CONFIG_NAME, read_json, write_json
from embedspace.generator.tokenizer import VQTokenizer

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


@dataclass(frozen=True)
class GenerationResult:
    """Images generated from condition vectors, row-aligned.

    Images are condition-major: with N conditions and ``n`` images each, image
    ``i * n + j`` is sample ``j`` of condition ``i``.

    Attributes:
        images: N*n RGB PIL images.
        conditions: (N*n, D) float32, the (renormalised) condition of each image.
        tokens: (N*n, h, w) int64, the sampled code grids.
        seeds: (N*n,) int64, the seed of each image; ``generate(condition, n=1,
            seed=seeds[k])`` reproduces image k with the same options.
    """

    images: list[Image.Image]
    conditions: np.ndarray
    tokens: np.ndarray
    seeds: np.ndarray


def list_pretrained() -> list[str]:
    """Names of the generators shipped in ``embedspace/generator/pretrained/``."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def resolve_folder(name_or_path: str | os.PathLike) -> Path:
    """The folder of a generator: ``name_or_path`` itself, or a named one shipped in the package."""
    folder = Path(name_or_path)
    if (folder / CONFIG_NAME).is_file():
        return folder
    named = PRETRAINED_DIR / str(name_or_path)
    if not (named / CONFIG_NAME).is_file():
        raise ValueError(
            f"no generator folder or named generator {str(name_or_path)!r}; named generators: "
            f"{list_pretrained() or 'none shipped'}. Pass a folder written by Generator.save_pretrained."
        )
    return named


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """images (B, 3, H, W) float in [-1, 1] -> B RGB PIL images."""
    pixels = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return [Image.fromarray(p) for p in pixels.permute(0, 2, 3, 1).cpu().numpy()]


class Generator:
    """Autoregressive image generator conditioned on points of one embedding space.

    Args:
        tokenizer: the VQ tokenizer (its codebook is the prior's vocabulary).
        prior: the transformer prior.
        encoder_model_id: id of the encoder model whose vectors the prior was trained on.
    """

    def __init__(self, tokenizer: VQTokenizer, prior: Prior, encoder_model_id: str):
        if tokenizer.config.codebook_size != prior.config.vocab_size:
            raise ValueError(
                f"tokenizer has {tokenizer.config.codebook_size} codes but the prior's vocabulary is "
                f"{prior.config.vocab_size}; they were not trained together."
            )
        if tokenizer.config.grid_size != prior.config.grid_size:
            raise ValueError(
                f"tokenizer makes {tokenizer.config.grid_size}×{tokenizer.config.grid_size} codes but the "
                f"prior models {prior.config.grid_size}×{prior.config.grid_size}."
            )
        self.tokenizer = tokenizer.eval()
        self.prior = prior.eval()
        self.encoder_model_id = encoder_model_id

    @property
    def condition_dim(self) -> int:
        """D, the dimension of the condition vectors."""
        return self.prior.config.condition_dim

    @property
    def image_size(self) -> int:
        return self.tokenizer.config.image_size

    @property
    def device(self) -> torch.device:
        return self.prior.device

    def to(self, device: str | torch.device) -> "Generator":
        """Move both components to ``device`` ("cpu", "cuda", ...); returns self."""
        self.tokenizer.to(device)
        self.prior.to(device)
        return self

    def check_compatible(self, model_id: str) -> None:
        """Raise ValueError unless vectors from encoder ``model_id`` suit this generator."""
        if model_id != self.encoder_model_id:
            raise ValueError(
                f"this generator was trained for encoder model {self.encoder_model_id!r}, not {model_id!r}; "
                f"encode the conditions with {self.encoder_model_id!r} or use a generator trained for "
                f"{model_id!r}."
            )

    @classmethod
    def load(
        cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu", encoder_model_id: str | None = None
    ) -> "Generator":
        """Load a generator folder, or a named one from ``embedspace/generator/pretrained/``.

        Args:
            name_or_path: a folder written by :meth:`save_pretrained`, or a name.
            device: where to put the models.
            encoder_model_id: if given, fail unless the generator was trained for it.
        """
        folder = resolve_folder(name_or_path)
        config = read_json(folder / CONFIG_NAME)
        if config.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"{folder} has generator format {config['format_version']}; this embedspace reads up to "
                f"{FORMAT_VERSION}. Upgrade embedspace."
            )
        generator = cls(
            VQTokenizer.from_pretrained(folder / "tokenizer", device),
            Prior.from_pretrained(folder / "prior", device),
            config["encoder_model_id"],
        )
        if encoder_model_id is not None:
            generator.check_compatible(encoder_model_id)
        logger.info("loaded generator from %s (encoder %s)", folder, generator.encoder_model_id)
        return generator

    def save_pretrained(self, folder: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
        """Write ``folder/config.json``, ``folder/tokenizer/`` and ``folder/prior/``.

        ``dtype=torch.float16`` halves the weight files (to ship in the repository);
        loading casts back to float32.
        """
        folder = Path(folder)
        self.tokenizer.save_pretrained(folder / "tokenizer", dtype)
        self.prior.save_pretrained(folder / "prior", dtype)
        write_json(
            folder / CONFIG_NAME,
            {
                "format_version": FORMAT_VERSION,
                "encoder_model_id": self.encoder_model_id,
                "condition_dim": self.condition_dim,
                "image_size": self.image_size,
                "grid_size": self.prior.config.grid_size,
            },
        )

    def decode(self, codes: torch.Tensor | np.ndarray) -> list[Image.Image]:
        """Code grids (B, h, w) int64 -> B PIL images."""
        return to_pil(self.tokenizer.decode(torch.as_tensor(codes, device=self.device).long()))

    def preview(self, tokens_so_far: torch.Tensor) -> list[Image.Image]:
        """Images of partly generated code grids, for a token-by-token display.

        Args:
            tokens_so_far: (B, t) int64 codes in raster order, as passed to ``on_token``.

        Returns:
            B images: the grid decoded with each missing code copied from the last
            generated one, then the cells not generated yet painted light grey.
        """
        tokens = torch.as_tensor(tokens_so_far, device=self.device).long()
        B, t = tokens.shape
        grid, factor = self.prior.config.grid_size, self.tokenizer.config.downsample_factor
        if t == 0:
            return to_pil(torch.full((B, 3, self.image_size, self.image_size), 0.6, device=self.device))
        codes = torch.cat([tokens, tokens[:, -1:].expand(B, grid * grid - t)], dim=1).view(B, grid, grid)
        images = self.tokenizer.decode(codes)  # (B, 3, H, W)
        pending = (torch.arange(grid * grid, device=self.device) >= t).view(1, 1, grid, grid).float()
        pending = F.interpolate(pending, scale_factor=factor, mode="nearest").bool()  # (1, 1, H, W)
        return to_pil(images.masked_fill(pending, 0.6))

    def generate(
        self,
        vectors: np.ndarray | torch.Tensor,
        n: int = 4,
        seed: int = 0,
        guidance: float = 3.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        plausibility: float = 0.1,
        seeds: Sequence[int] | None = None,
    ) -> GenerationResult:
        """Generate ``n`` images for each condition vector.

        Args:
            vectors: (N, D) or (D,) float32 L2-normalised points of the space.
            n: images per vector.
            seed: image k (condition-major) uses ``torch.Generator().manual_seed(seed + k)``,
                so a result does not depend on ``batch_size`` (with one torch thread; with several, batches of
                another shape can round differently and, rarely, flip a sampled code).
            guidance: classifier-free guidance scale (1 = off; 2–5 typical).
            temperature, top_k, top_p, plausibility: see
                :func:`embedspace.generator.sampling.sample`.
            on_token: ``on_token(step, tokens_so_far (b, step + 1))``, called for every
                token of every batch (step restarts at 0 for each batch).
            batch_size: images sampled together (2× rows with guidance).
            seeds: optional seed of each image (N * n of them, condition-major), instead of
                ``seed + k``; e.g. one seed for every point of a path, sampled in one batch.
        """
        if n < 1 or batch_size < 1:
            raise ValueError(f"n={n} and batch_size={batch_size} must both be >= 1.")
        conditions = validate_conditions(vectors, self.condition_dim).repeat_interleave(n, dim=0)  # (N*n, D)
        if seeds is None:
            seeds = np.arange(conditions.shape[0], dtype=np.int64) + int(seed)
        else:
            seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
            if seeds.shape[0] != conditions.shape[0]:
                raise ValueError(f"seeds has {seeds.shape[0]} entries but {conditions.shape[0]} images are asked for.")
        images: list[Image.Image] = []
        tokens: list[torch.Tensor] = []
        for start in range(0, conditions.shape[0], batch_size):
            stop = min(start + batch_size, conditions.shape[0])
            generators: Sequence[torch.Generator] = [torch.Generator().manual_seed(int(s)) for s in seeds[start:stop]]
            codes = sample(
                self.prior, conditions[start:stop], guidance=guidance, plausibility=plausibility,
                temperature=temperature, top_k=top_k, top_p=top_p, generator=generators, on_token=on_token,
            )  # (b, h, w)
            images.extend(to_pil(self.tokenizer.decode(codes)))
            tokens.append(codes.cpu())
        return GenerationResult(images, conditions.numpy(), torch.cat(tokens).numpy(), seeds)
