"""The map panel: the UMAP scatter (2-D/3-D, colour-by), its background computation and hover preview.

The map is never computed in a request: :func:`poll` asks the app's maps (:mod:`dashboard.maps`) for the map's
status every :data:`POLL_MS` while it computes (the page shows "computing map…" with
progress), then every :data:`IDLE_POLL_MS` to notice writes to the space. When the map
is ready, :data:`~dashboard.ids.STORE_MAP_READY` changes and :func:`figure` draws it.
Overlays (neighbours of the selected item, the query and its results, the points a
generation started from and generated images added to the space) change without
resending the points: a ``dash.Patch`` replaces only the overlay traces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import Dash, Input, Output, Patch, State, dcc, html, no_update

from dashboard import cards, ids
from dashboard.access import SpaceAccess
from dashboard.density import View, relayout_view
from dashboard.maps import DIMS, MapStatus, SpaceMaps
from dashboard.figures import (
    GENERATION_TRACE_COUNT,
    LOD_MARKER_SIZE,
    OVERLAY_TRACE_COUNT,
    GenerationOverlay,
    Highlight,
    base_traces,
    cluster_annotations,
    density_image_layout,
    event_item_ids,
    generation_traces,
    map_figure,
    message_figure,
    overlay_traces,
)
from dashboard.state import DEFAULT_COLOUR, DEFAULT_VIEW, decode_vector

POLL_MS = 400
IDLE_POLL_MS = 5_000
COMPUTING = "computing map… "


def layout(access: SpaceAccess) -> html.Div:
    """Controls, status line with progress, the graph and the hover preview."""
    colours = access.colour_columns()
    return html.Div(
        [
            html.Div(
                [
                    dcc.RadioItems(id=ids.MAP_VIEW, options=[{"label": "2-D", "value": "2d"}, {"label": "3-D", "value": "3d"}, {"label": "2-D, modalities aligned", "value": "aligned"}], value=DEFAULT_VIEW, inline=True),
                    html.Label(["colour by ", dcc.Dropdown(id=ids.MAP_COLOUR, options=colours, value=DEFAULT_COLOUR, clearable=False, className="colour-dropdown")], className="colour-label"),
                ],
                className="map-controls",
            ),
            html.Div([html.Span(COMPUTING, id=ids.MAP_STATUS), html.Progress(id=ids.MAP_PROGRESS, value="0", max="100")], className="map-status"),
            dcc.Graph(
                id=ids.MAP_GRAPH,
                figure=message_figure("computing map…"),
                config={"displaylogo": False, "scrollZoom": True},
                className="map-graph",
                clear_on_unhover=True,
            ),
            html.Div(id=ids.MAP_HOVER, className="map-hover"),
            dcc.Interval(id=ids.MAP_INTERVAL, interval=POLL_MS),
            dcc.Store(id=ids.STORE_MAP_READY),
            dcc.Store(id=ids.STORE_FIGURE_META),
        ],
        className="panel map-panel",
    )


# -- callback logic (plain functions, tested without a browser) -----------------------------------


#: How the status line names each view.
VIEW_NAMES = {"2d": "2D", "3d": "3D", "aligned": "2D modality-aligned"}


def status_view(status: MapStatus, dims: str) -> tuple[str, str, dict[str, str], dict[str, Any] | None, int]:
    """Status text, progress value (0–100), progress style, ready-store value and poll interval for a status."""
    if status.state == "ready":
        ready = {"dims": dims, "revision": status.revision, "placeable": status.placeable}
        # poll quickly until queries can be placed, so a query waiting for that appears soon
        return f"{VIEW_NAMES.get(dims, dims.upper())} map · {status.message}", "100", {"display": "none"}, ready, IDLE_POLL_MS if status.placeable else POLL_MS
    if status.state == "error":
        return f"the map could not be computed: {status.message}", "0", {"display": "none"}, None, IDLE_POLL_MS
    percent = f"{100 * status.progress:.0f}"
    return f"{COMPUTING}{percent}% · {status.message}", percent, {}, None, POLL_MS


def poll(maps: SpaceMaps, dims: str | None) -> tuple[str, str, dict[str, str], dict[str, Any] | None, int]:
    """Ask the maps for the ``dims`` map (queuing it if needed); see :func:`status_view`."""
    dims = dims or DEFAULT_VIEW
    return status_view(maps.status(dims), dims)


def neighbors_highlight(maps: SpaceMaps, dims: str, neighbors: dict[str, Any] | None) -> Highlight | None:
    """The selected item and lines to its neighbours, from the neighbours store."""
    if not neighbors:
        return None
    results = neighbors.get("results", [])
    coordinates = maps.coordinates_of(dims, [neighbors["id"]] + [record["id"] for record in results])
    origin, targets = coordinates[0], coordinates[1:]
    keep = ~np.isnan(targets).any(axis=1)
    return Highlight(
        origin=None if np.isnan(origin).any() else origin,
        origin_label=neighbors.get("label", ""),
        origin_id=int(neighbors["id"]),
        targets=targets[keep],
        target_ids=np.asarray([record["id"] for record in results], dtype=np.int64)[keep],
        target_labels=[record["label"] for record, kept in zip(results, keep) if kept],
    )


def query_highlight(maps: SpaceMaps, dims: str, query: dict[str, Any] | None) -> Highlight | None:
    """The query placed on the map with the projection's ``transform``, and lines to its results."""
    if not query or not query.get("vector"):
        return None
    results = query.get("results", [])
    origin = maps.place(dims, decode_vector(query["vector"]), wait=0.0)  # None until placeable; drawn when it is
    targets = maps.coordinates_of(dims, [record["id"] for record in results])
    keep = ~np.isnan(targets).any(axis=1)
    return Highlight(
        origin=origin,
        origin_label=f"query: {query.get('description', '')}",
        targets=targets[keep],
        target_ids=np.asarray([record["id"] for record in results], dtype=np.int64)[keep],
        target_labels=[record["label"] for record, kept in zip(results, keep) if kept],
    )


