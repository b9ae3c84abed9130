"""The generation panel: images from a picked point, a search, a path between two points or A − B + C.

Where to generate from (:data:`SOURCES`): the selected item, the current search query
(text, image or sound, from the search panel), the slerp path from slot A to slot B, or
the point A − B + C. The slots are filled with the "← selected" / "← query" buttons.

Editing: "edit the selected image" (an image item) or "edit" under a generated image makes
it the image to edit (:data:`~dashboard.ids.STORE_EDIT`); Generate then keeps the chosen
region's tokens and redraws the rest toward the chosen point, token by token (an edited
image can be edited again), until "stop editing".

Generation runs as a server-side job (:mod:`dashboard.jobs`) under this page's session
id (:data:`~dashboard.ids.STORE_SESSION`, a new one per page load): the Generate button
submits it, a ``dcc.Interval`` polls it only while it runs (the images fill in row by row
as tokens are sampled), and Cancel stops it at the next token. Images stay on the server;
the page gets PNG data URIs. "Add to space" encodes an image into the space (recording
that it was generated, its condition and their similarity) and the map shows where it
landed next to its condition.

:data:`~dashboard.ids.STORE_GENERATE_OVERLAY`, which the map panel draws::

    {"conditions": [{"vector": base64 float32 (D,), "label": str}, ...],   # generated from, in order
     "added": [{"id": int, "label": str, "vector": base64, "condition_vector": base64,
                "condition": str, "fidelity": float | None}, ...]}       # images added to the space
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import ids
from dashboard.access import SpaceAccess
from dashboard.generator_source import GeneratorSource
from dashboard.jobs import (
    GUIDANCE_RANGE,
    MAX_IMAGES,
    MAX_SEED,
    MAX_STEPS,
    MIN_STEPS,
    TEMPERATURE_RANGE,
    JobManager,
    JobRequest,
    JobView,
    EditSource,
    Settings,
    arithmetic_request,
    edit_request,
    parse_settings,
    path_request,
    point_request,
)
from dashboard.state import decode_vector, encode_vector
from embedspace.generator.editing import KEEP_REGIONS
from embedspace.provenance import GENERATED_KEY

logger = logging.getLogger(__name__)

POLL_MS = 300
SOURCES = {"selected": "selected point", "query": "search query", "path": "path A → B", "arithmetic": "A − B + C"}
SLOTS = ("a", "b", "c")
#: Most added images drawn on the map (the oldest are dropped from the overlay, not from the space).
MAX_ADDED_SHOWN = 32
DEFAULTS = Settings()
NOT_EDITING = "not editing: press “edit the selected image” or “edit” under a generated image"


def layout(source: GeneratorSource) -> html.Div:
    """Source choice, slots A/B/C, sampling controls, Generate/Cancel, progress and the images."""

    def number(id_: str, label: str, value: float, low: float, high: float, step: float, title: str) -> html.Label:
        return html.Label([label, dcc.Input(id=id_, type="number", value=value, min=low, max=high, step=step, className="generate-number", debounce=False)], title=title)

    def slot(name: str) -> html.Div:
        return html.Div(
            [
                html.B(name.upper(), className="slot-name"),
                html.Span("empty", id=ids.slot_label(name), className="slot-label"),
                html.Button("← selected", id=ids.slot(name, "selected"), n_clicks=0, className="slot-button", title=f"put the selected item into {name.upper()}"),
                html.Button("← query", id=ids.slot(name, "query"), n_clicks=0, className="slot-button", title=f"put the search query into {name.upper()}"),
            ],
            className="slot",
        )

    return html.Div(
        [
            html.H3("Generate"),
            html.P(source.describe(), id=ids.GENERATE_HINT, className="hint"),
            dcc.RadioItems(id=ids.GENERATE_SOURCE, options=[{"label": label, "value": value} for value, label in SOURCES.items()], value="selected", inline=True, className="generate-source"),
            html.Div([slot(name) for name in SLOTS], className="slots"),
            html.Div(
                [
                    html.B("Edit", className="slot-name"),
                    html.Span(NOT_EDITING, id=ids.EDIT_LABEL, className="edit-label"),
                    html.Button("edit the selected image", id=ids.EDIT_SELECTED, n_clicks=0, className="slot-button", title="redraw part of the selected image toward the point chosen above"),
                    html.Label(["keep the ", dcc.RadioItems(id=ids.EDIT_KEEP, options=list(KEEP_REGIONS), value="top", inline=True, className="keep-choice")], className="keep-label", title="the region kept token for token; the rest is redrawn"),
                    html.Button("stop editing", id=ids.EDIT_CLEAR, n_clicks=0, className="slot-button"),
                ],
                className="edit-row",
            ),
            dcc.Store(id=ids.STORE_EDIT),
            html.Div(
                [
                    number(ids.GENERATE_COUNT, "images ", DEFAULTS.count, 1, MAX_IMAGES, 1, f"images per point, 1–{MAX_IMAGES}"),
                    number(ids.GENERATE_STEPS, "path steps ", DEFAULTS.steps, MIN_STEPS, MAX_STEPS, 1, f"points along the path A → B, {MIN_STEPS}–{MAX_STEPS}"),
                    number(ids.GENERATE_SEED, "seed ", DEFAULTS.seed, 0, MAX_SEED, 1, "the same seed and settings give the same images"),
                    number(ids.GENERATE_TEMPERATURE, "temperature ", DEFAULTS.temperature, *TEMPERATURE_RANGE, 0.1, "0 = always the likeliest token, 1 = plain sampling"),
                    number(ids.GENERATE_GUIDANCE, "guidance ", DEFAULTS.guidance, *GUIDANCE_RANGE, 0.5, "classifier-free guidance: 1 = off, 2–5 typical"),
                ],
                className="generate-controls",
            ),
            html.Div(
                [
                    html.Button("Generate", id=ids.GENERATE_BUTTON, n_clicks=0, disabled=source.problem() is not None),
                    html.Button("Cancel", id=ids.GENERATE_CANCEL, n_clicks=0, disabled=True),
                    html.Span(id=ids.GENERATE_STATUS, className="generate-status", role="status"),
                    html.Progress(id=ids.GENERATE_PROGRESS, value="0", max="100", style={"display": "none"}),
                ],
                className="generate-row",
            ),
            html.Div(id=ids.GENERATE_MESSAGE, className="message", role="alert"),
            html.Div(id=ids.GENERATE_IMAGES),
            html.Div(id=ids.GENERATE_ADDED, className="generate-added"),
            dcc.Interval(id=ids.GENERATE_INTERVAL, interval=POLL_MS, disabled=True),
            dcc.Store(id=ids.STORE_SESSION, data=uuid.uuid4().hex, storage_type="memory"),
            dcc.Store(id=ids.STORE_SLOTS, data={name: None for name in SLOTS}),
            dcc.Store(id=ids.STORE_GENERATE_JOB),
            dcc.Store(id=ids.STORE_GENERATE_SEEN),
            dcc.Store(id=ids.STORE_GENERATE_OVERLAY),
        ],
        className="panel generate-panel",
    )


# -- callback logic (plain functions, tested without a browser) -----------------------------------


def point_entry(access: SpaceAccess, source: str, selected: int | None, query: dict[str, Any] | None) -> dict[str, Any]:
    """``{"description", "vector"}`` of the selected item (``source="selected"``) or the search query (``"query"``).

    Raises:
        ValueError: nothing is selected / no search has been made (the message says what to do).
    """
    if source == "selected":
        if selected is None:
            raise ValueError("no point is selected: click a point on the map (or a result) first")
        label = access.item(selected)["label"]
        return {"description": label, "vector": encode_vector(access.item_vector(selected))}
    if source == "query":
        if not query or not query.get("vector"):
            raise ValueError("there is no search query: search with text, an image or a sound first")
        return {"description": query.get("description", "query"), "vector": query["vector"]}
    raise ValueError(f"unknown point source {source!r}; use 'selected' or 'query'")


def set_slot(access: SpaceAccess, slots: dict[str, Any] | None, name: str, source: str, selected: int | None, query: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The slots with ``name`` set from the selection or the query, and a message ("" when all is well)."""
    slots = dict(slots or {key: None for key in SLOTS})
    try:
        slots[name] = point_entry(access, source, selected, query)
    except ValueError as error:
        return slots, str(error)
    return slots, ""


