"""What an edit keeps: regions of the token grid, and images turned into the tokenizer's input.

An edit tokenizes an image, keeps the tokens of one region and samples the others
conditioned on a new point, one token at a time in raster order, with the kept tokens
forced where they fall (so every later token sees them). :func:`keep_mask` names the
usual regions; any boolean grid of the token resolution works as well.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

#: Named regions an edit can keep (see :func:`keep_mask`).
KEEP_REGIONS = ("top", "bottom", "left", "right", "centre")


def keep_mask(keep: str | np.ndarray, grid: int) -> np.ndarray:
    """``(grid, grid)`` bool mask of the tokens an edit keeps.

    Args:
        keep: "top", "bottom", "left" or "right" (that half of the grid), "centre" (the
            middle square, half the grid's side), or a boolean array of shape ``(grid, grid)``.
        grid: the generator's token grid side.

    Raises:
        ValueError: an unknown region name, or a mask of another shape or type (the message
            names the shape expected).
    """
    if isinstance(keep, str):
        mask = np.zeros((grid, grid), bool)
        half, quarter = grid // 2, grid // 4
        regions = {
            "top": (slice(0, half), slice(None)),
            "bottom": (slice(grid - half, grid), slice(None)),
            "left": (slice(None), slice(0, half)),
            "right": (slice(None), slice(grid - half, grid)),
            "centre": (slice(quarter, grid - quarter), slice(quarter, grid - quarter)),
        }
        if keep not in regions:
            raise ValueError(f"keep={keep!r}: use one of {', '.join(KEEP_REGIONS)} or a ({grid}, {grid}) boolean mask")
        mask[regions[keep]] = True
        return mask
    mask = np.asarray(keep)
    if mask.shape != (grid, grid) or mask.dtype != bool:
        raise ValueError(f"keep mask: expected a ({grid}, {grid}) boolean array (one entry per token), got {mask.dtype} {mask.shape}")
    return mask.copy()


def image_tensor(images: list[Image.Image], size: int) -> torch.Tensor:
    """``(B, 3, size, size)`` float in [-1, 1]: each image on white (transparency composited), box-resized to ``size``."""
    rows = []
    for image in images:
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BOX), dtype=np.float32)
        rows.append(pixels / 127.5 - 1.0)
    return torch.from_numpy(np.stack(rows)).permute(0, 3, 1, 2).contiguous()
