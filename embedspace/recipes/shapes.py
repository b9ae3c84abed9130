"""Coloured-shapes dataset for measuring how controllable the generator is.

One job: render small images of one coloured shape on a white background at a known
place, each with a caption ("red circle at the top left"), and read colour, shape and
place back from the pixels of any image with :func:`analyse`. Generating from the
caption's embedding and analysing the result gives a controllability score with no
learned judge (in the spirit of the CLEVR-style compositional probes, Johnson et al.,
2017). Rendering is deterministic: 4× supersampled PIL drawing, box-filtered down.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (235, 205, 30),
    "green": (40, 160, 60),
    "blue": (40, 90, 220),
    "purple": (150, 60, 190),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # row-major 3×3 grid
BACKGROUND = (255, 255, 255)
SHAPE_FRACTION = 0.8  # side of a shape as a fraction of its grid cell
SUPERSAMPLE = 4


@dataclass(frozen=True)
class ShapeReading:
    """Colour, shape and position read from (or rendered into) an image; None when unknown."""

    colour: str | None
    shape: str | None
    position: str | None


@dataclass(frozen=True)
class ShapesDataset:
    """Rendered shapes, row-aligned.

    Attributes:
        images: (N, H, W, 3) uint8.
        captions: N strings like "red circle at the top left".
        labels: N ground-truth :class:`ShapeReading`.
    """

    images: np.ndarray
    captions: list[str]
    labels: list[ShapeReading]


def caption(colour: str, shape: str, position: str) -> str:
    """English caption: "red circle at the top left", "blue cross in the center"."""
    return f"{colour} {shape} {_where(position)}"


def _where(position: str) -> str:
    return "in the center" if position == "center" else f"at the {position}"


def attribute_captions(colour: str, shape: str, position: str) -> tuple[str, str, str]:
    """One caption per attribute: ("red shape", "circle", "shape at the top left").

    A generator that composes (trained on these as separate points, any of them left
    out) can be asked for the combination one attribute at a time: sampling with the
    three as (B, 3, D) conditions.
    """
    return f"{colour} shape", shape, f"shape {_where(position)}"


def _cell_center(position: str, image_size: int) -> tuple[float, float]:
    index = POSITIONS.index(position)
    cell = image_size / 3
    return (index % 3 + 0.5) * cell, (index // 3 + 0.5) * cell  # (x, y)


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill) -> None:
    """Draw ``shape`` filling ``box`` = (x0, y0, x1, y1) in supersampled pixel units."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    if shape == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif shape == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=fill)
    elif shape == "cross":
        t = 0.2  # half-thickness of the bars as a fraction of the side
        draw.rectangle([x0, y0 + (0.5 - t) * h, x1 - 1, y0 + (0.5 + t) * h - 1], fill=fill)
        draw.rectangle([x0 + (0.5 - t) * w, y0, x0 + (0.5 + t) * w - 1, y1 - 1], fill=fill)
    else:
        raise ValueError(f"shape={shape!r}; allowed: {SHAPES}.")


def render(colour: str, shape: str, position: str, image_size: int = 32,
           offset: tuple[float, float] = (0.0, 0.0), scale: float = 1.0) -> Image.Image:
    """Render one shape as an RGB image of ``image_size`` px.

    Args:
        colour, shape, position: names from COLOURS, SHAPES, POSITIONS.
        image_size: side in pixels (>= 24).
        offset: (dx, dy) shift in pixels from the cell centre (small: < 1/8 cell).
        scale: size relative to the default (0.8 of the cell side).
    """
    if colour not in COLOURS:
        raise ValueError(f"colour={colour!r}; allowed: {tuple(COLOURS)}.")
    if position not in POSITIONS:
        raise ValueError(f"position={position!r}; allowed: {POSITIONS}.")
    s = SUPERSAMPLE
    canvas = Image.new("RGB", (image_size * s, image_size * s), BACKGROUND)
    cx, cy = _cell_center(position, image_size)
    half = scale * SHAPE_FRACTION * image_size / 6
    box = ((cx + offset[0] - half) * s, (cy + offset[1] - half) * s,
           (cx + offset[0] + half) * s, (cy + offset[1] + half) * s)
    _draw(ImageDraw.Draw(canvas), shape, tuple(round(v) for v in box), COLOURS[colour])
    return canvas.resize((image_size, image_size), Image.Resampling.BOX)


