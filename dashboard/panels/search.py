"""The search panel: a text box, image and audio uploads, a modality filter, results with scores.

A search writes :data:`~dashboard.ids.STORE_QUERY`::

    {"kind": "text" | "image" | "audio", "description": str, "vector": base64 float32 (D,),
     "modality": "all" | "text" | "image" | "audio", "results": [record, ...]}

which the map panel draws (the query placed with the projection's ``transform``) and the
URL keeps (text queries only). Uploads are checked for size in the browser first (a
client-side callback), so a file over the limit is never sent; the server checks again
and refuses files that are not images / audio with a message in the page.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Collection
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import cards, ids
from dashboard.access import SpaceAccess
from dashboard.state import ALL_MODALITIES, MODALITY_CHOICES, decode_vector, encode_vector, modality_filter

logger = logging.getLogger(__name__)

DEFAULT_K = 10


def layout(access: SpaceAccess) -> html.Div:
    """Text box and button, uploads, modality filter, message line and results."""
    limit_mb = access.max_upload_bytes / (1024 * 1024)
    return html.Div(
        [
            html.H3("Search"),
            html.Div(
                [
                    dcc.Input(id=ids.SEARCH_TEXT, type="text", placeholder="search with text, e.g. kitten", debounce=False, className="search-text", n_submit=0),
                    html.Button("Search", id=ids.SEARCH_BUTTON, n_clicks=0),
                ],
                className="search-row",
            ),
            html.Div(
                [
                    dcc.Upload(id=ids.SEARCH_IMAGE_UPLOAD, children=html.Div(["search with an ", html.B("image"), " (drop or click)"]), className="upload", multiple=False),
                    dcc.Upload(id=ids.SEARCH_AUDIO_UPLOAD, children=html.Div(["search with a ", html.B("sound"), " (drop or click)"]), className="upload", multiple=False),
                ],
                className="upload-row",
            ),
            html.Small(f"files up to {limit_mb:.0f} MB", className="hint"),
            dcc.RadioItems(
                id=ids.SEARCH_MODALITY,
                options=[{"label": "all" if value == ALL_MODALITIES else value, "value": value} for value in MODALITY_CHOICES],
                value=ALL_MODALITIES,
                inline=True,
                className="modality-filter",
            ),
            html.Div(id=ids.SEARCH_MESSAGE, className="message", role="status"),
            html.Div(id=ids.SEARCH_RESULTS),
            dcc.Store(id=ids.STORE_QUERY),
            dcc.Store(id=ids.STORE_SEARCH_REQUEST),
            dcc.Store(id=ids.STORE_UPLOAD),
        ],
        className="panel search-panel",
    )


# -- callback logic ----------------------------------------------------------------------------


def decode_upload(contents: str) -> bytes:
    """The bytes of a ``dcc.Upload`` data URL (``data:<type>;base64,<payload>``).

    Raises:
        ValueError: not a base64 data URL.
    """
    try:
        _header, payload = contents.split(",", 1)
        return base64.b64decode(payload, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("the upload arrived damaged; try again") from None


def query_store(kind: str, outcome: Any, modality: str) -> dict[str, Any]:
    """The :data:`~dashboard.ids.STORE_QUERY` value for a search outcome."""
    return {"kind": kind, "description": outcome.description, "vector": encode_vector(outcome.vector), "modality": modality, "results": outcome.results}


def search(
    access: SpaceAccess,
    triggers: Collection[str],
    text: str | None,
    request: dict[str, Any] | None,
    upload: dict[str, Any] | None,
    modality: str | None,
    previous: dict[str, Any] | None,
    k: int = DEFAULT_K,
) -> tuple[dict[str, Any] | Any, str]:
    """Run the search that ``triggers`` (the ids of the inputs that changed) ask for.

    An explicit search (button, Enter, URL request, upload) wins over a change of the
    modality filter, which re-runs the current query with the new filter.
    Returns the new query store (or ``no_update``) and a message for the page ("" when all is well).
    """
    triggers = set(triggers)
    trigger = next((name for name in (ids.SEARCH_BUTTON, ids.SEARCH_TEXT, ids.STORE_SEARCH_REQUEST, ids.STORE_UPLOAD, ids.SEARCH_MODALITY) if name in triggers), None)
    modality = modality or ALL_MODALITIES
    wanted = modality_filter(modality)
    try:
        if trigger in (ids.SEARCH_BUTTON, ids.SEARCH_TEXT):
            return query_store("text", access.search_text(text or "", k, wanted), modality), ""
        if trigger == ids.STORE_SEARCH_REQUEST:
            if not request or not request.get("text"):
                return no_update, ""
            return query_store("text", access.search_text(request["text"], k, wanted), modality), ""
        if trigger == ids.STORE_UPLOAD:
            if not upload:
                return no_update, ""
            if upload.get("error"):
                return no_update, upload["error"]
            payload = decode_upload(upload["contents"])
            outcome = access.search_upload(upload["kind"], upload.get("filename") or "upload", payload, k, wanted)
            return query_store(upload["kind"], outcome, modality), ""
        if trigger == ids.SEARCH_MODALITY and previous and previous.get("vector"):
            results = access.search_vector(decode_vector(previous["vector"]), k, wanted)
            return dict(previous, modality=modality, results=results), ""
    except ValueError as error:  # SpaceError and decode errors: the user can fix these
        logger.info("search refused: %s", error)
        return no_update, str(error)
    return no_update, ""


def results_view(query: dict[str, Any] | None) -> Any:
    """The results of the current query, best first, with scores."""
    if not query:
        return html.P("Type a query or drop a file to search.", className="hint")
    if not query["results"]:
        return html.P("No results.", className="hint")
    what = {"text": "text", "image": "image", "audio": "sound"}[query["kind"]]
    heading = html.P([f"{len(query['results'])} nearest to {what} ", html.Q(query["description"])], className="results-heading")
    return html.Div([heading, cards.result_list(query["results"], ids.SEARCH_RESULT_LIST)])


# -- registration ---------------------------------------------------------------------------------

#: Client-side size check of uploads: passes ``{kind, filename, contents}`` or ``{kind, filename, error}``
#: to the server and clears the Upload so the same file can be dropped again.
UPLOAD_CHECK_JS = """
function(imageContents, audioContents, imageName, audioName, config) {
    const noUpdate = window.dash_clientside.no_update;
    const triggered = (window.dash_clientside.callback_context.triggered || []).map(t => t.prop_id);
    let kind = null, contents = null, filename = null;
    if (triggered.some(p => p.startsWith('%(image)s.')) && imageContents) {
        kind = 'image'; contents = imageContents; filename = imageName;
    } else if (triggered.some(p => p.startsWith('%(audio)s.')) && audioContents) {
        kind = 'audio'; contents = audioContents; filename = audioName;
    } else {
        return [noUpdate, noUpdate, noUpdate];
    }
    const comma = contents.indexOf(',');
    const payload = comma >= 0 ? contents.length - comma - 1 : contents.length;
    const bytes = Math.floor(payload * 3 / 4);
    const limit = (config && config.max_upload_bytes) || 20971520;
    if (bytes > limit) {
        const mb = v => (v / 1048576).toFixed(1) + ' MB';
        return [{kind: kind, filename: filename, error: filename + ' is ' + mb(bytes) + '; the upload limit is ' + mb(limit) + ': choose a smaller file'}, null, null];
    }
    return [{kind: kind, filename: filename, contents: contents, at: Date.now()}, null, null];
}
""" % {"image": ids.SEARCH_IMAGE_UPLOAD, "audio": ids.SEARCH_AUDIO_UPLOAD}


def register(app: Dash, access: SpaceAccess, k: int = DEFAULT_K) -> None:
    """Attach the search panel's callbacks to ``app``."""
    app.clientside_callback(
        UPLOAD_CHECK_JS,
        Output(ids.STORE_UPLOAD, "data"),
        Output(ids.SEARCH_IMAGE_UPLOAD, "contents"),
        Output(ids.SEARCH_AUDIO_UPLOAD, "contents"),
        Input(ids.SEARCH_IMAGE_UPLOAD, "contents"),
        Input(ids.SEARCH_AUDIO_UPLOAD, "contents"),
        State(ids.SEARCH_IMAGE_UPLOAD, "filename"),
        State(ids.SEARCH_AUDIO_UPLOAD, "filename"),
        State(ids.STORE_CONFIG, "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.STORE_QUERY, "data"),
        Output(ids.SEARCH_MESSAGE, "children"),
        Input(ids.SEARCH_BUTTON, "n_clicks"),
        Input(ids.SEARCH_TEXT, "n_submit"),
        Input(ids.STORE_SEARCH_REQUEST, "data"),
        Input(ids.STORE_UPLOAD, "data"),
        Input(ids.SEARCH_MODALITY, "value"),
        State(ids.SEARCH_TEXT, "value"),
        State(ids.STORE_QUERY, "data"),
        prevent_initial_call=True,
    )
    def _search(_clicks: int, _submits: int, request: dict | None, upload: dict | None, modality: str | None, text: str | None, previous: dict | None) -> tuple:
        triggers = [prop.split(".")[0] for prop in ctx.triggered_prop_ids]
        return search(access, triggers, text, request, upload, modality, previous, k)

    @app.callback(Output(ids.SEARCH_RESULTS, "children"), Input(ids.STORE_QUERY, "data"))
    def _results(query: dict | None) -> Any:
        return results_view(query)
