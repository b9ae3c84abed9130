"""The web app under abuse: malformed callback bodies, store values the page never sends, traversal paths, bad ids.

:func:`abuse_cases` lists the crafted requests as ``(name, method, path, body)`` for any
running dashboard (the standing reliability campaign can import it); the name says what
is expected: ``malformed …`` and ``crafted …`` requests get 400, ``odd …`` ones are
well-formed but unusual (an unknown item, a broken upload) and get an ordinary answer, and
``path …`` requests get no file from outside the space. None may get a 5xx, and the app
must keep serving. The README's way of serving (``embedspace serve data/spaces/emoji``, a
path relative to the working directory) runs as a real process.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
import soundfile

from dashboard import create_app, ids
from dashboard.access import servable_file
from dashboard.state import encode_vector
from embedspace import Space

UPDATE = "/_dash-update-component"
#: Bytes that must never appear in an answer (``/etc/passwd``, the space's manifest, the app's own source).
LEAKS = (b"root:x:0:0", b"format_version", b"def create_app")

Case = tuple[str, str, str, Any]


# -- building callback bodies the way the page does ----------------------------------------------


def find_callback(dependencies: list[dict], component: str, prop: str) -> dict:
    """The callback (from ``/_dash-dependencies``) whose first input is ``component.prop`` (a pattern id by its type)."""
    for dependency in dependencies:
        first = dependency["inputs"][0]
        spelled = first["id"]
        name = json.loads(spelled)["type"] if spelled.startswith("{") else spelled
        if name == component and first["property"] == prop:
            return dependency
    raise KeyError(f"no callback starts from {component}.{prop}")


def _output(part: str) -> dict:
    component, prop = part.rsplit(".", 1)
    return {"id": json.loads(component) if component.startswith("{") else component, "property": prop}


def callback_body(dependency: dict, values: dict[tuple[str, str], Any] | None = None, changed: list[str] | None = None) -> dict:
    """A ``/_dash-update-component`` body for ``dependency`` as the page builds it.

    ``values`` maps ``(component id, property)`` to the value sent (None when absent); a
    pattern-matching input is keyed by its id's type and takes the list of ``{id, property,
    value}`` entries. ``changed`` defaults to the first input.
    """
    values = values or {}

    def entries(specs: list[dict]) -> list[Any]:
        sent = []
        for spec in specs:
            if spec["id"].startswith("{"):
                sent.append(values.get((json.loads(spec["id"])["type"], spec["property"]), []))
            else:
                sent.append({"id": spec["id"], "property": spec["property"], "value": values.get((spec["id"], spec["property"]))})
        return sent

    inputs = entries(dependency["inputs"])
    if changed is None:
        first = inputs[0]
        if isinstance(first, dict):
            changed = [f"{first['id']}.{first['property']}"]
        else:
            changed = [f"{json.dumps(entry['id'], sort_keys=True, separators=(',', ':'))}.{entry['property']}" for entry in first]
    key = dependency["output"]
    outputs: Any = [_output(part) for part in key[2:-2].split("...")] if key.startswith("..") else _output(key)
    return {"output": key, "outputs": outputs, "inputs": inputs, "state": entries(dependency["state"]), "changedPropIds": changed}


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def abuse_cases(dependencies: list[dict], items: dict[str, int]) -> list[Case]:
    """Crafted requests for a running dashboard: ``(name, method, path, body)``.

    ``dependencies`` is the app's ``GET /_dash-dependencies``; ``items`` names ids of its space:
    ``image`` (added from a file), ``audio``, ``text`` and ``dim`` (the vector dimension).
    ``body`` is None (no body), ``bytes`` (sent as ``application/json``), ``str`` (sent as
    ``text/plain``) or a value sent as JSON.
    """
    dim = items["dim"]
    good_vector = encode_vector(np.ones(dim, np.float32) / np.sqrt(dim))
    record = {"id": items["text"], "modality": "text", "label": "cat", "score": 0.9}
    query = {"kind": "text", "description": "cat", "vector": good_vector, "modality": "all", "results": [record]}
    meta = {"dims": "2d", "revision": 1, "colour": "modality", "base_traces": 3}
    restore = find_callback(dependencies, ids.URL_IN, "search")
    write_url = find_callback(dependencies, ids.MAP_VIEW, "value")
    poll = find_callback(dependencies, ids.MAP_INTERVAL, "n_intervals")
    figure = find_callback(dependencies, ids.STORE_MAP_READY, "data")
    click = find_callback(dependencies, ids.MAP_GRAPH, "clickData")
    hover = find_callback(dependencies, ids.MAP_GRAPH, "hoverData")
    selection = find_callback(dependencies, ids.MAP_GRAPH, "selectedData")
    search = find_callback(dependencies, ids.SEARCH_BUTTON, "n_clicks")
    results = find_callback(dependencies, ids.STORE_QUERY, "data")
    neighbours = find_callback(dependencies, ids.STORE_SELECTED, "data")
    pick = find_callback(dependencies, ids.PICK, "n_clicks")
    slot = find_callback(dependencies, ids.SLOT, "n_clicks")
    slot_labels = find_callback(dependencies, ids.STORE_SLOTS, "data")
    start = find_callback(dependencies, ids.GENERATE_BUTTON, "n_clicks")
    generate_poll = find_callback(dependencies, ids.GENERATE_INTERVAL, "n_intervals")
    add = find_callback(dependencies, ids.ADD_GENERATED, "n_clicks")
    added = find_callback(dependencies, ids.STORE_GENERATE_OVERLAY, "data")
    upload_check = find_callback(dependencies, ids.SEARCH_IMAGE_UPLOAD, "contents")

    def post(name: str, body: Any) -> Case:
        return (name, "POST", UPDATE, body)

    def call(name: str, dependency: dict, values: dict[tuple[str, str], Any], changed: list[str] | None = None) -> Case:
        return post(name, callback_body(dependency, values, changed))

    def with_(body: dict, **changes: Any) -> dict:
        return {**body, **changes}

    def upload(value: Any) -> dict:
        return callback_body(search, {(ids.STORE_UPLOAD, "data"): value}, changed=[f"{ids.STORE_UPLOAD}.data"])

    def pick_entries(index: Any, **extra: Any) -> tuple[list, list[str]]:
        component = {"type": ids.PICK, "index": index, **extra}
        spelled = json.dumps(component, sort_keys=True, separators=(",", ":"))
        return [{"id": component, "property": "n_clicks", "value": 1}], [f"{spelled}.n_clicks"]

    def pattern(dependency: dict, kind: str, component: dict, values: dict[tuple[str, str], Any] | None = None) -> dict:
        spelled = json.dumps(component, sort_keys=True, separators=(",", ":"))
        clicked = {(kind, "n_clicks"): [{"id": component, "property": "n_clicks", "value": 1}], **(values or {})}
        return callback_body(dependency, clicked, changed=[f"{spelled}.n_clicks"])

    polled = callback_body(poll, {(ids.MAP_VIEW, "value"): "2d"})
    neighbour_body = callback_body(neighbours, {(ids.STORE_SELECTED, "data"): items["text"]})
    cases: list[Case] = [
        # -- malformed bodies ----------------------------------------------------------------
        post("malformed body: empty object", {}),
        post("malformed body: a list", []),
        post("malformed body: null", b"null"),
        post("malformed body: a string", b'"text"'),
        post("malformed body: a number", b"42"),
        post("malformed body: invalid JSON", b'{"output": '),
        post("malformed body: 100k-deep nesting", b"[" * 100_000 + b"]" * 100_000),
        post("malformed body: 40-deep nesting in a store value", callback_body(neighbours, {(ids.STORE_SELECTED, "data"): nested(40)})),
        post("malformed body: sent as text/plain", json.dumps(polled)),
        post("malformed output: unknown", with_(polled, output="nowhere.children")),
        post("malformed output: the client-side upload check", callback_body(upload_check)),
        post("malformed output: a 5 MB string", with_(polled, output="x" * 5_000_000)),
        post("malformed output: a number", with_(polled, output=42)),
        post("malformed outputs: missing", {key: value for key, value in polled.items() if key != "outputs"}),
        post("malformed outputs: another component", with_(neighbour_body, outputs=[{"id": ids.SEARCH_RESULTS, "property": "children"}, {"id": ids.STORE_NEIGHBORS, "property": "data"}])),
        post("malformed outputs: one too few", with_(polled, outputs=polled["outputs"][:2])),
        post("malformed outputs: a list for a single output", with_(callback_body(results), outputs=[{"id": ids.SEARCH_RESULTS, "property": "children"}])),
        post("malformed inputs: a string", with_(polled, inputs="x")),
        post("malformed inputs: missing", {key: value for key, value in polled.items() if key != "inputs"}),
        post("malformed inputs: empty", with_(polled, inputs=[])),
        post("malformed inputs: one too few", with_(polled, inputs=polled["inputs"][:1])),
        post("malformed inputs: one too many", with_(polled, inputs=polled["inputs"] + polled["inputs"][:1])),
        post("malformed inputs: another component", with_(polled, inputs=[{"id": ids.SEARCH_BUTTON, "property": "n_clicks", "value": 1}, polled["inputs"][1]])),
        post("malformed inputs: another property", with_(polled, inputs=[{"id": ids.MAP_INTERVAL, "property": "disabled", "value": 1}, polled["inputs"][1]])),
        post("malformed inputs: an entry that is a number", with_(polled, inputs=[7, polled["inputs"][1]])),
        post("malformed state: missing", {key: value for key, value in polled.items() if key != "state"}),
        post("malformed state: swapped", with_(polled, state=polled["state"][::-1])),
        post("malformed changedPropIds: a string", with_(polled, changedPropIds="map-interval.n_intervals")),
        post("malformed changedPropIds: names no input", with_(polled, changedPropIds=["store-selected.data"])),
        post("malformed changedPropIds: a broken pattern id", with_(callback_body(pick), changedPropIds=['{"index":"x".n_clicks'])),
        post("malformed pattern input: not a list", with_(callback_body(pick), inputs=[{"id": {"type": ids.PICK, "index": 1}, "property": "n_clicks", "value": 1}])),
        post("malformed pattern id: index a string", with_(callback_body(pick), inputs=[pick_entries("x")[0]], changedPropIds=pick_entries("x")[1])),
        post("malformed pattern id: an extra key", with_(callback_body(pick), inputs=[pick_entries(1, extra="y")[0]], changedPropIds=pick_entries(1, extra="y")[1])),
        post("malformed pattern id: slot D", pattern(slot, ids.SLOT, {"type": ids.SLOT, "slot": "d", "source": "selected"})),
        post("malformed pattern id: slot source evil", pattern(slot, ids.SLOT, {"type": ids.SLOT, "slot": "a", "source": "evil"})),
        post("malformed pattern id: add image -1", pattern(add, ids.ADD_GENERATED, {"type": ids.ADD_GENERATED, "index": -1})),
        # -- crafted store and component values -----------------------------------------------
        call("crafted store-selected: a list", neighbours, {(ids.STORE_SELECTED, "data"): [items["text"]]}),
        call("crafted store-selected: an object", neighbours, {(ids.STORE_SELECTED, "data"): {"id": items["text"]}}),
        call("crafted store-selected: a string", neighbours, {(ids.STORE_SELECTED, "data"): str(items["text"])}),
        call("crafted store-selected: a fraction", neighbours, {(ids.STORE_SELECTED, "data"): 1.5}),
        call("crafted store-selected: true", neighbours, {(ids.STORE_SELECTED, "data"): True}),
        call("crafted store-selected: 2**64", neighbours, {(ids.STORE_SELECTED, "data"): 2**64}),
        call("odd store-selected: an unknown item", neighbours, {(ids.STORE_SELECTED, "data"): 999_999}),
        call("odd store-selected: -1", neighbours, {(ids.STORE_SELECTED, "data"): -1}),
        call("crafted map-view: 4d", poll, {(ids.MAP_VIEW, "value"): "4d"}),
        call("crafted map-view: a list", poll, {(ids.MAP_VIEW, "value"): ["2d"]}),
        call("crafted map-view: an object", poll, {(ids.MAP_VIEW, "value"): {"dims": "2d"}}),
        call("crafted store-map-ready: without dims", figure, {(ids.STORE_MAP_READY, "data"): {"revision": 1}}),
        call("crafted store-map-ready: dims 4d", figure, {(ids.STORE_MAP_READY, "data"): {"dims": "4d", "revision": 1}}),
        call("crafted store-map-ready: revision a string", figure, {(ids.STORE_MAP_READY, "data"): {"dims": "2d", "revision": "1"}}),
        call("crafted store-figure-meta: without base_traces", click, {(ids.MAP_GRAPH, "clickData"): {"points": [{"curveNumber": 0, "pointNumber": 0}]}, (ids.STORE_FIGURE_META, "data"): {"dims": "2d", "revision": 1, "colour": "modality"}}),
        call("crafted store-figure-meta: base_traces -5", click, {(ids.MAP_GRAPH, "clickData"): {"points": [{"curveNumber": 0, "pointNumber": 0}]}, (ids.STORE_FIGURE_META, "data"): dict(meta, base_traces=-5)}),
        post("crafted store-upload: without contents", upload({"kind": "image", "filename": "x.png"})),
        post("crafted store-upload: contents a number", upload({"kind": "image", "filename": "x.png", "contents": 12})),
        post("crafted store-upload: kind video", upload({"kind": "video", "filename": "x.mp4", "contents": "data:video/mp4;base64,AAAA"})),
        post("crafted store-upload: filename an object", upload({"kind": "image", "filename": {"a": 1}, "contents": "data:image/png;base64,AAAA"})),
        post("crafted store-upload: a list", upload(["image", "x.png"])),
        post("odd store-upload: contents not base64", upload({"kind": "image", "filename": "x.png", "contents": "data:image/png;base64,@@@"})),
        post("odd store-upload: named ../../etc/passwd.wav", upload({"kind": "audio", "filename": "../../etc/passwd.wav", "contents": "data:audio/wav;base64,UklGRgAAAAA="})),
        post("odd store-upload: only an error", upload({"kind": "image", "filename": "x.png", "error": "x.png is 25.0 MB"})),
        call("crafted store-query: without vector", results, {(ids.STORE_QUERY, "data"): {key: value for key, value in query.items() if key != "vector"}}),
        call("crafted store-query: vector of the wrong length", figure, {(ids.STORE_MAP_READY, "data"): {"dims": "2d", "revision": 1}, (ids.STORE_QUERY, "data"): dict(query, vector=encode_vector(np.ones(7, np.float32)))}),
        call("crafted store-query: vector of NaN", figure, {(ids.STORE_MAP_READY, "data"): {"dims": "2d", "revision": 1}, (ids.STORE_QUERY, "data"): dict(query, vector=encode_vector(np.full(dim, np.nan, np.float32)))}),
        call("crafted store-query: vector not base64", results, {(ids.STORE_QUERY, "data"): dict(query, vector="not base64!")}),
        call("crafted results: a non-integer id", results, {(ids.STORE_QUERY, "data"): dict(query, results=[dict(record, id="x")])}),
        call("crafted results: a record without label", results, {(ids.STORE_QUERY, "data"): dict(query, results=[{"id": 1, "modality": "text"}])}),
        call("crafted results: a score that is text", results, {(ids.STORE_QUERY, "data"): dict(query, results=[dict(record, score="high")])}),
        call("crafted store-query: kind video", results, {(ids.STORE_QUERY, "data"): dict(query, kind="video")}),
        call("crafted store-neighbors: a result id that is text", figure, {(ids.STORE_MAP_READY, "data"): {"dims": "2d", "revision": 1}, (ids.STORE_NEIGHBORS, "data"): {"id": 1, "label": "cat", "results": [dict(record, id="x")]}}),
        call("crafted store-neighbors: id a string", figure, {(ids.STORE_MAP_READY, "data"): {"dims": "2d", "revision": 1}, (ids.STORE_NEIGHBORS, "data"): {"id": "1", "label": "cat", "results": []}}),
        post("crafted store-search-request: text a number", callback_body(search, {(ids.STORE_SEARCH_REQUEST, "data"): {"text": 5}}, changed=[f"{ids.STORE_SEARCH_REQUEST}.data"])),
        post("crafted store-search-request: a list", callback_body(search, {(ids.STORE_SEARCH_REQUEST, "data"): ["cat"]}, changed=[f"{ids.STORE_SEARCH_REQUEST}.data"])),
        call("crafted clickData: points not a list", click, {(ids.MAP_GRAPH, "clickData"): {"points": "all"}}),
        call("crafted clickData: curveNumber a string", click, {(ids.MAP_GRAPH, "clickData"): {"points": [{"curveNumber": "0", "pointNumber": 0}]}}),
        call("crafted clickData: customdata text", click, {(ids.MAP_GRAPH, "clickData"): {"points": [{"customdata": "abc"}]}}),
        call("crafted clickData: customdata an object", click, {(ids.MAP_GRAPH, "clickData"): {"points": [{"customdata": {"id": 1}}]}}),
        call("odd clickData: pointNumber far past the map", click, {(ids.MAP_GRAPH, "clickData"): {"points": [{"curveNumber": 0, "pointNumber": 10**12}]}, (ids.STORE_FIGURE_META, "data"): meta}),
        call("crafted hoverData: customdata a list of text", hover, {(ids.MAP_GRAPH, "hoverData"): {"points": [{"customdata": ["a", "b"]}]}}),
        call("crafted selectedData: points that are strings", selection, {(ids.MAP_GRAPH, "selectedData"): {"points": ["a", "b"]}}),
        call("odd selectedData: overlay points by id", selection, {(ids.MAP_GRAPH, "selectedData"): {"points": [{"customdata": items["text"]}, {"customdata": [items["image"]]}]}, (ids.STORE_FIGURE_META, "data"): meta}),
        call("crafted store-slots: a list", slot_labels, {(ids.STORE_SLOTS, "data"): [None, None, None]}),
        call("crafted store-slots: a broken vector", slot_labels, {(ids.STORE_SLOTS, "data"): {"a": {"description": "x", "vector": "AAAA"}}}),
        call("crafted store-generate-overlay: 1000 conditions", added, {(ids.STORE_GENERATE_OVERLAY, "data"): {"conditions": [{"vector": good_vector, "label": "x"}] * 1000}}),
        call("crafted store-generate-overlay: added without condition_vector", added, {(ids.STORE_GENERATE_OVERLAY, "data"): {"added": [{"id": 1, "vector": good_vector, "condition": "x"}]}}),
        call("crafted store-generate-overlay: fidelity text", added, {(ids.STORE_GENERATE_OVERLAY, "data"): {"added": [{"id": 1, "vector": good_vector, "condition_vector": good_vector, "condition": "x", "fidelity": "high"}]}}),
        call("crafted store-session: an object", generate_poll, {(ids.GENERATE_INTERVAL, "n_intervals"): 1, (ids.STORE_SESSION, "data"): {"id": "x"}}),
        call("crafted store-generate-seen: an object", generate_poll, {(ids.GENERATE_INTERVAL, "n_intervals"): 1, (ids.STORE_GENERATE_SEEN, "data"): {"id": "x"}}),
        call("odd generate-count: text", start, {(ids.GENERATE_BUTTON, "n_clicks"): 1, (ids.GENERATE_COUNT, "value"): "lots", (ids.STORE_SESSION, "data"): "abc"}),
        call("crafted generate-count: a list", start, {(ids.GENERATE_BUTTON, "n_clicks"): 1, (ids.GENERATE_COUNT, "value"): [4]}),
        call("crafted generate-source: evil", start, {(ids.GENERATE_BUTTON, "n_clicks"): 1, (ids.GENERATE_SOURCE, "value"): "evil"}),
        post("crafted store-generate-job: a list", pattern(add, ids.ADD_GENERATED, {"type": ids.ADD_GENERATED, "index": 0}, {(ids.STORE_GENERATE_JOB, "data"): ["job"]})),
        call("crafted url-in.search: a number", restore, {(ids.URL_IN, "search"): 12}),
        call("odd url-in.search: bad values and markup", restore, {(ids.URL_IN, "search"): "?item=abc&view=4d&color=<script>alert(1)</script>&modality=smell"}),
        call("crafted store-query: description a list", write_url, {(ids.MAP_VIEW, "value"): "2d", (ids.SEARCH_MODALITY, "value"): "all", (ids.STORE_QUERY, "data"): dict(query, description=["x"])}),
        call("crafted search-text: a list", search, {(ids.SEARCH_BUTTON, "n_clicks"): 1, (ids.SEARCH_TEXT, "value"): ["kitten"]}),
        call("crafted search-modality: smell", write_url, {(ids.MAP_VIEW, "value"): "2d", (ids.SEARCH_MODALITY, "value"): "smell"}),
        call("crafted map-colour: an object", write_url, {(ids.MAP_VIEW, "value"): "2d", (ids.MAP_COLOUR, "value"): {"a": 1}}),
        call("crafted search-button: n_clicks text", search, {(ids.SEARCH_BUTTON, "n_clicks"): "lots"}),
        # -- paths and ids -----------------------------------------------------------------------
        ("path thumbnail of a text item", "GET", f"/thumbnail/{items['text']}", None),
        ("path thumbnail -1", "GET", "/thumbnail/-1", None),
        ("path thumbnail abc", "GET", "/thumbnail/abc", None),
        ("path thumbnail past int64", "GET", "/thumbnail/99999999999999999999999", None),
        ("path thumbnail with a NUL", "GET", "/thumbnail/1%00", None),
        ("path thumbnail ../manifest.json", "GET", "/thumbnail/..%2f..%2fmanifest.json", None),
        ("path media of a text item", "GET", f"/media/{items['text']}", None),
        ("path media of an unknown item", "GET", "/media/99999999", None),
        ("path media past int64", "GET", "/media/99999999999999999999999", None),
        ("path media ../../etc/passwd", "GET", "/media/../../etc/passwd", None),
        ("path media %2e%2e", "GET", "/media/%2e%2e/%2e%2e/etc/passwd", None),
        ("path media ..%2f", "GET", "/media/..%2f..%2fetc%2fpasswd", None),
        ("path assets ../../etc/passwd", "GET", "/assets/../../etc/passwd", None),
        ("path assets ..%2f to the app source", "GET", "/assets/..%2fapp.py", None),
        ("path assets %2e%2e", "GET", "/assets/%2e%2e/app.py", None),
        ("path component suites ../../etc/passwd", "GET", "/_dash-component-suites/../../etc/passwd", None),
        ("path component suites %2e%2e", "GET", "/_dash-component-suites/%2e%2e/%2e%2e/etc/passwd", None),
        ("path component suites ..%2f inside dash", "GET", "/_dash-component-suites/dash/..%2f..%2fdash.py", None),
        ("path component suites deps/../..", "GET", "/_dash-component-suites/dash/deps/../../../../etc/passwd", None),
        ("path component suites of os", "GET", "/_dash-component-suites/os/passwd", None),
        ("path component suites unknown file", "GET", "/_dash-component-suites/dash/nothing.js", None),
        ("path //etc/passwd", "GET", "//etc/passwd", None),
        ("path backslashes", "GET", "/%5c..%5c..%5cetc%5cpasswd", None),
        ("path console", "GET", "/console", None),
        ("path update component by GET", "GET", UPDATE, None),
        ("path thumbnail by POST", "POST", f"/thumbnail/{items['image']}", None),
    ]
    return cases


# -- the app under test --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, model: object) -> Path:
    """A folder holding ``space`` (the 14-item test space plus an image added from memory) and its ``files``."""
    from browser import build_space, draw_image  # tests/ helpers, imported here so that abuse_cases imports without them

    folder = tmp_path_factory.mktemp("abuse")
    build_space(folder, model)
    Space.open(folder / "space", model=model).add_images([draw_image("ellipse", (240, 160, 20))], labels=["orange disc"])
    return folder


@pytest.fixture(scope="module")
def items(folder: Path) -> dict[str, int]:
    space = Space.open(folder / "space")
    frame = space.items

    def of(label: str) -> int:
        return int(frame.loc[frame["label"] == label, "id"].iloc[0])

    return {"image": of("red circle"), "audio": of("low hum"), "text": of("cat"), "memory_image": of("orange disc"), "dim": space.dim}


@pytest.fixture(scope="module")
def client(folder: Path, model: object) -> Any:
    return create_app(folder / "space", model=model).server.test_client()


def send_to_client(client: Any, case: Case) -> tuple[int, bytes]:
    """Send one case through Flask's test client; returns (status, body)."""
    _name, method, path, body = case
    if body is None:
        response = client.open(path, method=method)
    elif isinstance(body, bytes):
        response = client.open(path, method=method, data=body, content_type="application/json")
    elif isinstance(body, str):
        response = client.open(path, method=method, data=body, content_type="text/plain")
    else:
        response = client.open(path, method=method, json=body)
    return response.status_code, response.get_data()