def make_dataset(image_size: int = 32, variants: int = 1, seed: int = 0, jitter: float = 0.1) -> ShapesDataset:
    """All 6 colours × 4 shapes × 9 positions (216 images) per variant.

    Variant 0 is the clean render; further variants jitter position (up to ``jitter``
    of a cell either way, at most 0.25 so the shape stays in its cell) and size
    (0.85–1.1) with a ``numpy.random.Generator`` seeded by ``seed``.
    """
    if not 0 <= jitter <= 0.25:
        raise ValueError(f"jitter={jitter!r}; use 0 to 0.25 (of a cell)")
    rng = np.random.default_rng(seed)
    images, captions, labels = [], [], []
    cell = image_size / 3
    for variant in range(variants):
        for colour, shape, position in product(COLOURS, SHAPES, POSITIONS):
            offset, scale = (0.0, 0.0), 1.0
            if variant > 0:
                offset = tuple(rng.uniform(-jitter, jitter, size=2) * cell)
                scale = float(rng.uniform(0.85, 1.1))
            images.append(np.asarray(render(colour, shape, position, image_size, offset, scale)))
            captions.append(caption(colour, shape, position))
            labels.append(ShapeReading(colour, shape, position))
    return ShapesDataset(np.stack(images), captions, labels)


def _template(shape: str, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of ``shape`` filling the pixel box (x0, y0, x1, y1), x1/y1 exclusive."""
    s = SUPERSAMPLE
    canvas = Image.new("L", (size[1] * s, size[0] * s), 0)
    _draw(ImageDraw.Draw(canvas), shape, tuple(v * s for v in box), 255)
    return np.asarray(canvas.resize((size[1], size[0]), Image.Resampling.BOX)) >= 128


def analyse(image: Image.Image | np.ndarray, min_pixels: int = 4) -> ShapeReading:
    """Read colour, shape and position of the largest coloured blob in ``image``.

    Args:
        image: RGB PIL image or (H, W, 3) uint8 array, white background.
        min_pixels: blobs smaller than this read as nothing (all fields None).

    Colour is the palette colour nearest the blob's median; position is the 3×3 grid
    cell of its centroid; shape is the template (rendered into the blob's bounding
    box) with the highest intersection-over-union.
    """
    pixels = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image).astype(np.float32)
    H, W, _ = pixels.shape
    ink = (255.0 - pixels).max(axis=2)  # (H, W) distance from white
    labelled, count = ndimage.label(ink >= 96)
    if count == 0:
        return ShapeReading(None, None, None)
    sizes = ndimage.sum_labels(np.ones_like(ink), labelled, index=np.arange(1, count + 1))
    blob = labelled == (int(np.argmax(sizes)) + 1)  # (H, W) bool
    if blob.sum() < min_pixels:
        return ShapeReading(None, None, None)
    core = blob & (ink >= np.percentile(ink[blob], 50))
    median = np.median(pixels[core], axis=0)  # (3,)
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=np.float32)
    colour = names[int(np.argmin(((palette - median) ** 2).sum(axis=1)))]
    ys, xs = np.nonzero(blob)
    column = min(int(xs.mean() + 0.5) * 3 // W, 2)
    row = min(int(ys.mean() + 0.5) * 3 // H, 2)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    ious = []
    for shape in SHAPES:
        template = _template(shape, box, (H, W))
        ious.append((template & blob).sum() / max((template | blob).sum(), 1))
    return ShapeReading(colour, SHAPES[int(np.argmax(ious))], POSITIONS[row * 3 + column])


def accuracy(images: Sequence[Image.Image | np.ndarray], expected: Sequence[ShapeReading]) -> dict[str, float]:
    """Fraction of ``images`` whose reading matches ``expected``, per attribute and for all three.

    Returns a dict with keys "colour", "shape", "position" and "all".
    """
    if len(images) != len(expected) or not images:
        raise ValueError(f"need as many expected readings as images (got {len(expected)} and {len(images)}).")
    readings = [analyse(image) for image in images]
    scores = {
        key: float(np.mean([getattr(r, key) == getattr(e, key) for r, e in zip(readings, expected)]))
        for key in ("colour", "shape", "position")
    }
    scores["all"] = float(np.mean([r == e for r, e in zip(readings, expected)]))
    return scores
