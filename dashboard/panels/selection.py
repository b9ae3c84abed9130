"""The selection panel: every item inside a box or lasso drawn on the 2-D map, or in a named cluster, as a paged table.

A box or lasso is resolved on the server over **all** points of the map (see
:meth:`dashboard.maps.SpaceMaps.select`), not only the points the page drew: on a large
map the page holds a sample, and the count and table still cover every point inside the
shape. The selection (its shape or cluster, and the page shown) lives in
:data:`~dashboard.ids.STORE_SELECTION`; the table shows :data:`PAGE_ROWS` items a page.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import cards, ids
from dashboard.access import SpaceAccess
from dashboard.maps import DIMS, SpaceMaps
from dashboard.panels.map import event_items

#: Items a page of the table shows; the heading gives the full count.
PAGE_ROWS = 50
#: Most points kept from a selection event that has no shape (the page never sends one; crafted requests may).
MAX_EVENT_POINTS = 10_000
HINT = "Draw a box or lasso on the 2-D map, or pick a cluster, to list the items inside."


def layout() -> html.Div:
    """Heading, the cluster picker, page buttons and the table (a hint until something is selected)."""
    return html.Div(
        [
            html.H3("Selection"),
            dcc.Dropdown(id=ids.SELECTION_CLUSTER, options=[], placeholder="select a named cluster…", className="cluster-dropdown"),
            html.Div(html.P(HINT, className="hint"), id=ids.SELECTION_TABLE),
            html.Div(
                [html.Button("◀ previous", id=ids.SELECTION_PREV, className="page-button"), html.Button("next ▶", id=ids.SELECTION_NEXT, className="page-button")],
                className="selection-pages",
            ),
            dcc.Store(id=ids.STORE_SELECTION),
        ],
        className="panel selection-panel",
    )


# -- callback logic (plain functions, tested without a browser) -----------------------------------


def new_selection(maps: SpaceMaps, event: dict[str, Any] | None, meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """The selection store for a plotly ``selectedData``: its box or lasso (2-D), else the ids of its points; None when empty."""
    if not event or not meta:
        return None
    dims = meta["dims"]
    shape = {key: event[key] for key in ("range", "lassoPoints") if event.get(key)}
    if shape and DIMS.get(dims) == 2:
        return {"dims": dims, "revision": meta["revision"], "shape": shape, "page": 0}
    chosen = event_items(maps, event, meta)[:MAX_EVENT_POINTS]
    return {"dims": dims, "revision": meta["revision"], "ids": chosen, "page": 0} if chosen else None


def cluster_selection(cluster: int | None, meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """The selection store for a cluster picked in the dropdown (None clears it)."""
    if cluster is None or not meta:
        return None
    return {"dims": meta["dims"], "revision": meta["revision"], "cluster": int(cluster), "page": 0}


def turn_page(selection: dict[str, Any] | None, step: int) -> dict[str, Any] | None:
    """The selection one page on (``step`` 1) or back (-1); the view clamps it to the pages there are."""
    if not selection:
        return None
    return dict(selection, page=max(0, int(selection.get("page", 0)) + step))


def selected_ids(maps: SpaceMaps, selection: dict[str, Any] | None) -> np.ndarray:
    """Item ids of every point in the selection, in map order."""
    if not selection:
        return np.zeros(0, np.int64)
    if "ids" in selection:
        return np.asarray(selection["ids"], dtype=np.int64)
    chosen, _ = maps.select(selection["dims"], shape=selection.get("shape"), cluster=selection.get("cluster"))
    return chosen


def selection_view(access: SpaceAccess, maps: SpaceMaps, selection: dict[str, Any] | None, page_rows: int = PAGE_ROWS) -> Any:
    """Heading with the count and page, and a table of that page's items (the hint when nothing is selected)."""
    return shown_page(access, selected_ids(maps, selection), selection, page_rows)[0]


def shown_page(access: SpaceAccess, chosen: np.ndarray, selection: dict[str, Any] | None, page_rows: int = PAGE_ROWS) -> tuple[Any, int]:
    """The view of the selection's page of the ``chosen`` ids, and that page clamped to the pages there are."""
    if not len(chosen):
        return html.P(HINT if not selection else "Nothing of the map lies inside the selection.", className="hint"), 0
    pages = (len(chosen) + page_rows - 1) // page_rows
    page = min(int(selection.get("page", 0)), pages - 1)
    shown = chosen[page * page_rows : (page + 1) * page_rows]
    records, _ = access.items(shown.tolist(), page_rows)
    where = f" · page {page + 1} of {pages}" if pages > 1 else ""
    return html.Div([html.P(f"{len(chosen):,} selected{where}", className="selection-count"), cards.items_table(records)]), page


def cluster_options(maps: SpaceMaps, ready: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Dropdown options for the drawn map's named clusters: "name (size)"."""
    if not ready:
        return []
    return [{"label": f"{name} ({size:,})", "value": cluster} for cluster, name, size in maps.clusters(ready["dims"])]


# -- registration ---------------------------------------------------------------------------------


def register(app: Dash, access: SpaceAccess, maps: SpaceMaps) -> None:
    """Attach the selection panel's callbacks to ``app``."""

    @app.callback(
        Output(ids.SELECTION_TABLE, "children"),
        Output(ids.STORE_SELECTION, "data"),
        Input(ids.MAP_GRAPH, "selectedData"),
        Input(ids.SELECTION_CLUSTER, "value"),
        Input(ids.SELECTION_PREV, "n_clicks"),
        Input(ids.SELECTION_NEXT, "n_clicks"),
        State(ids.STORE_FIGURE_META, "data"),
        State(ids.STORE_SELECTION, "data"),
        prevent_initial_call=True,
    )
    def _selection(event: dict | None, cluster: int | None, _back: int | None, _on: int | None, meta: dict | None, current: dict | None) -> tuple:
        trigger = ctx.triggered_id
        if trigger == ids.MAP_GRAPH:
            chosen = new_selection(maps, event, meta)
        elif trigger == ids.SELECTION_CLUSTER:
            chosen = cluster_selection(cluster, meta)
        else:
            chosen = turn_page(current, -1 if trigger == ids.SELECTION_PREV else 1)
            if chosen is None:
                return no_update, no_update
        view, page = shown_page(access, selected_ids(maps, chosen), chosen)  # the shape is resolved once per click
        return view, (None if chosen is None else dict(chosen, page=page))

    @app.callback(Output(ids.SELECTION_CLUSTER, "options"), Input(ids.STORE_MAP_READY, "data"))
    def _clusters(ready: dict | None) -> list[dict[str, Any]]:
        return cluster_options(maps, ready)