def send_over_http(base_url: str, case: Case) -> tuple[int, bytes]:
    """Send one case to a real server, path exactly as written (like ``curl --path-as-is``)."""
    _name, method, path, body = case
    headers = {}
    if body is None:
        data = None
    elif isinstance(body, bytes):
        data, headers = body, {"Content-Type": "application/json"}
    elif isinstance(body, str):
        data, headers = body.encode(), {"Content-Type": "text/plain"}
    else:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def judge(case: Case, status: int, body: bytes) -> str | None:
    """What is wrong with the answer to a case, or None."""
    name = case[0]
    if status >= 500:
        return f"{name}: {status}"
    if any(leak in body for leak in LEAKS):
        return f"{name}: the answer leaks a file"
    if name.startswith(("malformed", "crafted")) and status != 400:
        return f"{name}: {status}, expected 400"
    if name.startswith("odd") and status not in (200, 204):
        return f"{name}: {status}, expected 200 or 204"
    return None


def page_requests(dependencies: list[dict], items: dict[str, int]) -> list[tuple[str, dict]]:
    """Well-formed requests as the page sends them (none may be refused)."""
    return [
        ("restore from the URL", callback_body(find_callback(dependencies, ids.URL_IN, "search"), {(ids.URL_IN, "search"): "?item=1&q=kitten&view=3d"})),
        ("poll the map", callback_body(find_callback(dependencies, ids.MAP_INTERVAL, "n_intervals"), {(ids.MAP_VIEW, "value"): "2d", (ids.MAP_INTERVAL, "interval"): 400})),
        ("neighbours of cat", callback_body(find_callback(dependencies, ids.STORE_SELECTED, "data"), {(ids.STORE_SELECTED, "data"): items["text"]})),
        ("search for kitten", callback_body(find_callback(dependencies, ids.SEARCH_BUTTON, "n_clicks"), {(ids.SEARCH_BUTTON, "n_clicks"): 1, (ids.SEARCH_TEXT, "value"): "kitten", (ids.SEARCH_MODALITY, "value"): "all"})),
        ("pick a result", callback_body(find_callback(dependencies, ids.PICK, "n_clicks"), {(ids.PICK, "n_clicks"): [{"id": {"type": ids.PICK, "index": items["text"]}, "property": "n_clicks", "value": 1}]})),
        ("slot labels", callback_body(find_callback(dependencies, ids.STORE_SLOTS, "data"), {(ids.STORE_SLOTS, "data"): {"a": None, "b": None, "c": None}})),
    ]


