"""Callback requests are checked before Dash runs them; a malformed one gets 400, never 500.

Dash trusts the body of ``POST /_dash-update-component``: a body that is not an object,
names an unknown output, lists inputs that are not the callback's, or carries a store value
the page never sends (a selected item that is a list, a map view "4d", a stored query
without its vector) ends in a 500 from inside Dash or a callback. The page never sends
such bodies, so this module refuses them in one place, before any callback runs:

1. **structure**: the body is a JSON object (at most :data:`MAX_DEPTH` levels deep) whose
   ``output`` names a server-side callback of the app, whose ``outputs``, ``inputs`` and
   ``state`` name exactly that callback's components and properties, in order, and whose
   ``changedPropIds`` name only its inputs;
2. **values**: every input and state value has the shape the page sends for that component
   and property (:func:`value_shapes`: e.g. the selected item is an integer or null, the map
   view "2d", "3d" or "aligned", a stored query vector ``D`` float32s in base64, a result record has an
   integer id); pattern-matching ids have theirs too (:func:`id_shapes`).

A refused request gets ``400 {"error": "<one line>"}`` and a log line; nothing runs.
:func:`install` also answers requests for unknown script bundles
(``/_dash-component-suites/../../etc/passwd`` and the like) with 404 instead of Dash's 500.
The app refuses to start if a server callback reads a component property that has no shape
here, so a new callback cannot skip the check.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from dash import Dash
from dash.exceptions import DependencyException
from flask import Response, jsonify, request

from dashboard import ids
from dashboard.access import RECORD_EXTRAS
from dashboard.jobs import MAX_STEPS
from dashboard.density import MAX_LASSO_POINTS
from dashboard.panels.generate import MAX_ADDED_SHOWN, SLOTS, SOURCES
from dashboard.panels.selection import MAX_EVENT_POINTS
from dashboard.state import MODALITY_CHOICES, VIEWS
from embedspace.generator.editing import KEEP_REGIONS

logger = logging.getLogger(__name__)

#: Deepest nesting of lists and objects accepted in a callback body (the page's bodies stay under 10).
MAX_DEPTH = 32
#: Most result records a stored query or neighbour list may hold.
MAX_RESULTS = 1_000
#: Most points a generation overlay may hold (a path has at most MAX_STEPS; arithmetic one).
MAX_CONDITIONS = 4 * MAX_STEPS
#: Largest integer accepted anywhere (item ids are int64).
MAX_INT = 2**63 - 1
WILDCARD = "ALL"

#: A shape checks one value and raises :class:`PayloadError` naming ``where`` when it does not fit.
Shape = Callable[[Any, str], None]


class PayloadError(ValueError):
    """A callback request the page would never send (the message says what is wrong and where)."""


# -- shapes ------------------------------------------------------------------------------------


def nullable(shape: Shape) -> Shape:
    def check(value: Any, where: str) -> None:
        if value is not None:
            shape(value, where)

    return check


def integer(low: int = -MAX_INT, high: int = MAX_INT) -> Shape:
    """An integer (not a boolean) from ``low`` to ``high``."""
    wanted = "a 64-bit integer" if (low, high) == (-MAX_INT, MAX_INT) else f"an integer from {low}" + ("" if high == MAX_INT else f" to {high}")

    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PayloadError(f"{where} must be {wanted}")

    return check


def number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PayloadError(f"{where} must be a finite number")


def text(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string")


def boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise PayloadError(f"{where} must be true or false")


def scalar(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise PayloadError(f"{where} must be a number, a string or null")


def choice(*allowed: str) -> Shape:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str) or value not in allowed:
            raise PayloadError(f"{where} must be one of {', '.join(allowed)}")

    return check


def items(shape: Shape, max_length: int | None = None) -> Shape:
    """A list of values of ``shape`` (at most ``max_length`` of them, when given)."""
    limit = "" if max_length is None else f" of at most {max_length} entries"

    def check(value: Any, where: str) -> None:
        if not isinstance(value, list) or (max_length is not None and len(value) > max_length):
            raise PayloadError(f"{where} must be a list{limit}")
        for index, entry in enumerate(value):
            shape(entry, f"{where}[{index}]")

    return check


def record(required: dict[str, Shape], optional: dict[str, Shape] | None = None) -> Shape:
    """An object with every ``required`` key, and ``optional`` keys of their shape when present (others are ignored)."""
    optional = optional or {}

    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            raise PayloadError(f"{where} must be an object")
        for key, shape in required.items():
            if key not in value:
                raise PayloadError(f"{where} lacks {key!r}")
            shape(value[key], f"{where}.{key}")
        for key, shape in optional.items():
            if key in value:
                shape(value[key], f"{where}.{key}")

    return check


def vector(dim: int) -> Shape:
    """A ``(dim,)`` float32 vector as :func:`dashboard.state.encode_vector` writes it (base64, finite values)."""

    def check(value: Any, where: str) -> None:
        if not isinstance(value, str) or len(value) > 6 * dim + 8:  # base64 of 4 * dim bytes is about 5.3 * dim characters
            raise PayloadError(f"{where} must be a base64 vector of {dim} float32 values")
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError(f"{where} must be a base64 vector of {dim} float32 values") from None
        if len(raw) != 4 * dim or not np.isfinite(np.frombuffer(raw, dtype="<f4")).all():
            raise PayloadError(f"{where} must be a base64 vector of {dim} finite float32 values")

    return check


def upload(value: Any, where: str) -> None:
    """The upload store: ``{kind, filename, contents}`` or ``{kind, filename, error}`` (see panels.search)."""
    record({"kind": choice("image", "audio")}, {"filename": nullable(text), "contents": text, "error": text, "at": nullable(number)})(value, where)
    if "contents" not in value and "error" not in value:
        raise PayloadError(f"{where} must hold 'contents' or 'error'")


def customdata(value: Any, where: str) -> None:
    """Overlay points carry their item id as ``customdata``: an integer, or a list starting with one."""
    if isinstance(value, list):
        if value:
            integer()(value[0], f"{where}[0]")
        return
    integer()(value, where)


def relayout(value: Any, where: str) -> None:
    """A plotly ``relayoutData``: an object of at most 64 keys (axis ranges, drag mode, drawn selections…).

    Only the axis ranges are read (:func:`dashboard.density.relayout_view` ignores values of
    another type); the rest (e.g. ``selections``, a list of objects) is only bounded in size.
    """
    if not isinstance(value, dict) or len(value) > 64:
        raise PayloadError(f"{where} must be an object of at most 64 entries")
    for key, entry in value.items():
        if isinstance(entry, list) and len(entry) > 64:
            raise PayloadError(f"{where}.{key} must be a list of at most 64 entries")


def value_shapes(dim: int) -> dict[tuple[str, str], Shape]:
    """The shape of every ``(component id, property)`` a server callback reads, for a space of ``dim``-D vectors.

    Pattern-matching components are keyed by their id's ``type``.
    """
    item_id = integer()
    count = nullable(integer(0))
    result = record(
        {"id": item_id, "modality": text, "label": text},
        {"score": number, "preview": choice("image", "audio"), **{extra: text for extra in RECORD_EXTRAS}},
    )
    results = items(result, MAX_RESULTS)
    encoded = vector(dim)
    point = record({}, {"curveNumber": integer(0), "pointNumber": integer(0), "customdata": nullable(customdata)})
    event = nullable(record({}, {"points": items(point)}))
    box = record({"x": items(number, 2), "y": items(number, 2)})
    lasso = record({"x": items(number, MAX_LASSO_POINTS), "y": items(number, MAX_LASSO_POINTS)})
    shape = record({}, {"range": box, "lassoPoints": lasso})
    selected = nullable(record({}, {"points": items(point), "range": box, "lassoPoints": lasso}))
    views = choice(*VIEWS)
    return {
        (ids.URL_IN, "search"): nullable(text),
        (ids.MAP_VIEW, "value"): nullable(views),
        (ids.MAP_COLOUR, "value"): nullable(text),
        (ids.MAP_INTERVAL, "n_intervals"): count,
        (ids.MAP_INTERVAL, "interval"): nullable(number),
        (ids.MAP_GRAPH, "clickData"): event,
        (ids.MAP_GRAPH, "hoverData"): event,
        (ids.MAP_GRAPH, "selectedData"): selected,
        (ids.MAP_GRAPH, "relayoutData"): nullable(relayout),
        (ids.SELECTION_CLUSTER, "value"): nullable(integer(-1, 10_000_000)),
        (ids.SELECTION_PREV, "n_clicks"): count,
        (ids.SELECTION_NEXT, "n_clicks"): count,
        (ids.STORE_SELECTION, "data"): nullable(
            record({"dims": views, "page": integer(0)}, {"revision": nullable(integer()), "shape": shape, "cluster": integer(-1, 10_000_000), "ids": items(item_id, MAX_EVENT_POINTS)})
        ),
        (ids.SEARCH_MODALITY, "value"): nullable(choice(*MODALITY_CHOICES)),
        (ids.SEARCH_TEXT, "value"): nullable(text),
        (ids.SEARCH_TEXT, "n_submit"): count,
        (ids.SEARCH_BUTTON, "n_clicks"): count,
        (ids.STORE_SELECTED, "data"): nullable(item_id),
        (ids.STORE_SEARCH_REQUEST, "data"): nullable(record({"text": text})),
        (ids.STORE_UPLOAD, "data"): nullable(upload),
        (ids.STORE_QUERY, "data"): nullable(
            record({"kind": choice("text", "image", "audio"), "description": text, "vector": encoded, "modality": choice(*MODALITY_CHOICES), "results": results})
        ),
        (ids.STORE_NEIGHBORS, "data"): nullable(record({"id": item_id, "label": text, "results": results})),
        (ids.STORE_MAP_READY, "data"): nullable(record({"dims": views, "revision": integer()}, {"placeable": boolean})),
        (ids.STORE_FIGURE_META, "data"): nullable(record({"dims": views, "revision": integer(), "colour": text, "base_traces": integer(0, 10_000)}, {"view": items(number, 4)})),
        (ids.STORE_GENERATE_OVERLAY, "data"): nullable(
            record(
                {},
                {
                    "conditions": items(record({"vector": encoded}, {"label": text}), MAX_CONDITIONS),
                    "added": items(
                        record({"id": item_id, "vector": encoded, "condition_vector": encoded, "condition": text}, {"label": text, "fidelity": nullable(number)}),
                        MAX_ADDED_SHOWN,
                    ),
                },
            )
        ),
        (ids.STORE_SLOTS, "data"): nullable(record({}, {name: nullable(record({"description": text, "vector": encoded})) for name in SLOTS})),
        (ids.STORE_SESSION, "data"): nullable(text),
        (ids.STORE_GENERATE_JOB, "data"): nullable(record({"id": text, "kind": text, "title": text})),
        (ids.STORE_GENERATE_SEEN, "data"): nullable(items(scalar, 2)),
        (ids.GENERATE_SOURCE, "value"): nullable(choice(*SOURCES)),
        (ids.GENERATE_COUNT, "value"): scalar,
        (ids.GENERATE_STEPS, "value"): scalar,
        (ids.GENERATE_SEED, "value"): scalar,
        (ids.GENERATE_TEMPERATURE, "value"): scalar,
        (ids.GENERATE_GUIDANCE, "value"): scalar,
        (ids.GENERATE_BUTTON, "n_clicks"): count,
        (ids.GENERATE_CANCEL, "n_clicks"): count,
        (ids.GENERATE_INTERVAL, "n_intervals"): count,
        (ids.PICK, "n_clicks"): count,
        (ids.SLOT, "n_clicks"): count,
        (ids.ADD_GENERATED, "n_clicks"): count,
        (ids.EDIT_GENERATED, "n_clicks"): count,
        (ids.EDIT_SELECTED, "n_clicks"): count,
        (ids.EDIT_CLEAR, "n_clicks"): count,
        (ids.EDIT_KEEP, "value"): nullable(choice(*KEEP_REGIONS)),
        (ids.STORE_EDIT, "data"): nullable(record({"kind": choice("item", "generated"), "description": text}, {"id": item_id, "job": text, "index": integer(0, 10_000)})),
    }


def id_shapes() -> dict[str, Shape]:
    """The shape of each pattern-matching component id, keyed by its ``type``."""
    return {
        ids.PICK: record({"type": text, "index": integer()}),
        ids.SLOT: record({"type": text, "slot": choice(*SLOTS), "source": choice("selected", "query")}),
        ids.ADD_GENERATED: record({"type": text, "index": integer(0, 10_000)}),
        ids.EDIT_GENERATED: record({"type": text, "index": integer(0, 10_000)}),
    }


# -- the request ---------------------------------------------------------------------------------


def _depth_within(value: Any, limit: int) -> bool:
    """Whether lists and objects in ``value`` nest at most ``limit`` deep (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        children: Iterable[Any] = current.values() if isinstance(current, dict) else current if isinstance(current, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return False
                stack.append((child, depth + 1))
    return True


def _id_key(component_id: Any) -> str:
    """A component id as one comparable string (dict ids as sorted compact JSON, as Dash spells them)."""
    if isinstance(component_id, dict):
        return json.dumps(component_id, sort_keys=True, separators=(",", ":"))
    return str(component_id)


def _declared_id(spelled: str) -> str | dict[str, Any]:
    return json.loads(spelled) if spelled.startswith("{") else spelled


def _property(name: Any) -> str:
    """A property without Dash's ``@<hash>`` suffix of duplicate outputs."""
    return name.split("@", 1)[0] if isinstance(name, str) else ""


def _check_outputs(outputs: Any, declared: Any) -> None:
    expected = declared if isinstance(declared, list) else [declared]
    given = outputs if isinstance(declared, list) else [outputs]
    if not isinstance(outputs, list if isinstance(declared, list) else dict) or len(given) != len(expected):
        raise PayloadError(f"'outputs' must name the callback's {len(expected)} output(s)")
    for index, (entry, output) in enumerate(zip(given, expected)):
        if not isinstance(entry, dict) or _id_key(entry.get("id")) != output.component_id_str() or _property(entry.get("property")) != _property(output.component_property):
            raise PayloadError(f"outputs[{index}] is not the callback's output {output}")


class RequestChecker:
    """Checks callback request bodies against the callbacks of one app (see the module docs).

    Args:
        callbacks: the app's ``callback_map`` (callbacks by their output key; client-side ones,
            which have no Python function, are never run on the server and count as unknown).
        shapes: value shapes by ``(component id or pattern type, property)`` (:func:`value_shapes`).
        pattern_ids: shapes of pattern-matching ids by ``type`` (:func:`id_shapes`).
    """

    def __init__(self, callbacks: dict[str, Any], shapes: dict[tuple[str, str], Shape], pattern_ids: dict[str, Shape]):
        self.callbacks = {output: spec for output, spec in callbacks.items() if "callback" in spec}
        self.shapes = shapes
        self.pattern_ids = pattern_ids

    def unchecked(self) -> list[str]:
        """``id.property`` of every callback input or state that has no shape (should be none)."""
        missing = []
        for spec in self.callbacks.values():
            for dependency in spec["inputs"] + spec["state"]:
                declared = _declared_id(dependency["id"])
                key = (declared["type"] if isinstance(declared, dict) else declared, dependency["property"])
                if key not in self.shapes or (isinstance(declared, dict) and declared.get("type") not in self.pattern_ids):
                    missing.append(f"{dependency['id']}.{dependency['property']}")
        return missing

    def check(self, body: Any) -> None:
        """Raise :class:`PayloadError` unless ``body`` is a request the page could send."""
        if not isinstance(body, dict):
            raise PayloadError("the body must be a JSON object")
        if not _depth_within(body, MAX_DEPTH):
            raise PayloadError(f"the body nests deeper than {MAX_DEPTH} levels")
        output = body.get("output")
        if not isinstance(output, str) or output not in self.callbacks:
            raise PayloadError("'output' names no callback of this app")
        spec = self.callbacks[output]
        _check_outputs(body.get("outputs"), spec["output"])
        names = self._dependencies(body.get("inputs"), spec["inputs"], "inputs")
        self._dependencies(body.get("state", []), spec["state"], "state")
        changed = body.get("changedPropIds", [])
        if not isinstance(changed, list) or not all(isinstance(name, str) for name in changed):
            raise PayloadError("'changedPropIds' must be a list of strings")
        for name in changed:
            component, _, prop = name.rpartition(".")
            try:
                key = _id_key(json.loads(component)) if component.startswith("{") else component
            except ValueError:
                key = None
            if (key, prop) not in names:
                raise PayloadError(f"'changedPropIds' names {name[:80]!r}, not an input of this callback")

    def _dependencies(self, given: Any, declared: list[dict[str, str]], where: str) -> set[tuple[str, str]]:
        """Check the inputs or state of a request; returns their ``(id key, property)`` pairs."""
        if not isinstance(given, list) or len(given) != len(declared):
            raise PayloadError(f"'{where}' must be a list of the callback's {len(declared)} {where}")
        names = set()
        for index, (entry, spec) in enumerate(zip(given, declared)):
            expected = _declared_id(spec["id"])
            place = f"{where}[{index}]"
            if isinstance(expected, dict) and any(value == [WILDCARD] for value in expected.values()):
                if not isinstance(entry, list):
                    raise PayloadError(f"{place} must be a list (a pattern-matching {spec['property']})")
                for position, element in enumerate(entry):
                    names.add(self._dependency(element, expected, spec["property"], f"{place}[{position}]"))
            else:
                names.add(self._dependency(entry, expected, spec["property"], place))
        return names

    def _dependency(self, entry: Any, expected: str | dict[str, Any], prop: str, where: str) -> tuple[str, str]:
        if not isinstance(entry, dict):
            raise PayloadError(f"{where} must be an object with id, property and value")
        component, given_prop = entry.get("id"), entry.get("property")
        if given_prop != prop:
            raise PayloadError(f"{where}.property must be {prop!r}")
        if isinstance(expected, dict):
            if not isinstance(component, dict) or set(component) != set(expected):
                raise PayloadError(f"{where}.id must be an id of type {expected.get('type')!r}")
            for key, value in expected.items():
                if value != [WILDCARD] and component[key] != value:
                    raise PayloadError(f"{where}.id.{key} must be {value!r}")
            self.pattern_ids[expected["type"]](component, f"{where}.id")
            shape = self.shapes[(expected["type"], prop)]
        else:
            if component != expected:
                raise PayloadError(f"{where}.id must be {expected!r}")
            shape = self.shapes[(expected, prop)]
        shape(entry.get("value"), f"{_id_key(component)[:80]}.{prop}")
        return _id_key(component), prop


def install(app: Dash, dim: int) -> None:
    """Check every callback request of ``app`` (call after all callbacks are registered) and answer bad bundle paths with 404.

    Raises:
        RuntimeError: a server callback reads a component property without a shape (a bug in the app).
    """
    checker = RequestChecker(app.callback_map, value_shapes(dim), id_shapes())
    missing = checker.unchecked()
    if missing:
        raise RuntimeError(f"callback inputs without a shape in dashboard.guard: {', '.join(missing)}")
    route = app.config.routes_pathname_prefix + "_dash-update-component"

    @app.server.before_request
    def _check_callback_request() -> tuple[Response, int] | None:
        if request.path != route or request.method != "POST":
            return None
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # nested deeper than the JSON parser goes
            body = None
        try:
            if body is None:
                raise PayloadError("the body must be JSON (Content-Type: application/json)")
            checker.check(body)
        except PayloadError as error:
            logger.warning("refused a callback request from %s: %s", request.remote_addr, error)
            return jsonify(error=str(error)), 400
        return None

    @app.server.errorhandler(DependencyException)
    def _unknown_bundle(_error: DependencyException) -> tuple[Response, int]:
        return jsonify(error="no such script bundle"), 404