def generation_highlight(maps: SpaceMaps, dims: str, generation: dict[str, Any] | None) -> GenerationOverlay | None:
    """The points generated from and the generated items added to the space, placed on the map.

    ``generation`` is the generation panel's overlay store (see :mod:`dashboard.panels.generate`).
    Added items are drawn where the map has them, or placed with ``transform`` until the map includes them.
    """
    if not generation:
        return None
    conditions = generation.get("conditions") or []
    added = generation.get("added") or []
    vectors = np.stack([decode_vector(entry["vector"]) for entry in conditions]) if conditions else np.zeros((0, 1), np.float32)
    placed = maps.place_many(dims, vectors)
    keep = ~np.isnan(placed).any(axis=1)
    n_components = DIMS[dims]
    added_at = maps.coordinates_of(dims, [entry["id"] for entry in added]) if added else np.zeros((0, n_components), np.float32)
    missing = np.isnan(added_at).any(axis=1)
    if missing.any():
        added_at[missing] = maps.place_many(dims, np.stack([decode_vector(added[row]["vector"]) for row in np.flatnonzero(missing)]))
    origins = maps.place_many(dims, np.stack([decode_vector(entry["condition_vector"]) for entry in added])) if added else np.zeros((0, n_components), np.float32)
    shown = ~np.isnan(added_at).any(axis=1)
    return GenerationOverlay(
        conditions=placed[keep],
        condition_labels=[entry.get("label", "") for entry, kept in zip(conditions, keep) if kept],
        added=added_at[shown],
        added_ids=np.asarray([entry["id"] for entry in added], dtype=np.int64)[shown] if added else np.zeros(0, np.int64),
        added_labels=[entry.get("label", "") for entry, kept in zip(added, shown) if kept],
        added_origins=origins[shown],
    )