# -- tests ---------------------------------------------------------------------------------------


def test_requests_built_like_the_page_are_answered(client: Any, items: dict[str, int]) -> None:
    dependencies = client.get("/_dash-dependencies").get_json()
    answers = {name: client.post(UPDATE, json=body) for name, body in page_requests(dependencies, items)}
    assert {name: answer.status_code for name, answer in answers.items()} == {name: 200 for name in answers}
    assert "kitten" in answers["neighbours of cat"].get_data(as_text=True)
    assert '"description": "kitten"' in json.dumps(answers["search for kitten"].get_json())


def test_crafted_requests_get_4xx_and_the_app_keeps_serving(client: Any, items: dict[str, int]) -> None:
    dependencies = client.get("/_dash-dependencies").get_json()
    cases = abuse_cases(dependencies, items)
    assert len(cases) >= 60 and len({case[0] for case in cases}) == len(cases)
    problems = [problem for case in cases if (problem := judge(case, *send_to_client(client, case))) is not None]
    assert problems == []
    assert client.get("/").status_code == 200
    search = callback_body(find_callback(dependencies, ids.SEARCH_BUTTON, "n_clicks"), {(ids.SEARCH_BUTTON, "n_clicks"): 1, (ids.SEARCH_TEXT, "value"): "ocean"})
    assert '"label": "ocean"' in json.dumps(client.post(UPDATE, json=search).get_json())


