"""Pure figure builders for the map: numpy arrays in, ``plotly.graph_objects.Figure`` out.

Nothing here touches the space, Dash or the network, so every function is testable
with small arrays. Points are drawn with WebGL (``Scattergl`` in 2-D, ``Scatter3d`` in
3-D); coordinates and ids travel as typed arrays (plotly encodes float32/int32 numpy
arrays as base64), so a point costs about 8 bytes per coordinate pair plus 4 for its id.

Trace order in a map figure is fixed: the *base* traces (one per colour category, or
one with a colour scale), then :data:`OVERLAY_TRACE_COUNT` overlay traces (neighbours:
lines, targets, origin; query: lines, targets, origin), then in the dashboard
:data:`GENERATION_TRACE_COUNT` generation traces (:func:`generation_traces`: the points
generated from, links, generated images added to the space). Callbacks that only move
the overlays patch ``data[base_count + i]`` instead of resending every point.

Base traces carry no item ids (4 more bytes a point, and Dash cannot read ids from
typed arrays in click events): a click, hover or lasso event names points by
``curveNumber`` and ``pointNumber``, and :func:`event_item_ids` turns those back into
item ids with :meth:`MapPoints.trace_ids`. Overlay traces carry their few ids as
``customdata`` lists.

Labels are user data: every label and category name is HTML-escaped before plotly
renders it (plotly's text supports a subset of HTML; escaped text shows as typed).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from dashboard.density import View
from embedspace.clusters import ClusterInfo

#: Most colour categories drawn as their own legend entries; the rest share "other".
MAX_CATEGORIES = 12
#: Numeric columns with more distinct values than this get a colour scale, not a legend.
MAX_NUMERIC_CATEGORIES = 12
OTHER = "other"
MISSING = "(none)"
MODALITY_COLOURS = {"text": "#1f77b4", "image": "#ff7f0e", "audio": "#2ca02c"}
PALETTE = tuple(qualitative.Plotly) + tuple(qualitative.D3)
OTHER_COLOUR = "#b0b0b0"
#: At most this many cluster names on a 2-D map, each for a cluster of at least this share of the points.
CLUSTER_LABELS = 20
CLUSTER_LABEL_SHARE = 0.01
NEIGHBOR_COLOUR = "#d62728"
QUERY_COLOUR = "#9467bd"
GENERATION_COLOUR = "#e377c2"
GENERATED_COLOUR = "#17becf"
#: Marker size of the level-of-detail sample over a density image.
LOD_MARKER_SIZE = 3.0
#: Number of overlay traces after the base traces (see module docs).
OVERLAY_TRACE_COUNT = 6
#: Number of generation traces after the overlay traces (see :func:`generation_traces`).
GENERATION_TRACE_COUNT = 3


@dataclass(frozen=True)
class MapPoints:
    """The points of a map and how to colour them.

    Attributes:
        ids: ``(N,)`` int64 item ids.
        coordinates: ``(N, C)`` float32, C = 2 or 3, row-aligned with ``ids``.
        colour_values: ``(N,)`` values of the colour-by column (strings or numbers).
        colour_name: the colour-by column's name (legend title).
        labels: ``(N,)`` raw labels for inline hover text, or None to hover the colour
            group only (large maps: the page shows the hovered item in a preview panel).
        revision: the space revision of the map (for callers matching events to maps).
        clusters: the map's named clusters, largest first (their names label the 2-D map).
        fixed_groups: for a sample of a larger map (:meth:`subset`): the larger map's legend
            names and each point's trace number, so the sample draws the same traces.
        colour_limits: for a sample of a map coloured on a scale: that map's value range.
    """

    ids: np.ndarray
    coordinates: np.ndarray
    colour_values: np.ndarray
    colour_name: str
    labels: np.ndarray | None = None
    revision: int | None = None
    clusters: tuple[ClusterInfo, ...] = ()
    fixed_groups: tuple[tuple[str, ...], np.ndarray] | None = None
    colour_limits: tuple[float, float] | None = None

    @property
    def dims(self) -> int:
        return int(self.coordinates.shape[1])

    @cached_property
    def groups(self) -> list[tuple[str, np.ndarray]] | None:
        """:func:`colour_groups` of the colour values (computed once), or the ``fixed_groups`` of a sample."""
        if self.fixed_groups is not None:
            names, codes = self.fixed_groups
            return [(name, codes == number) for number, name in enumerate(names)]
        if self.colour_limits is not None:  # a sample of a map coloured on a scale stays on that scale
            return None
        return colour_groups(self.colour_values)

    @cached_property
    def codes(self) -> np.ndarray | None:
        """``(N,)`` int16 base trace of each point, or None for a colour scale (one trace)."""
        if self.groups is None:
            return None
        codes = np.zeros(len(self.ids), np.int16)
        for number, (_, mask) in enumerate(self.groups):
            codes[mask] = number
        return codes

    @cached_property
    def limits(self) -> tuple[float, float] | None:
        """The colour scale's range (numeric colouring only): ``colour_limits`` or the values' own."""
        if self.groups is not None:
            return None
        if self.colour_limits is not None:
            return self.colour_limits
        values = np.asarray(self.colour_values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        return (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)

    def colours(self) -> list[str] | None:
        """The colour of each base trace, in trace order (None for a colour scale)."""
        if self.groups is None:
            return None
        return [_category_colour(self.colour_name, name, rank) for rank, (name, _) in enumerate(self.groups)]

    def subset(self, rows: np.ndarray) -> "MapPoints":
        """The points at ``rows`` with this map's legend and colour scale (a level-of-detail sample draws the same traces)."""
        rows = np.asarray(rows, dtype=np.int64)
        groups = None if self.groups is None else (tuple(name for name, _ in self.groups), self.codes[rows])
        labels = None if self.labels is None else np.asarray(self.labels)[rows]
        values = np.asarray(self.colour_values)[rows]
        return MapPoints(self.ids[rows], self.coordinates[rows], values, self.colour_name, labels, self.revision, self.clusters, groups, self.limits)

    @cached_property
    def rows(self) -> list[np.ndarray]:
        """Row numbers (into ``ids``) of the points of each base trace, in trace order."""
        if self.groups is None:
            return [np.arange(len(self.ids))]
        return [np.flatnonzero(mask) for _, mask in self.groups]

    def trace_ids(self) -> list[np.ndarray]:
        """Item ids of the points of each base trace, in trace and point order."""
        return [self.ids[rows] for rows in self.rows]