def slot_text(entry: dict[str, Any] | None) -> str:
    return "empty" if not entry else entry["description"]


def _slot(slots: dict[str, Any] | None, name: str, purpose: str) -> dict[str, Any]:
    entry = (slots or {}).get(name)
    if not entry:
        raise ValueError(f"slot {name.upper()} is empty: select a point or search, then press “← selected” or “← query” next to {name.upper()} ({purpose})")
    return entry


def build_request(
    access: SpaceAccess,
    source: str | None,
    settings: Settings,
    selected: int | None,
    query: dict[str, Any] | None,
    slots: dict[str, Any] | None,
) -> JobRequest:
    """The job the controls ask for.

    Raises:
        ValueError: a point it needs is missing (the message says which and how to pick it).
    """
    if source in ("selected", "query"):
        entry = point_entry(access, source, selected, query)
        return point_request(decode_vector(entry["vector"]), entry["description"], settings)
    if source == "path":
        a, b = (_slot(slots, name, "the ends of the path") for name in ("a", "b"))
        return path_request(decode_vector(a["vector"]), decode_vector(b["vector"]), a["description"], b["description"], settings)
    if source == "arithmetic":
        a, b, c = (_slot(slots, name, "A − B + C") for name in SLOTS)
        vectors = tuple(decode_vector(entry["vector"]) for entry in (a, b, c))
        return arithmetic_request(vectors, (a["description"], b["description"], c["description"]), settings)
    raise ValueError(f"choose where to generate from: one of {', '.join(SOURCES.values())}")