def test_a_refused_request_gets_a_short_message_naming_what_is_wrong(client: Any, items: dict[str, int]) -> None:
    dependencies = client.get("/_dash-dependencies").get_json()
    body = callback_body(find_callback(dependencies, ids.STORE_SELECTED, "data"), {(ids.STORE_SELECTED, "data"): [items["text"]]})
    answer = client.post(UPDATE, json=body)
    assert answer.status_code == 400 and answer.is_json
    message = answer.get_json()["error"]
    assert "store-selected.data" in message and "integer" in message and len(message) < 200
    upload = {"kind": "image", "filename": "x.png"}
    body = callback_body(find_callback(dependencies, ids.SEARCH_BUTTON, "n_clicks"), {(ids.STORE_UPLOAD, "data"): upload}, changed=[f"{ids.STORE_UPLOAD}.data"])
    assert "contents" in client.post(UPDATE, json=body).get_json()["error"]


def test_upload_errors_name_the_file_not_the_server_path(client: Any, tmp_path: Path) -> None:
    import base64

    dependencies = client.get("/_dash-dependencies").get_json()
    empty = tmp_path / "silence.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16_000)
    contents = "data:audio/wav;base64," + base64.b64encode(empty.read_bytes()).decode()
    body = callback_body(find_callback(dependencies, ids.SEARCH_BUTTON, "n_clicks"), {(ids.STORE_UPLOAD, "data"): {"kind": "audio", "filename": "silence.wav", "contents": contents}}, changed=[f"{ids.STORE_UPLOAD}.data"])
    answer = client.post(UPDATE, json=body)
    message = answer.get_json()["response"][ids.SEARCH_MESSAGE]["children"]
    assert answer.status_code == 200 and "silence.wav" in message
    assert "embedspace-upload" not in message and tempfile.gettempdir() not in message and "upload.wav" not in message


