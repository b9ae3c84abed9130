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
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedspace import provenance
from embedspace.generator.editing import image_tensor, keep_mask
from embedspace.generator.options import HINT, GenerationRequest, SamplingOptions
from embedspace.generator.prior import Prior
from embedspace.generator.sampling import OnToken, sample
from embedspace.generator.serialization import CONFIG_NAME, read_json, write_json
from embedspace.generator.tokenizer import VQTokenizer
from embedspace.vectors import as_matrix

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
        descriptions: N*n strings, what each image's condition is (stamped on the image).
    """

    images: list[Image.Image]
    conditions: np.ndarray
    tokens: np.ndarray
    seeds: np.ndarray
    descriptions: tuple[str, ...] = ()

    def closest(self, image_vectors: np.ndarray, candidates: int, n: int) -> GenerationResult:
        """Of each condition's ``candidates`` images (consecutive rows), the ``n`` whose
        ``image_vectors`` (one unit row per image, from the encoder) are closest to the
        condition, closest first: reranking, as DALL·E reranked its samples with CLIP.

        Raises:
            ValueError: ``n`` not in [1, candidates], rows not a whole number of groups, or
                one vector per image not given.
        """
        count = len(self.images)
        if not 1 <= n <= candidates or count % candidates or np.shape(image_vectors)[0] != count:
            raise ValueError(f"keep 1 to {candidates} of each condition's {candidates} images, "
                             f"with one vector per image (got n={n} for {count} images, {np.shape(image_vectors)[0]} vectors)")
        similarity = np.einsum("kd,kd->k", np.asarray(image_vectors, np.float32), self.conditions)  # (N*candidates,)
        order = np.argsort(-similarity.reshape(-1, candidates), axis=1, kind="stable")[:, :n]  # (N, n)
        rows = (order + candidates * np.arange(len(order))[:, None]).reshape(-1)
        return GenerationResult([self.images[row] for row in rows], self.conditions[rows], self.tokens[rows],
                                self.seeds[rows], tuple(self.descriptions[row] for row in rows) if self.descriptions else ())


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
    def condition_parts(self) -> int:
        """The most points one image may be asked for at once (1, or K for a prior that composes)."""
        return self.prior.config.condition_parts

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

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, device: str | torch.device = "cpu", encoder_model_id: str | None = None
    ) -> "Generator":
        """The same as :meth:`load`: every component answers ``save_pretrained(folder)`` and ``from_pretrained(folder)``."""
        return cls.load(name_or_path, device, encoder_model_id)

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
        request: GenerationRequest | np.ndarray | torch.Tensor,
        options: SamplingOptions | None = None,
        *,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        **values: Any,
    ) -> GenerationResult:
        """Make the request's images, sampled with ``options``, each stamped with its condition.

        This is the one generation path: :meth:`embedspace.Space.generate`, the CLI, the
        dashboard and the report all come here with a request and options.

        Args:
            request: which images (:class:`GenerationRequest`). An ``(N, D)`` or ``(D,)``
                float32 array is short for ``GenerationRequest(array, n=n, seeds=seeds)``
                with ``n`` (default 4) and ``seeds`` taken from the keyword ``values``.
            options: how to sample (:class:`SamplingOptions`); image k (condition-major) uses
                ``torch.Generator().manual_seed(options.seed + k)`` unless the request sets
                its seeds, so a result does not depend on ``batch_size`` (with one torch
                thread; with several, batches of another shape can round differently and,
                rarely, flip a sampled code). Keyword ``values`` named like its fields
                (``guidance=2.0, seed=3``) replace them.
            on_token: ``on_token(step, tokens_so_far (b, step + 1))``, called for every
                token of every batch (step restarts at 0 for each batch).
            batch_size: images sampled together (2× rows with guidance), >= 1.

        Returns:
            The images, condition-major. Each carries its provenance (the request's
            description and its condition vector, :mod:`embedspace.provenance`), so
            :meth:`embedspace.Space.add_images` records ``generated``, ``condition`` and
            ``fidelity``.

        Raises:
            ValueError: conditions of another dimension than the prior's (naming it), or a
                bad request, option or batch size.
        """
        return self._sample(request, options, on_token, batch_size, values)

    def tokenize(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(B, grid, grid)`` int64 codes of PIL images (composited on white, box-resized to :attr:`image_size`)."""
        return self.tokenizer.encode(image_tensor(list(images), self.image_size).to(self.device))

    def edit(
        self,
        image: Image.Image,
        request: GenerationRequest | np.ndarray | torch.Tensor,
        keep: str | np.ndarray = "top",
        options: SamplingOptions | None = None,
        *,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        **values: Any,
    ) -> GenerationResult:
        """Redraw part of ``image`` toward the request's point, token by token, keeping the rest.

        The image is tokenized; the tokens in ``keep`` are kept and the others are sampled
        conditioned on the request, one at a time in raster order, the kept ones forced in
        where they fall, so every later token sees them. Kept tokens come back exactly as
        they were (the decoded pixels of a kept region can still shift a little where they
        meet new tokens, since the decoder sees neighbours).

        Args:
            image: the PIL image to edit (any size; transparency composited on white).
            request, options, on_token, batch_size, values: as in :meth:`generate`.
            keep: "top", "bottom", "left", "right", "centre" or a ``(grid, grid)`` boolean
                mask at the token resolution (see :func:`embedspace.generator.editing.keep_mask`).

        Returns:
            The edited images, as :meth:`generate` returns them.
        """
        grid = self.prior.config.grid_size
        mask = keep_mask(keep, grid)
        codes = self.tokenize([image])[0].reshape(-1)  # (L,)
        return self._sample(request, options, on_token, batch_size, values, forced=codes, keep=torch.from_numpy(mask.reshape(-1)))

    def _sample(
        self,
        request: GenerationRequest | np.ndarray | torch.Tensor,
        options: SamplingOptions | None,
        on_token: OnToken | None,
        batch_size: int,
        values: dict[str, Any],
        forced: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> GenerationResult:
        """The one sampling loop of :meth:`generate` and :meth:`edit` (``forced`` codes at ``keep`` positions for an edit)."""
        if not isinstance(request, GenerationRequest):
            request = GenerationRequest(request, n=values.pop("n", 4), seeds=values.pop("seeds", None))
        elif "n" in values or "seeds" in values:
            raise TypeError("n and seeds belong to the GenerationRequest; set them there")
        options = SamplingOptions.of(options, **values)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: use an integer >= 1")
        as_matrix(request.conditions, self.condition_dim, "condition vectors", HINT)  # the prior's dimension
        conditions = np.repeat(request.conditions, request.n, axis=0)  # (N*n, D)
        guides = conditions if request.parts is None else np.repeat(request.parts, request.n, axis=0)  # (N*n[, K], D)
        seeds = request.image_seeds(options.seed)  # (N*n,)
        images: list[Image.Image] = []
        tokens: list[torch.Tensor] = []
        for start in range(0, len(conditions), batch_size):
            stop = min(start + batch_size, len(conditions))
            generators: Sequence[torch.Generator] = [torch.Generator().manual_seed(int(s)) for s in seeds[start:stop]]
            edit = {} if forced is None else {"forced": forced.expand(stop - start, -1), "keep": keep}
            codes = sample(self.prior, guides[start:stop], options, generator=generators, on_token=on_token, **edit)  # (b, h, w)
            images.extend(to_pil(self.tokenizer.decode(codes)))
            tokens.append(codes.cpu())
        descriptions = request.image_descriptions()
        for image, description, condition in zip(images, descriptions, conditions):
            provenance.stamp(image, description, condition)
        return GenerationResult(images, conditions, torch.cat(tokens).numpy(), seeds, descriptions)
