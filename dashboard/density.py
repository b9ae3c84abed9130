"""Level of detail for large 2-D maps: a density image of every point under a sample of the points in view.

Above :data:`LOD_THRESHOLD` points the page does not receive every point. It gets

- a **density image** of all points in the current view, counted on the server with
  datashader (one pixel per screen pixel or so, coloured like the legend), under
- a **sample** of at most :data:`LOD_POINTS` points inside the view, drawn with WebGL as
  before, so hover, click and the legend keep working.

Both are recomputed when the user pans or zooms. The sample is *density-biased*: every
point gets a fixed random priority once per map, weighted by ``1 / sqrt(points in its
grid cell)``, so sparse regions and outliers keep points at every zoom while dense
regions are thinned (the density image shows them whole). A view's sample is then the
first ``limit`` points in priority order that fall inside it: the same view always gives
the same sample, so an event naming "point 12 of trace 3" can be traced back to its item
on the server without sending item ids to the page.

Selections are resolved here too, over all points: a box (``range``) or lasso
(``lassoPoints``) from plotly's ``selectedData`` becomes a mask over the map's coordinates.

Everything here is a pure function of numpy arrays.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

#: Maps with more points than this get a density image plus a sample (a setting of the app: ``lod_threshold``).
LOD_THRESHOLD = 200_000
#: Most points of the WebGL sample drawn over the density image (``lod_points``).
LOD_POINTS = 40_000
#: Cells per side of the grid that weighs the sample's priorities.
PRIORITY_GRID = 64
#: Cells per side of the grid that sorts points for gathering a view's (see :class:`CellIndex`).
CELL_GRID = 256
#: Views holding more points than this are counted from a fixed uniform subset of this size
#: (the image's colours are proportions and its opacity is relative, so a uniform subset this
#: large draws the same picture at screen resolution, at a bounded cost).
DENSITY_POINTS = 1_000_000
#: Width in pixels of the density image; its height follows the view's aspect.
IMAGE_WIDTH = 800
#: Most vertices of a lasso accepted from the page.
MAX_LASSO_POINTS = 20_000


@dataclass(frozen=True)
class View:
    """A rectangle of a 2-D map in data coordinates: ``x0 < x1``, ``y0 < y1``."""

    x0: float
    x1: float
    y0: float
    y1: float

    @classmethod
    def around(cls, coordinates: np.ndarray, margin: float = 0.03) -> "View":
        """The bounding box of ``(N, 2)`` coordinates, widened by ``margin`` of its size (a unit box when empty)."""
        coordinates = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
        finite = coordinates[np.isfinite(coordinates).all(axis=1)]
        if not len(finite):
            return cls(-1.0, 1.0, -1.0, 1.0)
        low, high = finite.min(axis=0), finite.max(axis=0)
        pad = np.maximum((high - low) * margin, 1e-6)
        return cls(float(low[0] - pad[0]), float(high[0] + pad[0]), float(low[1] - pad[1]), float(high[1] + pad[1]))

    @classmethod
    def from_list(cls, values: list[float] | None) -> "View | None":
        """The view stored as ``[x0, x1, y0, y1]`` (None when absent or not a proper rectangle)."""
        if not values or len(values) != 4 or not all(np.isfinite(values)):
            return None
        x0, x1, y0, y1 = (float(value) for value in values)
        return cls(min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)) if x0 != x1 and y0 != y1 else None

    def to_list(self) -> list[float]:
        return [self.x0, self.x1, self.y0, self.y1]

    def contains(self, coordinates: np.ndarray) -> np.ndarray:
        """``(N,)`` mask of the ``(N, 2)`` coordinates inside the view."""
        x, y = coordinates[:, 0], coordinates[:, 1]
        return (x >= self.x0) & (x <= self.x1) & (y >= self.y0) & (y <= self.y1)


def relayout_view(relayout: dict | None, current: View | None, full: View) -> View | None:
    """The view after a plotly ``relayoutData`` event, or None when the event did not move the axes.

    Zooming and panning send ``xaxis.range[0]``… (or ``xaxis.range`` lists); a double
    click sends ``xaxis.autorange`` (back to ``full``). One axis may change alone: the
    other keeps ``current`` (or ``full``).
    """
    if not isinstance(relayout, dict):
        return None
    if relayout.get("xaxis.autorange") or relayout.get("yaxis.autorange"):
        return full
    base = current or full
    ranges = {"x": [base.x0, base.x1], "y": [base.y0, base.y1]}
    moved = False
    for axis in ("x", "y"):
        whole = relayout.get(f"{axis}axis.range")
        parts = [relayout.get(f"{axis}axis.range[{end}]") for end in (0, 1)]
        if isinstance(whole, list) and len(whole) == 2:
            parts = whole
        if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in parts):
            ranges[axis] = [float(parts[0]), float(parts[1])]
            moved = True
    return View.from_list(ranges["x"] + ranges["y"]) if moved else None


def sample_priority(coordinates: np.ndarray, seed: int = 0, grid: int = PRIORITY_GRID) -> np.ndarray:
    """``(N,)`` int64 row order of ``(N, 2)`` coordinates, most to least likely to be drawn (see module docs).

    Weighted sampling without replacement (keys ``u ** (1 / w)``, largest first) with
    ``w = 1 / sqrt(points in the grid cell)``: a point alone in its cell is drawn long
    before one of a thousand in a crowded cell.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    if not len(coordinates):
        return np.zeros(0, np.int64)
    view = View.around(coordinates, margin=0.0)
    cells = _cells(coordinates, view, grid)
    counts = np.bincount(cells, minlength=grid * grid)
    weights = 1.0 / np.sqrt(counts[cells])
    keys = np.log(np.random.default_rng(seed).random(len(coordinates))) / weights  # log(u ** (1/w)): same order
    return np.argsort(-keys, kind="stable")