def rewrite_sources(space: Path, sources: dict[int, str]) -> None:
    """Craft a space: replace the stored ``source`` of some items (as a hostile space could)."""
    for part in sorted((space / "segments").glob("*.parquet")):
        frame = pd.read_parquet(part)
        hit = frame["id"].isin(list(sources))
        if hit.any():
            frame.loc[hit, "source"] = frame.loc[hit, "id"].map(sources)
            frame.to_parquet(part, index=False)


def test_media_serves_only_media_files_and_nothing_outside_a_crafted_space(folder: Path, items: dict[str, int], model: object, tmp_path: Path) -> None:
    shutil.copytree(folder, tmp_path / "copy")
    space = tmp_path / "copy" / "space"
    (tmp_path / "copy" / "outside.wav").write_bytes((folder / "files" / "low-hum.wav").read_bytes())
    os.symlink("/etc/passwd", space / "media" / "evil.png")
    frame = Space.open(space).items
    image_ids = frame.loc[frame["modality"] == "image", "id"].astype(int).tolist()
    audio_ids = frame.loc[frame["modality"] == "audio", "id"].astype(int).tolist()
    crafted = {image_ids[0]: "media/evil.png", image_ids[1]: "../outside.wav", audio_ids[0]: "/etc/passwd", audio_ids[1]: "../../../../../../etc/passwd.wav"}
    rewrite_sources(space, crafted)
    client = create_app(space, model=model, warm_up=False).server.test_client()
    for item in crafted:
        answer = client.get(f"/media/{item}")
        assert answer.status_code == 404 and b"root:" not in answer.get_data(), item
    assert client.get(f"/media/{items['memory_image']}").status_code == 200  # media/<id>.png inside the space
    assert client.get(f"/media/{image_ids[2]}").status_code == 200  # an original file added from disk


