"""The neighbours panel: the k nearest items of the selected item, from the FAISS index.

The selected item lives in :data:`~dashboard.ids.STORE_SELECTED` (set by a click on the
map, a click on a result's label here or in the search panel, or the URL). Its
neighbours are searched in the original space, not on the map, and written to
:data:`~dashboard.ids.STORE_NEIGHBORS` for the map to draw lines to them.
"""

from __future__ import annotations

from typing import Any

from dash import ALL, Dash, Input, Output, ctx, dcc, html, no_update

from dashboard import cards, ids
from dashboard.access import SpaceAccess

DEFAULT_K = 10
HINT = "Click a point on the map (or a result) to see its nearest neighbours."


def layout() -> html.Div:
    """Heading and the neighbours list (filled by :func:`neighbors_view`)."""
    return html.Div(
        [
            html.H3("Neighbours"),
            html.Div(html.P(HINT, className="hint"), id=ids.NEIGHBORS_PANEL),
            dcc.Store(id=ids.STORE_SELECTED),
            dcc.Store(id=ids.STORE_NEIGHBORS),
        ],
        className="panel neighbors-panel",
    )


# -- callback logic ----------------------------------------------------------------------------


def neighbors_view(access: SpaceAccess, selected: int | None, k: int = DEFAULT_K) -> tuple[Any, dict[str, Any] | None]:
    """The panel's content and the neighbours store for the selected item."""
    if selected is None:
        return html.P(HINT, className="hint"), None
    try:
        item = access.item(selected)
        results = access.neighbors(selected, k)
    except ValueError as error:
        return html.P(str(error), className="message"), None
    heading = html.Div([html.Span("nearest to "), cards.result_row(item)], className="selected-item")
    store = {"id": item["id"], "label": item["label"], "results": results}
    return html.Div([heading, cards.result_list(results, ids.NEIGHBOR_LIST)]), store


def picked_item(triggered: dict[str, Any] | None, clicks: int | None) -> int | Any:
    """The item id of the clicked result button, or ``no_update`` when no button was really clicked."""
    if not triggered or not clicks:
        return no_update
    return int(triggered["index"])


# -- registration ---------------------------------------------------------------------------------


def register(app: Dash, access: SpaceAccess, k: int = DEFAULT_K) -> None:
    """Attach the neighbours panel's callbacks to ``app``."""

    @app.callback(
        Output(ids.NEIGHBORS_PANEL, "children"),
        Output(ids.STORE_NEIGHBORS, "data"),
        Input(ids.STORE_SELECTED, "data"),
    )
    def _neighbors(selected: int | None) -> tuple:
        return neighbors_view(access, selected, k)

    @app.callback(
        Output(ids.STORE_SELECTED, "data", allow_duplicate=True),
        Input({"type": ids.PICK, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def _pick(_clicks: list[int | None]) -> int | Any:
        clicks = ctx.triggered[0]["value"] if ctx.triggered else None
        return picked_item(ctx.triggered_id, clicks)