def _cells(coordinates: np.ndarray, view: View, grid: int) -> np.ndarray:
    span = np.array([max(view.x1 - view.x0, 1e-12), max(view.y1 - view.y0, 1e-12)])
    scaled = (np.nan_to_num(coordinates) - [view.x0, view.y0]) / span * grid
    cell = np.clip(scaled.astype(np.int64), 0, grid - 1)
    return cell[:, 1] * grid + cell[:, 0]


@dataclass(frozen=True)
class CellIndex:
    """Points sorted by the cell of a grid over the map, so that a view's points are gathered, not searched for.

    A view meets a block of cells; the points of each row of that block lie next to each
    other here, so gathering them costs in proportion to their number, not to the map's.

    Attributes:
        extent: the map's rectangle the grid covers.
        grid: cells per side.
        starts: ``(grid * grid + 1,)`` where each cell's points begin in the sorted arrays.
        rows: ``(M,)`` the points' row numbers in the map, in cell order.
        coordinates: ``(M, 2)`` float32 their coordinates, in cell order.
    """

    extent: View
    grid: int
    starts: np.ndarray
    rows: np.ndarray
    coordinates: np.ndarray

    @classmethod
    def build(cls, coordinates: np.ndarray, rows: np.ndarray | None = None, grid: int = CELL_GRID) -> "CellIndex":
        """The index of the points at ``rows`` (default all) of ``(N, 2)`` map coordinates."""
        coordinates = np.asarray(coordinates)
        extent = View.around(coordinates, margin=0.0)
        rows = np.arange(len(coordinates)) if rows is None else np.asarray(rows)
        cells = _cells(coordinates[rows], extent, grid)
        order = np.argsort(cells, kind="stable")
        starts = np.searchsorted(cells[order], np.arange(grid * grid + 1))
        rows = rows[order]
        return cls(extent, grid, starts, rows, np.ascontiguousarray(coordinates[rows, :2], dtype=np.float32))

    def _spans(self, view: View) -> list[tuple[int, int]]:
        """``(start, stop)`` ranges of the sorted arrays holding the cells that meet ``view``."""
        span = np.array([max(self.extent.x1 - self.extent.x0, 1e-12), max(self.extent.y1 - self.extent.y0, 1e-12)])
        low = np.floor((np.array([view.x0, view.y0]) - [self.extent.x0, self.extent.y0]) / span * self.grid)
        high = np.floor((np.array([view.x1, view.y1]) - [self.extent.x0, self.extent.y0]) / span * self.grid)
        (cx0, cy0), (cx1, cy1) = np.clip(low, 0, self.grid - 1).astype(int), np.clip(high, 0, self.grid - 1).astype(int)
        if view.x1 < self.extent.x0 or view.x0 > self.extent.x1 or view.y1 < self.extent.y0 or view.y0 > self.extent.y1:
            return []
        return [(int(self.starts[row * self.grid + cx0]), int(self.starts[row * self.grid + cx1 + 1])) for row in range(cy0, cy1 + 1)]

    def count(self, view: View) -> int:
        """How many points lie in the cells that meet ``view`` (an upper bound of those inside it)."""
        return sum(stop - start for start, stop in self._spans(view))

    def gather(self, view: View) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and ``(K, 2)`` coordinates of the points in the cells that meet ``view`` (a few outside it too)."""
        spans = self._spans(view)
        if not spans:
            return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
        if all(before[1] == after[0] for before, after in zip(spans, spans[1:])):  # whole rows of cells: one slice
            start, stop = spans[0][0], spans[-1][1]
            return self.rows[start:stop], self.coordinates[start:stop]
        return np.concatenate([self.rows[start:stop] for start, stop in spans]), np.concatenate([self.coordinates[start:stop] for start, stop in spans])


def view_sample(ordered: np.ndarray, order: np.ndarray, view: View | None, limit: int) -> tuple[np.ndarray, int]:
    """Rows of the sample drawn for ``view`` and how many points the view holds.

    Args:
        ordered: ``(N, 2)`` coordinates in priority order (``coordinates[order]``, kept once per map).
        order: the priority order from :func:`sample_priority`.
        view: the visible rectangle; None: the whole map.
        limit: most rows returned.

    Returns:
        ``(rows, in_view)``: at most ``limit`` rows into the map's points (in priority
        order) and the number of points inside ``view``.
    """
    if view is None:
        return order[:limit], len(order)
    inside = np.flatnonzero(view.contains(ordered))
    return order[inside[:limit]], len(inside)


def shape_mask(coordinates: np.ndarray, selection: dict | None) -> np.ndarray | None:
    """``(N,)`` mask of the 2-D coordinates inside the box or lasso of a plotly ``selectedData``; None without a shape."""
    if not isinstance(selection, dict):
        return None
    coordinates = np.asarray(coordinates)
    box = selection.get("range")
    if isinstance(box, dict) and len(box.get("x") or []) == 2 and len(box.get("y") or []) == 2:
        view = View.from_list([*box["x"], *box["y"]])
        return view.contains(coordinates) if view is not None else np.zeros(len(coordinates), bool)
    lasso = selection.get("lassoPoints")
    if isinstance(lasso, dict) and lasso.get("x") and lasso.get("y") and len(lasso["x"]) == len(lasso["y"]):
        polygon = np.column_stack([np.asarray(lasso["x"], np.float64), np.asarray(lasso["y"], np.float64)])[:MAX_LASSO_POINTS]
        return inside_polygon(coordinates, polygon)
    return None


def inside_polygon(coordinates: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """``(N,)`` mask of the ``(N, 2)`` points inside a closed ``(M, 2)`` polygon (even-odd rule).

    Points outside the polygon's bounding box are dropped first; the rest are tested against
    every edge, one vectorised pass per edge.
    """
    coordinates = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros(len(coordinates), bool)
    polygon = polygon[np.isfinite(polygon).all(axis=1)]
    if len(polygon) < 3:
        return mask
    low, high = polygon.min(axis=0), polygon.max(axis=0)
    candidates = np.flatnonzero(((coordinates >= low) & (coordinates <= high)).all(axis=1))
    x, y = coordinates[candidates, 0], coordinates[candidates, 1]
    inside = np.zeros(len(candidates), bool)
    ends = np.roll(polygon, -1, axis=0)
    for (ax, ay), (bx, by) in zip(polygon, ends):
        if ay == by:
            continue
        crosses = (ay > y) != (by > y)
        at = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < at)
    mask[candidates] = inside
    return mask


def image_size(view: View, width: int = IMAGE_WIDTH) -> tuple[int, int]:
    """Pixel size of the density image of ``view``: ``width`` wide, as tall as the view's aspect asks (64–2,000)."""
    height = width * (view.y1 - view.y0) / max(view.x1 - view.x0, 1e-12)
    return width, int(np.clip(round(height), 64, 2_000))


