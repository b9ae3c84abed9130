"""URL state: the selected item, text query, view, colouring and modality filter live in the query string.

Two ``dcc.Location`` components keep this free of callback cycles: :data:`~dashboard.ids.URL_IN`
is read when the page loads (and on back/forward), and restores the controls and stores;
:data:`~dashboard.ids.URL_OUT` (``refresh=False``) is written whenever they change, which
updates the address bar without reloading. A reload or a shared link thus restores the view.
"""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids
from dashboard.access import SpaceAccess
from dashboard.state import ViewState, compose_query_string, parse_query_string


def layout() -> html.Div:
    """The two (invisible) Location components."""
    return html.Div([dcc.Location(id=ids.URL_IN, refresh=False), dcc.Location(id=ids.URL_OUT, refresh=False)])


def restore(
    search: str | None,
    colours: list[str],
    current: tuple[str | None, str | None, str | None, str | None, int | None, dict | None],
) -> tuple[Any, ...]:
    """Values for (view, colour, modality, search text, selected item, search request) from a query string.

    ``current`` holds the present values in the same order; unchanged ones come back as
    ``no_update`` so that writing the URL never re-triggers what it describes.
    """
    state = parse_query_string(search)
    colour = state.colour if state.colour in colours else "modality"
    request = {"text": state.query} if state.query else None
    wanted = (state.view, colour, state.modality, state.query or "", state.item, request)
    view, colour_now, modality, text, selected, previous_request = current
    now = (view, colour_now, modality, text or "", selected, previous_request)
    values = [value if value != present else no_update for value, present in zip(wanted, now)]
    if request is not None and (previous_request or {}).get("text") == state.query:
        values[5] = no_update
    if request is None:
        values[3] = no_update  # keep what the user typed when the URL has no query
        values[5] = no_update
    return tuple(values)


def compose(view: str | None, colour: str | None, modality: str | None, selected: int | None, query: dict[str, Any] | None) -> str:
    """The query string for the present view (text queries only: uploads are not put in the URL)."""
    text = query.get("description") if query and query.get("kind") == "text" else None
    state = ViewState(item=selected, query=text, view=view or "2d", colour=colour or "modality", modality=modality or "all")
    return compose_query_string(state)


def register(app: Dash, access: SpaceAccess) -> None:
    """Attach the URL callbacks to ``app``."""

    @app.callback(
        Output(ids.MAP_VIEW, "value"),
        Output(ids.MAP_COLOUR, "value"),
        Output(ids.SEARCH_MODALITY, "value"),
        Output(ids.SEARCH_TEXT, "value"),
        Output(ids.STORE_SELECTED, "data"),
        Output(ids.STORE_SEARCH_REQUEST, "data"),
        Input(ids.URL_IN, "search"),
        State(ids.MAP_VIEW, "value"),
        State(ids.MAP_COLOUR, "value"),
        State(ids.SEARCH_MODALITY, "value"),
        State(ids.SEARCH_TEXT, "value"),
        State(ids.STORE_SELECTED, "data"),
        State(ids.STORE_SEARCH_REQUEST, "data"),
    )
    def _restore(search: str | None, *current: Any) -> tuple:
        if search is None:
            return (no_update,) * 6
        return restore(search, access.colour_columns(), current)

    @app.callback(
        Output(ids.URL_OUT, "search"),
        Input(ids.MAP_VIEW, "value"),
        Input(ids.MAP_COLOUR, "value"),
        Input(ids.SEARCH_MODALITY, "value"),
        Input(ids.STORE_SELECTED, "data"),
        Input(ids.STORE_QUERY, "data"),
        prevent_initial_call=True,
    )
    def _write(view: str | None, colour: str | None, modality: str | None, selected: int | None, query: dict | None) -> str:
        return compose(view, colour, modality, selected, query)