def figure(
    maps: SpaceMaps,
    ready: dict[str, Any] | None,
    colour: str | None,
    neighbors: dict[str, Any] | None,
    query: dict[str, Any] | None,
    meta: dict[str, Any] | None,
    generation: dict[str, Any] | None = None,
) -> tuple[go.Figure | Patch | Any, dict[str, Any] | Any]:
    """The map figure and its meta store.

    A full figure when the map, its view or its colouring differ from the drawn figure
    (``meta``); otherwise a ``Patch`` of the overlay and generation traces only
    (neighbours, query, generation: the points are not resent); ``no_update`` while no
    map is ready.
    """
    if not ready:
        return no_update, no_update
    dims = ready["dims"]
    colour = colour or DEFAULT_COLOUR
    current = {"dims": dims, "revision": ready["revision"], "colour": colour}
    drawn = meta and {key: meta.get(key) for key in current} == current
    n_components = DIMS[dims]
    overlays = (neighbors_highlight(maps, dims, neighbors), query_highlight(maps, dims, query))
    generated = generation_traces(n_components, generation_highlight(maps, dims, generation))
    if drawn:
        patch = Patch()
        for offset, trace in enumerate(overlay_traces(n_components, *overlays) + generated):
            patch["data"][meta["base_traces"] + offset] = trace.to_plotly_json()
        return patch, no_update
    same_map = bool(meta) and meta.get("dims") == dims and meta.get("revision") == ready["revision"]
    view = View.from_list(meta.get("view")) if same_map else None  # a new colouring keeps the user's view
    points, layer = maps.drawn(dims, colour, view)
    if points is None:
        return no_update, no_update
    built = map_figure(points, *overlays, density=layer)
    built.add_traces(generated)
    drawn_meta = dict(current, base_traces=len(built.data) - OVERLAY_TRACE_COUNT - GENERATION_TRACE_COUNT)
    if layer is not None:
        drawn_meta["view"] = layer.view.to_list()
    return built, drawn_meta


def moved(maps: SpaceMaps, relayout: dict[str, Any] | None, meta: dict[str, Any] | None) -> tuple[Patch | Any, dict[str, Any] | Any]:
    """After the user panned or zoomed a 2-D map: the cluster names for the new view and, on a
    large map, the sample and density image for it (a ``Patch``: overlays are not resent).

    ``no_update`` when the event did not move the axes, for 3-D maps and before a map is drawn.
    """
    if not meta or DIMS.get(meta.get("dims")) != 2:
        return no_update, no_update
    dims, colour = meta["dims"], meta["colour"]
    points = maps.points(dims, colour)
    if points is None or points.revision != meta["revision"]:
        return no_update, no_update
    lod = maps.level_of_detail(dims, colour)
    full = lod.full if lod is not None else View.around(points.coordinates)
    view = relayout_view(relayout, View.from_list(meta.get("view")), full)
    if view is None:
        return no_update, no_update
    patch = Patch()
    if lod is None:
        in_view = int(view.contains(points.coordinates).sum())
        patch["layout"]["annotations"] = cluster_annotations(points, view, in_view)
        return patch, dict(meta, view=view.to_list())
    sample, layer = lod.layer(view)
    for number, trace in enumerate(base_traces(sample, size=LOD_MARKER_SIZE)):
        patch["data"][number] = trace.to_plotly_json()
    patch["layout"]["images"] = [density_image_layout(layer)]
    patch["layout"]["annotations"] = cluster_annotations(sample, view, layer.in_view)
    return patch, dict(meta, view=view.to_list())


def event_items(maps: SpaceMaps, event: dict[str, Any] | None, meta: dict[str, Any] | None) -> list[int]:
    """Item ids of the points in a plotly click / hover / selection event on the drawn figure.

    ``meta`` describes the drawn figure (see :func:`figure`); if the map has moved on
    since it was drawn (another revision), only overlay points (which carry ids) count.
    """
    if not event:
        return []
    points = None
    if meta:
        points = maps.drawn_points(meta["dims"], meta["colour"], View.from_list(meta.get("view")))
        if points is not None and points.revision != meta["revision"]:
            points = None
    return event_item_ids(points, meta["base_traces"] if meta else 0, event)