def density_image(
    coordinates: np.ndarray,
    view: View,
    codes: np.ndarray | None = None,
    colours: list[str] | None = None,
    values: np.ndarray | None = None,
    limits: tuple[float, float] | None = None,
    width: int = IMAGE_WIDTH,
) -> str:
    """An image (a WebP data URI) of every point in ``view``, counted per pixel with datashader.

    With ``codes`` (each point's legend category) and ``colours`` (one ``#rrggbb`` per
    category) a pixel mixes its categories' colours in proportion to their counts and is
    more opaque the more points it holds (log scale); with ``values`` (a numeric colour
    column) it shows their mean on Viridis over ``limits`` (the whole map's range, so
    colours match the sample's scale); with neither, one colour.
    """
    import datashader as ds
    import datashader.transfer_functions as tf
    import pandas as pd

    width, height = image_size(view, width)
    frame = {"x": np.asarray(coordinates[:, 0], np.float32), "y": np.asarray(coordinates[:, 1], np.float32)}
    canvas = ds.Canvas(plot_width=width, plot_height=height, x_range=(view.x0, view.x1), y_range=(view.y0, view.y1))
    if codes is not None and colours:
        frame["category"] = pd.Categorical.from_codes(np.asarray(codes, np.int64), categories=list(range(len(colours))))
        aggregate = canvas.points(pd.DataFrame(frame, copy=False), "x", "y", agg=ds.count_cat("category"))
        pixels = mix_categories(np.asarray(aggregate.values), colours)
    else:
        if values is not None:
            frame["value"] = np.asarray(values, np.float32)
            aggregate = canvas.points(pd.DataFrame(frame, copy=False), "x", "y", agg=ds.mean("value"))
            shaded = tf.shade(aggregate, cmap=_VIRIDIS, how="linear", span=limits)
        else:
            aggregate = canvas.points(pd.DataFrame(frame, copy=False), "x", "y", agg=ds.count())
            shaded = tf.shade(aggregate, cmap=["#9ecae1", "#08306b"], how="log")
        pixels = np.asarray(shaded.to_pil().convert("RGBA"))[::-1]  # back to rows from y0 up, as mix_categories gives
    return encode_image(pixels)