@dataclass(frozen=True)
class Highlight:
    """Points to mark over the map: an origin joined by lines to its targets.

    Attributes:
        origin: ``(C,)`` coordinates of the origin (selected item or query), or None.
        origin_label: hover text of the origin (raw; escaped when drawn).
        origin_id: item id of the origin, or None for a query.
        targets: ``(K, C)`` coordinates of the targets (neighbours or results).
        target_ids: ``(K,)`` their item ids.
        target_labels: their raw labels.
    """

    origin: np.ndarray | None
    origin_label: str = ""
    origin_id: int | None = None
    targets: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    target_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    target_labels: Sequence[str] = ()


@dataclass(frozen=True)
class GenerationOverlay:
    """What generation draws over the map.

    Attributes:
        conditions: ``(K, C)`` coordinates of the points generated from, in order (the
            points of an interpolation path from start to end, or one point).
        condition_labels: their raw labels.
        added: ``(M, C)`` coordinates of generated images added to the space.
        added_ids: ``(M,)`` their item ids.
        added_labels: their raw hover texts (e.g. condition and similarity).
        added_origins: ``(M, C)`` coordinates of each added image's condition (a NaN row: no link).
    """

    conditions: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    condition_labels: Sequence[str] = ()
    added: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    added_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    added_labels: Sequence[str] = ()
    added_origins: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))


def escape(text: object) -> str:
    """``text`` as plotly should show it literally (HTML special characters escaped)."""
    return html.escape(str(text), quote=False)


def marker_size(count: int, dims: int = 2) -> float:
    """Point size in pixels that keeps ``count`` points readable."""
    size = 7.0 if count <= 1_000 else 4.0 if count <= 20_000 else 2.5
    return size * (0.6 if dims == 3 else 1.0)


