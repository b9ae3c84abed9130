"""The selection panel: a table of the items inside a box or lasso drawn on the 2-D map."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, html

from dashboard import cards, ids
from dashboard.access import SpaceAccess
from dashboard.maps import SpaceMaps
from dashboard.panels.map import event_items

#: Most rows shown; the heading gives the full count.
MAX_ROWS = 200
HINT = "Draw a box or lasso on the 2-D map to list the items inside."


def layout() -> html.Div:
    """Heading and the table (a hint until something is selected)."""
    return html.Div([html.H3("Selection"), html.Div(html.P(HINT, className="hint"), id=ids.SELECTION_TABLE)], className="panel selection-panel")


def selection_view(access: SpaceAccess, maps: SpaceMaps, selection: dict[str, Any] | None, meta: dict[str, Any] | None, max_rows: int = MAX_ROWS) -> Any:
    """Heading with the count and a table of (up to ``max_rows``) items in a plotly ``selectedData``.

    ``meta`` describes the drawn figure (see :func:`dashboard.panels.map.figure`).
    """
    chosen = event_items(maps, selection, meta)
    if not chosen:
        return html.P(HINT, className="hint")
    records, known = access.items(chosen, max_rows)
    shown = f" (first {len(records)} shown)" if known > len(records) else ""
    return html.Div([html.P(f"{known} selected{shown}", className="selection-count"), cards.items_table(records)])


def register(app: Dash, access: SpaceAccess, maps: SpaceMaps) -> None:
    """Attach the selection panel's callback to ``app``."""

    @app.callback(
        Output(ids.SELECTION_TABLE, "children"),
        Input(ids.MAP_GRAPH, "selectedData"),
        State(ids.STORE_FIGURE_META, "data"),
        prevent_initial_call=True,
    )
    def _selection(selection: dict | None, meta: dict | None) -> Any:
        return selection_view(access, maps, selection, meta)