def mix_categories(counts: np.ndarray, colours: list[str], min_alpha: int = 70) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA pixels from ``(H, W, K)`` per-category counts (row 0 at the bottom of the view).

    A pixel's colour is its categories' colours weighted by their counts; its opacity grows
    with the log of its count, from ``min_alpha`` for one point to 255 for the fullest pixel;
    empty pixels are transparent.
    """
    height, width, kinds = counts.shape
    flat = counts.reshape(-1, kinds)
    total = flat.sum(axis=1)
    filled = np.flatnonzero(total)
    pixels = np.zeros((height * width, 4), np.uint8)
    if len(filled):
        present = flat[filled].astype(np.float32)
        rgb = np.array([[int(colour[start : start + 2], 16) for start in (1, 3, 5)] for colour in colours], np.float32)
        mixed = np.zeros((len(filled), 3), np.float32)
        for kind in range(kinds):  # K small axpy passes: faster here than one small-matrix product
            mixed += present[:, kind : kind + 1] * rgb[kind]
        count = total[filled].astype(np.float32)
        pixels[filled, :3] = np.clip(mixed / count[:, None], 0, 255).astype(np.uint8)
        level = np.log1p(count) / np.log1p(count.max())
        pixels[filled, 3] = (min_alpha + (255 - min_alpha) * level).astype(np.uint8)
    return pixels.reshape(height, width, 4)


def encode_image(pixels: np.ndarray, quality: int = 80) -> str:
    """``(H, W, 4)`` RGBA pixels (row 0 at the bottom) as a WebP data URI, top row first as images are drawn.

    Lossy WebP at ``quality``: about half the bytes of a PNG of the same density image, and faster to encode.
    """
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels[::-1]), "RGBA").save(buffer, format="WEBP", quality=quality, method=0)
    return "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]