def colour_groups(values: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
    """Split ``(N,)`` values into legend categories: ``[(name, boolean mask)]``, most frequent first.

    At most :data:`MAX_CATEGORIES` named categories; the rest are merged into
    :data:`OTHER`, missing values into :data:`MISSING`. Returns None for numeric values
    with many distinct levels (those get a colour scale instead).
    """
    values = np.asarray(values)
    if values.dtype.kind in "iuf" and len(np.unique(values[~np.isnan(values.astype(float))])) > MAX_NUMERIC_CATEGORIES:
        return None
    series = pd.Series(values, dtype=object)
    names = series.astype(str).to_numpy(dtype=object)
    names[(series.isna() | (series == "")).to_numpy()] = MISSING
    categories, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    order = np.lexsort((categories, -counts))  # most frequent first, ties by name
    groups: list[tuple[str, np.ndarray]] = []
    other = np.zeros(len(values), dtype=bool)
    for rank, category in enumerate(order):
        mask = inverse == category
        if rank < MAX_CATEGORIES:
            groups.append((str(categories[category]), mask))
        else:
            other |= mask
    if other.any():
        groups.append((OTHER, other))
    return groups


def _category_colour(column: str, name: str, rank: int) -> str:
    if name == OTHER or name == MISSING:
        return OTHER_COLOUR
    if column == "modality" and name in MODALITY_COLOURS:
        return MODALITY_COLOURS[name]
    return PALETTE[rank % len(PALETTE)]


def _scatter(dims: int, coordinates: np.ndarray, **kwargs: object) -> go.Scattergl | go.Scatter3d:
    """A WebGL trace for ``(K, dims)`` coordinates (float32 typed arrays)."""
    coordinates = np.asarray(coordinates, dtype=np.float32).reshape(-1, dims)
    axes = {"x": coordinates[:, 0], "y": coordinates[:, 1]}
    if dims == 3:
        return go.Scatter3d(**axes, z=coordinates[:, 2], **kwargs)
    return go.Scattergl(**axes, **kwargs)


def base_traces(points: MapPoints, size: float | None = None) -> list[go.Scattergl | go.Scatter3d]:
    """The traces that draw every point, coloured by ``points.colour_values`` (``size``: marker pixels, default by count)."""
    dims = points.dims
    size = size or marker_size(len(points.ids), dims)
    hover = "%{hovertext}<extra>%{fullData.name}</extra>" if points.labels is not None else "%{fullData.name}<extra></extra>"

    def trace(rows: np.ndarray, name: str, marker: dict) -> go.Scattergl | go.Scatter3d:
        extra = {}
        if points.labels is not None:
            extra["hovertext"] = [escape(label) for label in np.asarray(points.labels)[rows].tolist()]
        return _scatter(dims, points.coordinates[rows], mode="markers", name=escape(name), hovertemplate=hover, marker=marker, **extra)

    if points.groups is None:
        values = np.asarray(points.colour_values, dtype=np.float32)
        low, high = points.limits
        marker = {"size": size, "color": values, "colorscale": "Viridis", "cmin": low, "cmax": high, "showscale": True, "colorbar": {"title": {"text": escape(points.colour_name)}}}
        return [trace(points.rows[0], points.colour_name, marker)]
    return [
        trace(rows, name, {"size": size, "color": _category_colour(points.colour_name, name, rank), "opacity": 0.85})
        for rank, ((name, _), rows) in enumerate(zip(points.groups, points.rows))
    ]


def event_item_ids(points: MapPoints | None, base_traces: int, event: dict | None) -> list[int]:
    """Item ids of the points in a plotly click / hover / selection event, in order, without repeats.

    Points of base traces are found by ``curveNumber`` and ``pointNumber`` in ``points``
    (the map the figure was drawn from, with ``base_traces`` base traces; None when
    unknown); points of overlay traces by their ``customdata``; lines are ignored.
    """
    found: dict[int, None] = {}
    rows = points.rows if points is not None else []
    for point in (event or {}).get("points", []):
        item = point.get("customdata")
        if isinstance(item, list):
            item = item[0] if item else None
        curve, number = point.get("curveNumber"), point.get("pointNumber")
        if item is None and curve is not None and number is not None and curve < min(base_traces, len(rows)) and 0 <= number < len(rows[curve]):
            item = points.ids[rows[curve][number]]
        if item is not None:
            found[int(item)] = None
    return list(found)


def overlay_traces(dims: int, neighbors: Highlight | None = None, query: Highlight | None = None) -> list[go.Scattergl | go.Scatter3d]:
    """The :data:`OVERLAY_TRACE_COUNT` overlay traces (empty ones for a missing highlight).

    For each highlight: lines from the origin to every target, rings on the targets,
    and a large marker on the origin. Trace names: "neighbours links", "neighbours",
    "selected" (a circle), then "results links", "results", "query" (a diamond).
    """
    traces = []
    kinds = ((neighbors, NEIGHBOR_COLOUR, "neighbours", "selected", "circle"), (query, QUERY_COLOUR, "results", "query", "diamond"))
    for highlight, colour, name, origin_name, symbol in kinds:
        targets = np.zeros((0, dims), np.float32) if highlight is None else np.asarray(highlight.targets, np.float32).reshape(-1, dims)
        target_ids = np.zeros(0, np.int64) if highlight is None else np.asarray(highlight.target_ids)
        target_labels = [] if highlight is None else [escape(label) for label in highlight.target_labels]
        origin = None if highlight is None else highlight.origin
        lines = np.full((3 * len(targets), dims), np.nan, np.float32)
        if origin is not None and len(targets):
            lines[0::3] = np.asarray(origin, np.float32)
            lines[1::3] = targets
        line_style = {"color": colour, "width": 2 if dims == 2 else 4}
        traces.append(_scatter(dims, lines, mode="lines", line=line_style, hoverinfo="skip", showlegend=False, name=f"{name} links", connectgaps=False))
        traces.append(
            _scatter(
                dims,
                targets,
                mode="markers",
                name=name,
                showlegend=False,
                customdata=[int(item) for item in target_ids],
                hovertext=target_labels,
                hovertemplate="%{hovertext}<extra>" + name + "</extra>",
                marker={"size": 12 if dims == 2 else 6, "color": "rgba(0,0,0,0)", "line": {"color": colour, "width": 2}, "symbol": "circle-open" if dims == 3 else "circle"},
            )
        )
        origin_points = np.zeros((0, dims), np.float32) if origin is None else np.asarray(origin, np.float32).reshape(1, dims)
        origin_ids = [] if highlight is None or highlight.origin_id is None or origin is None else [int(highlight.origin_id)]
        traces.append(
            _scatter(
                dims,
                origin_points,
                mode="markers",
                name=origin_name,
                showlegend=False,
                customdata=origin_ids or None,
                hovertext=[escape(highlight.origin_label)] if origin is not None and highlight is not None else [],
                hovertemplate="%{hovertext}<extra>" + origin_name + "</extra>",
                marker={"size": 16 if dims == 2 else 8, "color": colour, "symbol": symbol, "line": {"color": "white", "width": 1}},
            )
        )
    return traces


def generation_traces(dims: int, overlay: GenerationOverlay | None = None) -> list[go.Scattergl | go.Scatter3d]:
    """The :data:`GENERATION_TRACE_COUNT` generation traces (empty ones without an overlay).

    "generation path": the points generated from, joined in order (an interpolation path
    drawn as a line of projected points); "generated links": a line from each added
    image to its condition; "generated": the added images (their ids in ``customdata``,
    so a click selects them).
    """
    overlay = overlay or GenerationOverlay()
    conditions = np.asarray(overlay.conditions, np.float32).reshape(-1, dims)
    added = np.asarray(overlay.added, np.float32).reshape(-1, dims)
    origins = np.asarray(overlay.added_origins, np.float32).reshape(-1, dims)
    links = np.full((3 * len(added), dims), np.nan, np.float32)
    if len(added) and len(origins) == len(added):
        keep = ~np.isnan(origins).any(axis=1)
        links[0::3][keep] = origins[keep]
        links[1::3][keep] = added[keep]
    condition_labels = [escape(label) for label in overlay.condition_labels]
    added_labels = [escape(label) for label in overlay.added_labels]
    return [
        _scatter(
            dims,
            conditions,
            mode="lines+markers",
            name="generation path",
            showlegend=False,
            hovertext=condition_labels,
            hovertemplate="%{hovertext}<extra>generated from</extra>",
            line={"color": GENERATION_COLOUR, "width": 2 if dims == 2 else 4, "dash": "dot" if dims == 2 else "solid"},
            marker={"size": 13 if dims == 2 else 6, "color": GENERATION_COLOUR, "symbol": "star" if dims == 2 else "diamond", "line": {"color": "white", "width": 1}},
        ),
        _scatter(dims, links, mode="lines", name="generated links", showlegend=False, hoverinfo="skip", connectgaps=False, line={"color": GENERATED_COLOUR, "width": 2 if dims == 2 else 4}),
        _scatter(
            dims,
            added,
            mode="markers",
            name="generated",
            showlegend=False,
            customdata=[int(item) for item in np.asarray(overlay.added_ids)],
            hovertext=added_labels,
            hovertemplate="%{hovertext}<extra>generated</extra>",
            marker={"size": 14 if dims == 2 else 7, "color": GENERATED_COLOUR, "symbol": "square", "line": {"color": "white", "width": 1}},
        ),
    ]


def cluster_annotations(points: MapPoints, view: View | None = None, in_view: int | None = None) -> list[dict]:
    """Names of the map's larger clusters at their centres (2-D maps), for the whole map or one ``view``.

    At most :data:`CLUSTER_LABELS` names, each of a cluster holding at least
    :data:`CLUSTER_LABEL_SHARE` of the points in view (``in_view``; default all points) and
    centred inside ``view``: zoomed out, only the big clusters are named; zoomed in, the
    smaller ones inside the view get their names too.
    """
    if points.dims != 2:
        return []
    total = len(points.ids) if in_view is None else in_view
    shown = [
        cluster
        for cluster in points.clusters
        if cluster.size >= CLUSTER_LABEL_SHARE * total and (view is None or view.contains(np.asarray([cluster.centre[:2]], np.float64))[0])
    ][:CLUSTER_LABELS]
    return [
        {"x": cluster.centre[0], "y": cluster.centre[1], "text": escape(cluster.name), "showarrow": False,
         "font": {"size": 12, "color": "#222"}, "bgcolor": "rgba(255,255,255,0.7)", "name": f"cluster-{cluster.cluster}"}
        for cluster in shown
    ]


@dataclass(frozen=True)
class DensityLayer:
    """The level-of-detail background of a large 2-D map (see :mod:`dashboard.density`).

    Attributes:
        source: the density image of every point in ``view``, a PNG data URI.
        view: the rectangle the image and the drawn sample cover.
        in_view: how many of the map's points lie in ``view`` (all of them, not only the sample).
        total: the map's number of points.
    """

    source: str
    view: View
    in_view: int
    total: int


def density_image_layout(layer: DensityLayer) -> dict:
    """The ``layout.images`` entry that stretches the density image over its view, below the points."""
    view = layer.view
    return {
        "source": layer.source, "xref": "x", "yref": "y", "x": view.x0, "y": view.y1, "sizex": view.x1 - view.x0, "sizey": view.y1 - view.y0,
        "sizing": "stretch", "xanchor": "left", "yanchor": "top", "layer": "below", "opacity": 1.0, "name": "density",
    }


def map_figure(points: MapPoints, neighbors: Highlight | None = None, query: Highlight | None = None, density: DensityLayer | None = None) -> go.Figure:
    """The map: every point coloured with a legend, then the overlays (see module docs).

    With ``density`` (a large 2-D map), ``points`` is the sample drawn for the layer's view,
    the layer's image lies under it, the axes start at that view and the cluster names are
    those for the view.
    """
    dims = points.dims
    figure = go.Figure(data=base_traces(points, size=LOD_MARKER_SIZE if density is not None else None) + overlay_traces(dims, neighbors, query))
    layout = {
        "template": "plotly_white",
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "legend": {"title": {"text": escape(points.colour_name)}, "itemsizing": "constant"},
        "uirevision": f"map-{dims}d",
        "hovermode": "closest",
        "clickmode": "event",
    }
    if dims == 3:
        axis = {"showticklabels": False, "title": {"text": ""}}
        layout["scene"] = {"xaxis": axis, "yaxis": axis, "zaxis": axis}
    else:
        layout["xaxis"] = {"showticklabels": False, "zeroline": False, "showgrid": False}
        layout["yaxis"] = {"showticklabels": False, "zeroline": False, "showgrid": False, "scaleanchor": "x"}
        layout["dragmode"] = "lasso"
        if density is None:
            layout["annotations"] = cluster_annotations(points)
        else:
            view = density.view
            layout["xaxis"]["range"] = [view.x0, view.x1]
            layout["yaxis"]["range"] = [view.y0, view.y1]
            layout["images"] = [density_image_layout(density)]
            layout["annotations"] = cluster_annotations(points, view, density.in_view)
    figure.update_layout(**layout)
    return figure


def message_figure(message: str) -> go.Figure:
    """An empty figure showing ``message`` (e.g. while the map is computed)."""
    figure = go.Figure()
    figure.update_layout(
        template="plotly_white",
        xaxis={"visible": False},
        yaxis={"visible": False},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        annotations=[{"text": escape(message), "showarrow": False, "font": {"size": 16}, "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}],
    )
    return figure