def choose_edit(access: SpaceAccess, trigger: Any, selected: int | None, job: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    """The edit store after "edit the selected image", an image's "edit" button or "stop editing": (store, message)."""
    if trigger == ids.EDIT_CLEAR:
        return None, ""
    if trigger == ids.EDIT_SELECTED:
        if selected is None:
            return no_update, "no image is selected: click an image on the map (or a result) first"
        item = access.item(selected)
        if item["modality"] != "image":
            return no_update, f"the selected item is a {item['modality']} item: select an image to edit"
        return {"kind": "item", "id": int(selected), "description": f"item {int(selected)} ({item['label']})"}, ""
    if isinstance(trigger, dict) and trigger.get("type") == ids.EDIT_GENERATED and job:
        index = int(trigger["index"])
        return {"kind": "generated", "job": job["id"], "index": index, "description": f"image {index + 1} of {job.get('title', 'the last job')}"}, ""
    return no_update, ""


def edit_text(edit: dict[str, Any] | None) -> str:
    """What the edit row says: the image being edited, or how to start an edit."""
    return NOT_EDITING if not edit else f"editing {edit['description']}: Generate redraws it toward the point chosen above"


def edit_source(access: SpaceAccess, jobs: JobManager, session: str | None, edit: dict[str, Any], keep: str | None) -> EditSource:
    """The image an edit store names, with the region to keep.

    Raises:
        ValueError: the item is gone or not an image, or the generated image is no longer held (the message says what to do).
    """
    if edit["kind"] == "item":
        image = access.item_image(int(edit["id"]))
    else:
        image = jobs.image(session, edit["job"], int(edit["index"]))
    return EditSource(image, edit["description"], keep or "top")


def start(
    access: SpaceAccess,
    jobs: JobManager,
    session: str | None,
    source: str | None,
    values: tuple[Any, Any, Any, Any, Any],
    selected: int | None,
    query: dict[str, Any] | None,
    slots: dict[str, Any] | None,
    overlay: dict[str, Any] | None,
    edit: dict[str, Any] | None = None,
    keep: str | None = None,
) -> tuple[dict[str, Any] | Any, dict[str, Any] | Any, str]:
    """Submit the job the controls ask for: (job store, overlay store, message).

    ``values`` are the inputs (images, steps, seed, temperature, guidance). The overlay's
    conditions become the job's points (drawn on the map while the images form); images
    added earlier stay on it. With an ``edit`` store the job redraws that image toward the
    chosen point (one point: the selected item, the query or A − B + C), keeping ``keep``.
    """
    try:
        settings = parse_settings(*values)
        request = build_request(access, source, settings, selected, query, slots)
        if edit:
            if request.kind == "path":
                raise ValueError("an edit redraws toward one point: choose the selected point, the search query or A − B + C")
            point = request.conditions[0]
            request = edit_request(edit_source(access, jobs, session, edit, keep), point.vector, point.description, settings)
        job = jobs.submit(session or "", request)
    except ValueError as error:
        logger.info("generation refused: %s", error)
        return no_update, no_update, str(error)
    conditions = [{"vector": encode_vector(condition.vector), "label": condition.description} for condition in request.conditions]
    new_overlay = {"conditions": conditions, "added": (overlay or {}).get("added", [])}
    return {"id": job.id, "kind": request.kind, "title": request.title}, new_overlay, ""


def images_view(view: JobView | None) -> Any:
    """The job's images: a strip for a path, a grid otherwise; "add to space" under each finished one."""
    if view is None:
        return html.P("Pick where to generate from and press Generate.", className="hint")
    figures = []
    for index, slot in enumerate(view.slots):
        if slot.uri:
            picture: Any = html.Img(src=slot.uri, alt=slot.description, title=slot.description, className="generated-image" + ("" if slot.finished else " partial"))
        else:
            picture = html.Div(className="generated-image pending", title="waiting")
        caption: list[Any] = [html.Span(slot.caption, className="caption")]
        if slot.added is not None:
            caption.append(html.Span(f"in the space as item {slot.added}", className="added-note"))
        elif slot.finished:
            caption.append(html.Button("add to space", id=ids.add_generated(index), n_clicks=0, className="add-button", title="encode this image and add it to the space"))
        if slot.finished:
            caption.append(html.Button("edit", id=ids.edit_generated(index), n_clicks=0, className="edit-button", title="redraw part of this image toward a new point"))
        figures.append(html.Figure([picture, html.Figcaption(caption)], className="generated", **{"data-index": str(index)}))
    count = len(view.slots)
    heading = html.P([f"{count} image{'s' if count != 1 else ''} from ", html.Q(view.title)], className="generate-title")
    return html.Div([heading, html.Div(figures, className="strip" if view.kind == "path" else "gallery")])


def status_view(view: JobView | None) -> tuple[str, str, dict[str, str], bool, bool]:
    """Status text, progress value (0–100), progress style, interval disabled, cancel disabled."""
    if view is None:
        return "", "0", {"display": "none"}, True, True
    percent = f"{100 * view.progress:.0f}"
    if view.running:
        return f"{view.message} · {percent}%", percent, {}, False, False
    return view.message, percent, {"display": "none"}, True, True


def poll(jobs: JobManager, session: str | None, seen: list | None) -> tuple[Any, ...]:
    """Outputs of a poll: images, status text, progress value and style, interval disabled, cancel disabled, seen.

    The images are resent only when the job changed since the last poll (``seen``).
    """
    view = jobs.view(session)
    status = status_view(view)
    current = [view.id, view.version] if view is not None else None
    if current is not None and current == seen:
        return (no_update,) + status + (no_update,)
    return (images_view(view),) + status + (current,)


def added_view(overlay: dict[str, Any] | None) -> Any:
    """Where the images added to the space landed: item id, condition and their similarity."""
    added = (overlay or {}).get("added") or []
    if not added:
        return None
    rows = []
    for entry in reversed(added):
        fidelity = entry.get("fidelity")
        similarity = f"similarity {fidelity:.3f}" if fidelity is not None else "similarity unknown"
        rows.append(html.Li([html.B(f"item {entry['id']}"), " from ", html.Q(entry["condition"]), f" · {similarity} to its condition"], **{"data-item": str(entry["id"])}))
    legend = "On the map: added images are squares, linked to the point they were generated from (a star); click one to see its neighbours."
    return html.Div([html.P(legend, className="hint"), html.Ul(rows, className="added-list")])


def add_to_space(
    access: SpaceAccess,
    jobs: JobManager,
    session: str | None,
    job: dict[str, Any] | None,
    index: int,
    overlay: dict[str, Any] | None,
) -> tuple[dict[str, Any] | Any, str]:
    """Encode image ``index`` of the session's job into the space: (new overlay store, message).

    The image keeps its condition, so the item records ``generated``, ``condition`` and
    ``fidelity``; the overlay gains the item (drawn on the map beside its condition).
    Adding the same image twice adds it once.
    """
    if not job:
        return no_update, "nothing to add: generate some images first"
    view = jobs.view(session)
    if view is not None and view.id == job["id"] and 0 <= index < len(view.slots) and view.slots[index].added is not None:
        return no_update, ""
    try:
        image = jobs.image(session, job["id"], index)
        condition = image.info.get(GENERATED_KEY, {})
        description = str(condition.get("condition", job.get("title", "")))
        record = access.add_generated(image, f"generated: {description}")
    except ValueError as error:
        return no_update, str(error)
    jobs.mark_added(session, job["id"], index, record["id"])
    fidelity = record.get("fidelity")
    entry = {
        "id": record["id"],
        "label": f"generated from {description}" + (f" · similarity {fidelity:.3f}" if fidelity is not None else ""),
        "vector": encode_vector(record["vector"]),
        "condition_vector": encode_vector(condition["vector"]) if "vector" in condition else encode_vector(record["vector"]),
        "condition": description,
        "fidelity": fidelity,
    }
    overlay = dict(overlay or {"conditions": []})
    overlay["added"] = (list(overlay.get("added") or []) + [entry])[-MAX_ADDED_SHOWN:]
    return overlay, ""


# -- registration ---------------------------------------------------------------------------------


def register(app: Dash, access: SpaceAccess, jobs: JobManager) -> None:
    """Attach the generation panel's callbacks to ``app``."""

    @app.callback(
        Output(ids.STORE_SLOTS, "data"),
        Output(ids.GENERATE_MESSAGE, "children", allow_duplicate=True),
        Input({"type": ids.SLOT, "slot": ALL, "source": ALL}, "n_clicks"),
        State(ids.STORE_SELECTED, "data"),
        State(ids.STORE_QUERY, "data"),
        State(ids.STORE_SLOTS, "data"),
        prevent_initial_call=True,
    )
    def _slot(_clicks: list, selected: int | None, query: dict | None, slots: dict | None) -> tuple:
        trigger = ctx.triggered_id
        if not trigger or not (ctx.triggered and ctx.triggered[0]["value"]):
            return no_update, no_update
        return set_slot(access, slots, trigger["slot"], trigger["source"], selected, query)

    @app.callback(
        *(Output(ids.slot_label(name), "children") for name in SLOTS),
        Input(ids.STORE_SLOTS, "data"),
    )
    def _slot_labels(slots: dict | None) -> tuple:
        return tuple(slot_text((slots or {}).get(name)) for name in SLOTS)

    @app.callback(
        Output(ids.STORE_GENERATE_JOB, "data"),
        Output(ids.STORE_GENERATE_OVERLAY, "data"),
        Output(ids.GENERATE_MESSAGE, "children"),
        Input(ids.GENERATE_BUTTON, "n_clicks"),
        State(ids.STORE_SESSION, "data"),
        State(ids.GENERATE_SOURCE, "value"),
        State(ids.GENERATE_COUNT, "value"),
        State(ids.GENERATE_STEPS, "value"),
        State(ids.GENERATE_SEED, "value"),
        State(ids.GENERATE_TEMPERATURE, "value"),
        State(ids.GENERATE_GUIDANCE, "value"),
        State(ids.STORE_SELECTED, "data"),
        State(ids.STORE_QUERY, "data"),
        State(ids.STORE_SLOTS, "data"),
        State(ids.STORE_GENERATE_OVERLAY, "data"),
        State(ids.STORE_EDIT, "data"),
        State(ids.EDIT_KEEP, "value"),
        prevent_initial_call=True,
    )
    def _start(_clicks: int, session: str | None, source: str | None, count: Any, steps: Any, seed: Any, temperature: Any, guidance: Any,
               selected: int | None, query: dict | None, slots: dict | None, overlay: dict | None, edit: dict | None, keep: str | None) -> tuple:
        return start(access, jobs, session, source, (count, steps, seed, temperature, guidance), selected, query, slots, overlay, edit, keep)

    @app.callback(
        Output(ids.STORE_EDIT, "data"),
        Output(ids.GENERATE_MESSAGE, "children", allow_duplicate=True),
        Input(ids.EDIT_SELECTED, "n_clicks"),
        Input(ids.EDIT_CLEAR, "n_clicks"),
        Input({"type": ids.EDIT_GENERATED, "index": ALL}, "n_clicks"),
        State(ids.STORE_SELECTED, "data"),
        State(ids.STORE_GENERATE_JOB, "data"),
        prevent_initial_call=True,
    )
    def _edit(_selected_clicks: int | None, _clear_clicks: int | None, _image_clicks: list, selected: int | None, job: dict | None) -> tuple:
        if not (ctx.triggered and ctx.triggered[0]["value"]):
            return no_update, no_update
        return choose_edit(access, ctx.triggered_id, selected, job)

    @app.callback(Output(ids.EDIT_LABEL, "children"), Input(ids.STORE_EDIT, "data"))
    def _edit_label(edit: dict | None) -> str:
        return edit_text(edit)

    @app.callback(
        Output(ids.GENERATE_IMAGES, "children"),
        Output(ids.GENERATE_STATUS, "children"),
        Output(ids.GENERATE_PROGRESS, "value"),
        Output(ids.GENERATE_PROGRESS, "style"),
        Output(ids.GENERATE_INTERVAL, "disabled"),
        Output(ids.GENERATE_CANCEL, "disabled"),
        Output(ids.STORE_GENERATE_SEEN, "data"),
        Input(ids.GENERATE_INTERVAL, "n_intervals"),
        Input(ids.STORE_GENERATE_JOB, "data"),
        State(ids.STORE_SESSION, "data"),
        State(ids.STORE_GENERATE_SEEN, "data"),
        prevent_initial_call=True,
    )
    def _poll(_ticks: int | None, _job: dict | None, session: str | None, seen: list | None) -> tuple:
        return poll(jobs, session, seen)

    @app.callback(
        Output(ids.GENERATE_STATUS, "children", allow_duplicate=True),
        Input(ids.GENERATE_CANCEL, "n_clicks"),
        State(ids.STORE_SESSION, "data"),
        prevent_initial_call=True,
    )
    def _cancel(clicks: int | None, session: str | None) -> Any:
        if not clicks:
            return no_update
        return "cancelling…" if jobs.cancel(session) else no_update

    @app.callback(
        Output(ids.STORE_GENERATE_OVERLAY, "data", allow_duplicate=True),
        Output(ids.GENERATE_MESSAGE, "children", allow_duplicate=True),
        Output(ids.GENERATE_IMAGES, "children", allow_duplicate=True),
        Input({"type": ids.ADD_GENERATED, "index": ALL}, "n_clicks"),
        State(ids.STORE_SESSION, "data"),
        State(ids.STORE_GENERATE_JOB, "data"),
        State(ids.STORE_GENERATE_OVERLAY, "data"),
        prevent_initial_call=True,
    )
    def _add(_clicks: list, session: str | None, job: dict | None, overlay: dict | None) -> tuple:
        trigger = ctx.triggered_id
        if not trigger or not (ctx.triggered and ctx.triggered[0]["value"]):
            return no_update, no_update, no_update
        new_overlay, message = add_to_space(access, jobs, session, job, int(trigger["index"]), overlay)
        images = images_view(jobs.view(session)) if new_overlay is not no_update else no_update
        return new_overlay, message, images

    @app.callback(Output(ids.GENERATE_ADDED, "children"), Input(ids.STORE_GENERATE_OVERLAY, "data"))
    def _added(overlay: dict | None) -> Any:
        return added_view(overlay)