def test_servable_file_rule(tmp_path: Path) -> None:
    from browser import draw_image

    space = tmp_path / "space"
    (space / "media").mkdir(parents=True)
    draw_image("ellipse", (1, 2, 3)).save(space / "media" / "3.png")
    draw_image("ellipse", (1, 2, 3)).save(tmp_path / "photo.png")
    (tmp_path / "notes.txt").write_text("private")
    os.symlink(tmp_path / "notes.txt", space / "media" / "link.png")
    assert servable_file(space, "media/3.png") == space / "media" / "3.png"
    assert servable_file(space, str(tmp_path / "photo.png")) == tmp_path / "photo.png"  # added from disk
    for refused in ("../photo.png", str(tmp_path / "notes.txt"), "media/link.png", "media/missing.png", "/etc/passwd", "", "media/\0.png", None, 3):
        assert servable_file(space, refused) is None, refused


def test_readme_serve_with_a_relative_path_serves_thumbnails_media_and_survives_abuse(folder: Path, items: dict[str, int]) -> None:
    import browser

    with browser.cli_server("space", cwd=folder) as (url, log):
        status, body = send_over_http(url, ("thumbnail", "GET", f"/thumbnail/{items['image']}", None))
        assert status == 200 and body[:4] == b"\x89PNG"
        status, body = send_over_http(url, ("in-memory image", "GET", f"/media/{items['memory_image']}", None))
        assert status == 200 and body[:4] == b"\x89PNG"
        status, body = send_over_http(url, ("sound", "GET", f"/media/{items['audio']}", None))
        assert status == 200 and body[:4] == b"RIFF"
        status, body = send_over_http(url, ("dependencies", "GET", "/_dash-dependencies", None))
        cases = abuse_cases(json.loads(body), items)
        problems = [problem for case in cases if (problem := judge(case, *send_over_http(url, case))) is not None]
        assert problems == []
        assert send_over_http(url, ("index", "GET", "/", None))[0] == 200
        text = log.read_text()
    assert "Debug mode: off" in text and f"Running on {url}" in text  # 127.0.0.1, debug off: the defaults
    assert "Traceback" not in text