def clicked_item(maps: SpaceMaps, click: dict[str, Any] | None, meta: dict[str, Any] | None) -> int | Any:
    """The item id of a clicked point, or ``no_update`` (a line, an empty click)."""
    items = event_items(maps, click, meta)
    return items[0] if items else no_update


def hover_preview(access: SpaceAccess, maps: SpaceMaps, hover: dict[str, Any] | None, meta: dict[str, Any] | None) -> Any:
    """A card for the hovered item (label, thumbnail, audio player), or nothing."""
    items = event_items(maps, hover, meta)
    if not items:
        return None
    try:
        return cards.hover_card(access.item(items[0]))
    except ValueError:
        return None


# -- registration ---------------------------------------------------------------------------------


def register(app: Dash, access: SpaceAccess, maps: SpaceMaps) -> None:
    """Attach the map panel's callbacks to ``app``."""

    @app.callback(
        Output(ids.MAP_STATUS, "children"),
        Output(ids.MAP_PROGRESS, "value"),
        Output(ids.MAP_PROGRESS, "style"),
        Output(ids.STORE_MAP_READY, "data"),
        Output(ids.MAP_INTERVAL, "interval"),
        Input(ids.MAP_INTERVAL, "n_intervals"),
        Input(ids.MAP_VIEW, "value"),
        State(ids.STORE_MAP_READY, "data"),
        State(ids.MAP_INTERVAL, "interval"),
    )
    def _poll(_ticks: int | None, dims: str | None, ready: dict | None, interval: int | None) -> tuple:
        text, percent, style, new_ready, new_interval = poll(maps, dims)
        return text, percent, style, (no_update if new_ready == ready else new_ready), (no_update if new_interval == interval else new_interval)

    @app.callback(
        Output(ids.MAP_GRAPH, "figure"),
        Output(ids.STORE_FIGURE_META, "data"),
        Input(ids.STORE_MAP_READY, "data"),
        Input(ids.MAP_COLOUR, "value"),
        Input(ids.STORE_NEIGHBORS, "data"),
        Input(ids.STORE_QUERY, "data"),
        Input(ids.STORE_GENERATE_OVERLAY, "data"),
        State(ids.STORE_FIGURE_META, "data"),
    )
    def _figure(ready: dict | None, colour: str | None, neighbors: dict | None, query: dict | None, generation: dict | None, meta: dict | None) -> tuple:
        return figure(maps, ready, colour, neighbors, query, meta, generation)

    @app.callback(
        Output(ids.MAP_GRAPH, "figure", allow_duplicate=True),
        Output(ids.STORE_FIGURE_META, "data", allow_duplicate=True),
        Input(ids.MAP_GRAPH, "relayoutData"),
        State(ids.STORE_FIGURE_META, "data"),
        prevent_initial_call=True,
    )
    def _moved(relayout: dict | None, meta: dict | None) -> tuple:
        return moved(maps, relayout, meta)

    @app.callback(
        Output(ids.STORE_SELECTED, "data", allow_duplicate=True),
        Input(ids.MAP_GRAPH, "clickData"),
        State(ids.STORE_FIGURE_META, "data"),
        prevent_initial_call=True,
    )
    def _click(click: dict | None, meta: dict | None) -> int | Any:
        return clicked_item(maps, click, meta)

    @app.callback(
        Output(ids.MAP_HOVER, "children"),
        Input(ids.MAP_GRAPH, "hoverData"),
        State(ids.STORE_FIGURE_META, "data"),
        prevent_initial_call=True,
    )
    def _hover(hover: dict | None, meta: dict | None) -> Any:
        return hover_preview(access, maps, hover, meta)
