"""Dashboard without a browser: pure figure builders, URL state, space access, maps and callback logic."""

from __future__ import annotations

import base64
import inspect
import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from dash import Patch, no_update

from browser import IMAGES, SOUNDS, TEXTS, GatedProjection, build_space
from dashboard import app as app_module
from dashboard import figures, ids
from dashboard.access import SpaceAccess
from dashboard.maps import SpaceMaps
from dashboard.panels import map as map_panel
from dashboard.panels import neighbors, search, selection, url
from dashboard.services import Services
from dashboard.state import ViewState, compose_query_string, decode_vector, encode_vector, parse_query_string
from embedspace import Space, SpaceError
from embedspace.maps import load_space_projection
from embedspace.store_maps import SpaceProjection

# -- pure figure builders -------------------------------------------------------------------------


def points(count: int = 6, dims: int = 2, colours: list | None = None, labels: bool = True) -> figures.MapPoints:
    rng = np.random.default_rng(0)
    values = np.array(colours if colours is not None else (["text", "image", "audio"] * count)[:count], dtype=object)
    return figures.MapPoints(
        ids=np.arange(count, dtype=np.int64),
        coordinates=rng.normal(size=(count, dims)).astype(np.float32),
        colour_values=values,
        colour_name="modality",
        labels=np.array([f"item {i}" for i in range(count)], dtype=object) if labels else None,
    )


def test_map_figure_draws_every_point_with_webgl_one_trace_per_category() -> None:
    figure = figures.map_figure(points(6))
    base = figure.data[: len(figure.data) - figures.OVERLAY_TRACE_COUNT]
    assert [trace.name for trace in base] == ["audio", "image", "text"]  # ties ordered by name
    assert all(isinstance(trace, go.Scattergl) for trace in figure.data)
    assert sum(len(trace.x) for trace in base) == 6
    assert figure.layout.legend.title.text == "modality"
    assert base[2].marker.color == figures.MODALITY_COLOURS["text"]


def test_three_d_map_uses_scatter3d() -> None:
    figure = figures.map_figure(points(5, dims=3))
    assert all(isinstance(trace, go.Scatter3d) for trace in figure.data)
    assert len(figure.data[0].z) == len(figure.data[0].x)


def test_points_travel_as_typed_arrays_not_decimal_text() -> None:
    encoded = json.loads(pio.to_json(figures.map_figure(points(300, labels=False))))
    first = encoded["data"][0]
    assert first["x"]["dtype"] == "f4" and "bdata" in first["x"]
    assert "customdata" not in first  # events name points by trace and index instead
    assert "hovertext" not in first  # large maps hover the group only; the page previews the item lazily


def test_event_points_map_back_to_item_ids() -> None:
    data = figures.MapPoints(np.array([10, 11, 12, 13]), np.zeros((4, 2), np.float32), np.array(["a", "b", "a", "a"], dtype=object), "group")
    assert [ids.tolist() for ids in data.trace_ids()] == [[10, 12, 13], [11]]
    event = {"points": [{"curveNumber": 0, "pointNumber": 2}, {"curveNumber": 1, "pointNumber": 0}, {"curveNumber": 0, "pointNumber": 2}]}
    assert figures.event_item_ids(data, 2, event) == [13, 11]
    overlay = {"points": [{"curveNumber": 3, "pointNumber": 0, "customdata": 42}, {"curveNumber": 2, "pointNumber": 1}]}
    assert figures.event_item_ids(data, 2, overlay) == [42]  # ids from overlays; line points ignored
    assert figures.event_item_ids(None, 2, event) == [] and figures.event_item_ids(data, 2, None) == []


def test_labels_with_html_are_escaped_in_hover_text_and_legend() -> None:
    data = figures.MapPoints(
        ids=np.arange(2),
        coordinates=np.zeros((2, 2), np.float32),
        colour_values=np.array(["<i>group</i>", "plain"], dtype=object),
        colour_name="group",
        labels=np.array(["<script>alert(1)</script>", "a & b"], dtype=object),
    )
    figure = figures.map_figure(data)
    texts = [text for trace in figure.data for text in (trace.hovertext or [])]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in texts and "a &amp; b" in texts
    assert "<script>" not in json.dumps(figure.to_plotly_json(), default=str)
    assert "&lt;i&gt;group&lt;/i&gt;" in [trace.name for trace in figure.data]


def test_many_categories_are_capped_with_other_and_numbers_get_a_colour_scale() -> None:
    groups = figures.colour_groups(np.array([f"g{i % 20}" for i in range(100)], dtype=object))
    assert len(groups) == figures.MAX_CATEGORIES + 1 and groups[-1][0] == figures.OTHER
    assert sum(mask.sum() for _, mask in groups) == 100
    assert figures.colour_groups(np.array([None, "", "a"], dtype=object))[0][0] == figures.MISSING
    assert figures.colour_groups(np.linspace(0, 1, 50)) is None
    figure = figures.map_figure(figures.MapPoints(np.arange(50), np.zeros((50, 2), np.float32), np.linspace(0, 1, 50), "score"))
    assert figure.data[0].marker.showscale is True


def test_overlays_draw_lines_from_the_origin_to_each_target() -> None:
    neighbors = figures.Highlight(origin=np.array([0.0, 0.0]), origin_label="cat", origin_id=1, targets=np.array([[1.0, 0.0], [0.0, 2.0]]), target_ids=np.array([2, 3]), target_labels=["kitten", "dog"])
    query = figures.Highlight(origin=np.array([5.0, 5.0]), origin_label="query: kitten", targets=np.zeros((0, 2)))
    traces = figures.overlay_traces(2, neighbors, query)
    assert len(traces) == figures.OVERLAY_TRACE_COUNT
    lines, targets, origin, query_lines, query_targets, query_origin = traces
    assert list(lines.x[:2]) == [0.0, 1.0] and np.isnan(lines.x[2]) and list(lines.y[3:5]) == [0.0, 2.0]
    assert list(targets.customdata) == [2, 3] and list(origin.customdata) == [1]
    assert list(query_origin.x) == [5.0] and query_origin.customdata is None
    assert len(query_lines.x) == 0 and len(query_targets.x) == 0
    empty = figures.overlay_traces(3)
    assert all(isinstance(trace, go.Scatter3d) and len(trace.x) == 0 for trace in empty)


def test_message_figure_shows_escaped_text() -> None:
    figure = figures.message_figure("computing map… <now>")
    assert figure.layout.annotations[0].text == "computing map… &lt;now&gt;"


# -- URL state ---------------------------------------------------------------------------------


def test_query_string_round_trips_and_ignores_bad_values() -> None:
    state = ViewState(item=12, query="red apple & pear", view="3d", colour="group", modality="image")
    assert parse_query_string(compose_query_string(state)) == state
    assert compose_query_string(ViewState()) == ""
    assert parse_query_string("?item=abc&view=4d&modality=smell&q=%20%20") == ViewState()
    assert decode_vector(encode_vector(np.array([0.5, -1.25], np.float32))).tolist() == [0.5, -1.25]


def test_url_restore_only_changes_what_differs() -> None:
    current = ("2d", "modality", "all", "", None, None)
    restored = url.restore("?item=3&q=kitten&view=3d&color=nonsense", ["modality", "group"], current)
    assert restored == ("3d", no_update, no_update, "kitten", 3, {"text": "kitten"})
    again = url.restore("?item=3&q=kitten&view=3d", ["modality"], ("3d", "modality", "all", "kitten", 3, {"text": "kitten"}))
    assert all(value is no_update for value in again)
    assert url.compose("3d", "group", "all", 4, {"kind": "image", "description": "x.png"}) == "?item=4&view=3d&color=group"


# -- space access, maps and callbacks on a real (tiny) space ----------------------------------------


@pytest.fixture(scope="module")
def space_path(tmp_path_factory: pytest.TempPathFactory, model: object) -> Path:
    return build_space(tmp_path_factory.mktemp("dashboard"), model)


@pytest.fixture(scope="module")
def services(space_path: Path, model: object) -> Iterator[Services]:
    """The parts of an app on the 14-item space, its 2-D map ready (no test writes to this space)."""
    services = Services.open(space_path, model=model)
    assert services.maps.wait_for_map("2d", timeout=120).state == "ready"
    yield services
    services.shutdown()


@pytest.fixture(scope="module")
def access(services: Services) -> SpaceAccess:
    return services.access


@pytest.fixture(scope="module")
def maps(services: Services) -> SpaceMaps:
    return services.maps


def item_id(access: SpaceAccess, label: str) -> int:
    items = access.space().items
    return int(items.loc[items["label"] == label, "id"].iloc[0])


def test_map_of_a_tiny_space_holds_every_item(access: SpaceAccess, maps: SpaceMaps) -> None:
    points = maps.points("2d", "group")
    assert len(points.ids) == len(TEXTS) + len(IMAGES) + len(SOUNDS)
    assert points.coordinates.shape == (14, 2) and points.labels is not None
    assert set(points.colour_values) == {"animals", "sea", "vehicles", "markup", "pictures", "sounds"}
    assert access.colour_columns()[:2] == ["modality", "group"]
    stored = json.loads((access.path / "projections" / "umap-2d" / "current.json").read_text())
    assert stored["revision"] == access.space().revision and stored["method"] == "pca"  # 14 < n_neighbors + 2


def clustered_vectors(per_cluster: int, dim: int = 384, seed: int = 0) -> np.ndarray:
    """``(2 * per_cluster, dim)`` float32 unit vectors in two tight clusters (the first ``per_cluster`` rows, then the rest)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim))
    vectors = np.repeat(centres, per_cluster, axis=0) + 0.3 * rng.normal(size=(2 * per_cluster, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_a_space_large_enough_for_umap_gets_a_umap_map_that_keeps_its_clusters(tmp_path: Path, model: object) -> None:
    vectors = clustered_vectors(100)
    space = Space.create(tmp_path / "space", model=model)
    space.add_vectors(vectors, [f"{'a' if row < 100 else 'b'} {row}" for row in range(200)], metadata=[{"group": "a" if row < 100 else "b"} for row in range(200)])
    app = app_module.create_app(tmp_path / "space", model=model)  # its warm-up starts the 2-D map on the app's runner
    maps = app.services.maps
    try:
        status = maps.wait_for_map("2d", timeout=600)
        assert status.state == "ready" and status.placeable, status.message
        assert load_space_projection(Space.open(tmp_path / "space"), 2).projection.method_ == "umap"
        _, _, _, ready, _ = map_panel.poll(maps, "2d")
        figure, meta = map_panel.figure(maps, ready, "group", None, None, None)
        assert sum(len(trace.x) for trace in figure.data[: meta["base_traces"]]) == 200
        points = maps.points("2d", "group")
        coordinates = points.coordinates.astype(np.float64)
        distances = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=2)
        np.fill_diagonal(distances, np.inf)
        groups = points.colour_values
        assert np.mean(groups[distances.argmin(axis=1)] == groups) > 0.95  # each point's nearest one on the map is of its cluster
        centres = {group: coordinates[groups == group].mean(axis=0) for group in ("a", "b")}
        placed = maps.place("2d", vectors[3])  # a query placed with UMAP's transform lands by its cluster
        assert np.linalg.norm(placed - centres["a"]) < np.linalg.norm(placed - centres["b"])
    finally:
        app.services.shutdown()


def test_text_search_finds_semantic_neighbours(access: SpaceAccess) -> None:
    outcome = access.search_text("kitten", 3, None)
    assert [record["label"] for record in outcome.results[:2]] == ["kitten", "cat"]
    assert outcome.vector.shape == (384,) and outcome.results[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert all(record["modality"] == "image" for record in access.search_text("kitten", 3, "image").results)
    with pytest.raises(SpaceError, match="empty"):
        access.search_text("   ", 3, None)


def test_uploaded_image_in_the_space_finds_itself_first(access: SpaceAccess, space_path: Path) -> None:
    payload = (space_path.parent / "files" / "red-circle.png").read_bytes()
    outcome = access.search_upload("image", "red-circle.png", payload, 5, None)
    assert outcome.results[0]["label"] == "red circle"
    assert outcome.results[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_uploaded_audio_in_the_space_finds_itself_first(access: SpaceAccess, space_path: Path) -> None:
    payload = (space_path.parent / "files" / "low-hum.wav").read_bytes()
    outcome = access.search_upload("audio", "low-hum.wav", payload, 5, None)
    assert outcome.results[0]["label"] == "low hum" and outcome.results[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_bad_uploads_are_refused_with_a_message(access: SpaceAccess, space_path: Path) -> None:
    with pytest.raises(SpaceError, match="^notes.txt: not a readable image .*; give a PNG, JPEG"):
        access.search_upload("image", "notes.txt", b"just some text", 5, None)
    with pytest.raises(SpaceError, match="not an audio file"):
        access.search_upload("audio", "notes.txt", b"just some text", 5, None)
    with pytest.raises(SpaceError, match="^fake.wav: not a readable audio file .*; give a WAV"):
        access.search_upload("audio", "fake.wav", b"RIFF but not really", 5, None)
    small = SpaceAccess(space_path, max_upload_bytes=1000)
    with pytest.raises(SpaceError, match="upload limit is 0.0 MB"):
        small.search_upload("image", "big.png", b"x" * 2000, 5, None)


def test_uploads_are_held_to_the_input_limits_and_named_by_their_file_name(space_path: Path, model: object, tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (2000, 10), "red").save(tmp_path / "strip.png")  # 200:1, beyond the aspect-ratio limit
    access = SpaceAccess(space_path, model=model)
    with pytest.raises(SpaceError, match=r"^strip\.png: is 2000×10 pixels, an aspect ratio of 200:1, above the limit of 100:1 .*; crop it$") as refused:
        access.search_upload("image", "strip.png", (tmp_path / "strip.png").read_bytes(), 5, None)
    assert str(tmp_path) not in str(refused.value) and "embedspace-upload" not in str(refused.value)
    big = np.zeros((3000, 3000, 3), np.uint8)
    big[:, :1500] = (220, 30, 30)
    Image.fromarray(big).save(tmp_path / "big.png")  # 9 Mpx: decoded at reduced size, still searchable
    outcome = access.search_upload("image", "big.png", (tmp_path / "big.png").read_bytes(), 3, "image")
    assert len(outcome.results) == 3 and outcome.description == "big.png"


def test_map_is_computed_in_the_background_and_a_write_elsewhere_updates_it(tmp_path: Path, space_path: Path, model: object) -> None:
    shutil.copytree(space_path, tmp_path / "space", ignore=shutil.ignore_patterns("projections"))
    GatedProjection.gate.clear()
    # refresh_seconds=0: every read looks for writes by other processes (no waiting for a clock)
    services = Services.open(tmp_path / "space", model=model, projection_factory=lambda n: GatedProjection(n_components=n), refresh_seconds=0)
    maps = services.maps
    try:
        assert maps.status("3d").state == "computing"  # answered while the fit is held
        text, percent, style, ready, interval = map_panel.poll(maps, "3d")
        assert text.startswith(map_panel.COMPUTING) and ready is None and interval == map_panel.POLL_MS
        GatedProjection.gate.set()
        assert maps.wait_for_map("3d", timeout=60).state == "ready"
        assert maps.points("3d", "modality").coordinates.shape == (14, 3)
        # a write by another process makes the map stale; it is updated with transform, not refitted
        (new,) = Space.open(tmp_path / "space").add_vectors(np.ones((1, 384), np.float32), ["new"], modality="image")
        assert maps.wait_for_map("3d", timeout=60).state == "ready"
        assert len(maps.points("3d", "modality").ids) == 15
        assert "preview" not in services.access.item(new)  # an image item without a thumbnail gets no broken <img>
    finally:
        GatedProjection.gate.set()
        services.shutdown()


def test_a_write_elsewhere_is_seen_at_the_next_read_with_refresh_seconds_zero(tmp_path: Path, space_path: Path, model: object) -> None:
    shutil.copytree(space_path, tmp_path / "space")
    access = SpaceAccess(tmp_path / "space", model=model, refresh_seconds=0)
    before = access.count()
    Space.open(tmp_path / "space").add_vectors(model.embed_text(["a lighthouse"]), ["written elsewhere"])
    assert access.count() == before + 1
    assert access.search_text("a lighthouse", 1, None).results[0]["label"] == "written elsewhere"


def test_empty_space_reports_an_error_instead_of_a_map(tmp_path: Path, model: object) -> None:
    Space.create(tmp_path / "empty", model=model)
    services = Services.open(tmp_path / "empty", model=model)
    status = services.maps.wait_for_map("2d", timeout=30)
    services.shutdown()
    assert status.state == "error" and "empty" in status.message
    text, *_ = map_panel.status_view(status, "2d")
    assert "could not be computed" in text


def test_figure_callback_builds_then_patches_only_overlays(access: SpaceAccess, maps: SpaceMaps) -> None:
    text, percent, style, ready, interval = map_panel.poll(maps, "2d")
    assert ready == {"dims": "2d", "revision": access.space().revision, "placeable": True} and interval == map_panel.IDLE_POLL_MS
    figure, meta = map_panel.figure(maps, ready, "modality", None, None, None)
    assert isinstance(figure, go.Figure) and meta["base_traces"] == 3
    cat = item_id(access, "cat")
    panel, store = neighbors.neighbors_view(access, cat, k=3)
    assert store["id"] == cat and store["results"][0]["label"] == "kitten"
    query, message = search.search(access, [ids.SEARCH_TEXT], "kitten", None, None, "all", None, k=3)
    assert message == ""
    patch, same = map_panel.figure(maps, ready, "modality", store, query, meta)
    assert isinstance(patch, Patch) and same is no_update
    full, _ = map_panel.figure(maps, ready, "modality", store, query, None)
    overlays = full.data[meta["base_traces"] :]
    assert list(overlays[2].customdata) == [cat] and len(overlays[1].x) == 3  # selected + its 3 neighbours
    assert len(overlays[5].x) == 1 and overlays[5].name == "query"  # the query placed with transform
    assert map_panel.figure(maps, None, "modality", None, None, None) == (no_update, no_update)
    recoloured, new_meta = map_panel.figure(maps, ready, "group", store, query, meta)  # another colouring: all points again
    assert isinstance(recoloured, go.Figure) and new_meta["colour"] == "group"


def drawn(access: SpaceAccess, maps: SpaceMaps) -> tuple[dict, figures.MapPoints]:
    """The meta store of the 2-D map coloured by modality, and its points."""
    ready = {"dims": "2d", "revision": access.space().revision, "placeable": True}
    _, meta = map_panel.figure(maps, ready, "modality", None, None, None)
    return meta, maps.points("2d", "modality")


def point_event(points: figures.MapPoints, *item_ids: int) -> dict:
    """A plotly event naming items by trace and index, as the browser sends it."""
    found = []
    for item in item_ids:
        for curve, trace in enumerate(points.trace_ids()):
            if item in trace:
                found.append({"curveNumber": curve, "pointNumber": int(np.flatnonzero(trace == item)[0])})
    return {"points": found}


def test_click_hover_and_pick_resolve_item_ids(access: SpaceAccess, maps: SpaceMaps) -> None:
    meta, points = drawn(access, maps)
    cat = item_id(access, "cat")
    assert map_panel.clicked_item(maps, point_event(points, cat), meta) == cat
    assert map_panel.clicked_item(maps, {"points": [{"curveNumber": meta["base_traces"], "pointNumber": 0}]}, meta) is no_update
    assert map_panel.clicked_item(maps, {"points": [{"customdata": 7}]}, meta) == 7
    assert map_panel.clicked_item(maps, None, meta) is no_update
    assert map_panel.clicked_item(maps, point_event(points, cat), dict(meta, revision=-1)) is no_update  # a figure from an older map
    card = map_panel.hover_preview(access, maps, point_event(points, item_id(access, "red circle")), meta)
    assert "/thumbnail/" in json.dumps(card.to_plotly_json(), default=str)
    card = map_panel.hover_preview(access, maps, point_event(points, item_id(access, "low hum")), meta)
    assert "/media/" in json.dumps(card.to_plotly_json(), default=str)
    assert "preview" not in access.item(item_id(access, "cat"))
    assert neighbors.picked_item({"type": ids.PICK, "index": 4}, 1) == 4
    assert neighbors.picked_item({"type": ids.PICK, "index": 4}, None) is no_update


def test_search_callback_reports_problems_in_the_page(access: SpaceAccess, space_path: Path) -> None:
    query, message = search.search(access, [ids.SEARCH_BUTTON], "", None, None, "all", None)
    assert query is no_update and "empty" in message
    upload = {"kind": "image", "filename": "notes.txt", "contents": "data:text/plain;base64," + base64.b64encode(b"hello").decode()}
    query, message = search.search(access, [ids.STORE_UPLOAD], None, None, upload, "all", None)
    assert query is no_update and "notes.txt: not a readable image" in message
    query, message = search.search(access, [ids.STORE_UPLOAD], None, None, {"kind": "image", "filename": "x.png", "error": "x.png is 25.0 MB"}, "all", None)
    assert message == "x.png is 25.0 MB"
    png = (space_path.parent / "files" / "blue-square.png").read_bytes()
    upload = {"kind": "image", "filename": "blue-square.png", "contents": "data:image/png;base64," + base64.b64encode(png).decode()}
    query, message = search.search(access, [ids.STORE_UPLOAD], None, None, upload, "all", None)
    assert message == "" and query["results"][0]["label"] == "blue square" and query["kind"] == "image"
    # changing the modality filter re-runs the current query; a URL request wins over the filter change
    filtered, _ = search.search(access, [ids.SEARCH_MODALITY], None, None, None, "text", query)
    assert {record["modality"] for record in filtered["results"]} == {"text"}
    requested, _ = search.search(access, [ids.SEARCH_MODALITY, ids.STORE_SEARCH_REQUEST], None, {"text": "puppy"}, None, "all", None)
    assert requested["description"] == "puppy" and requested["results"][0]["label"] == "puppy"
    view = search.results_view(requested)
    assert "puppy" in json.dumps(view.to_plotly_json(), default=str)


def test_selection_lists_the_chosen_items(access: SpaceAccess, maps: SpaceMaps) -> None:
    meta, points = drawn(access, maps)
    chosen = selection.new_selection(maps, point_event(points, item_id(access, "cat"), item_id(access, "dog"), item_id(access, "cat")), meta)
    view = json.dumps(selection.selection_view(access, maps, chosen).to_plotly_json(), default=str)
    assert "2 selected" in view and "cat" in view and "dog" in view
    paged = json.dumps(selection.selection_view(access, maps, selection.turn_page(chosen, 1), page_rows=1).to_plotly_json(), default=str)
    assert "page 2 of 2" in paged and ("cat" in paged) != ("dog" in paged)
    assert "Draw a box" in json.dumps(selection.selection_view(access, maps, None).to_plotly_json())


def test_a_box_or_lasso_selects_every_point_inside_it_on_the_server(access: SpaceAccess, maps: SpaceMaps) -> None:
    meta, points = drawn(access, maps)
    low, high = points.coordinates.min(axis=0), points.coordinates.max(axis=0)
    middle = (low + high) / 2
    box = {"points": [], "range": {"x": [float(low[0]) - 1, float(middle[0])], "y": [float(low[1]) - 1, float(high[1]) + 1]}}
    expected = set(points.ids[points.coordinates[:, 0] <= middle[0]].tolist())
    chosen = selection.new_selection(maps, box, meta)
    assert set(selection.selected_ids(maps, chosen).tolist()) == expected and 0 < len(expected) < len(points.ids)
    # a lasso: the same half as a triangle-free quadrilateral, drawn in the other direction
    x0, x1, y0, y1 = float(low[0]) - 1, float(middle[0]), float(low[1]) - 1, float(high[1]) + 1
    lasso = {"points": [], "lassoPoints": {"x": [x0, x0, x1, x1], "y": [y0, y1, y1, y0]}}
    assert set(selection.selected_ids(maps, selection.new_selection(maps, lasso, meta)).tolist()) == expected
    heading = json.dumps(selection.selection_view(access, maps, chosen).to_plotly_json(), default=str)
    assert f"{len(expected)} selected" in heading


def test_app_serves_layout_thumbnails_and_media(space_path: Path, access: SpaceAccess, model: object) -> None:
    app = app_module.create_app(space_path, warm_up=False, model=model)
    client = app.server.test_client()
    assert client.get("/").status_code == 200
    layout = json.dumps(client.get("/_dash-layout").get_json())
    assert "OpenMoji" in layout and "CC BY-SA 4.0" in layout and "https://openmoji.org" in layout
    image = client.get(f"/thumbnail/{item_id(access, 'red circle')}")
    assert image.status_code == 200 and image.mimetype == "image/png" and image.data[:4] == b"\x89PNG"
    assert client.get(f"/thumbnail/{item_id(access, 'cat')}").status_code == 404
    sound = client.get(f"/media/{item_id(access, 'low hum')}")
    assert sound.status_code == 200 and sound.mimetype in ("audio/wav", "audio/x-wav") and sound.data[:4] == b"RIFF"
    assert client.get("/media/99999").status_code == 404


def test_the_page_and_its_scripts_are_sent_compressed(space_path: Path, model: object) -> None:
    import gzip
    import re

    app = app_module.create_app(space_path, warm_up=False, model=model)
    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert len(scripts) >= 5
    raw = sum(len(client.get(script, headers={"Accept-Encoding": "identity"}).data) for script in scripts)
    sent = 0
    for script in scripts:
        response = client.get(script, headers={"Accept-Encoding": "gzip"})
        sent += len(response.data)
        if len(response.data) > 1000:
            assert response.headers.get("Content-Encoding") == "gzip"
            assert len(gzip.decompress(response.data)) > len(response.data)
    print(f"scripts: {sent:,} bytes sent gzip-compressed of {raw:,}")
    assert sent < 0.4 * raw, f"scripts: {sent:,} bytes sent compressed of {raw:,}"
    layout = client.get("/_dash-layout", headers={"Accept-Encoding": "gzip"})
    assert layout.headers.get("Content-Encoding") == "gzip"


def test_two_apps_in_one_process_share_nothing(space_path: Path, model: object, tiny_generator_path: Path) -> None:
    first = app_module.create_app(space_path, warm_up=False, model=model, generator=tiny_generator_path)
    second = app_module.create_app(space_path, warm_up=False, model=model, generator=tiny_generator_path)
    one, other = first.services, second.services
    assert one.access is not other.access and one.maps is not other.maps and one.runner is not other.runner
    assert one.jobs is not other.jobs and one.generator.get() is not other.generator.get()
    assert one.generator.get() is one.generator.get()  # loaded once per app


def test_missing_space_fails_early_and_debug_is_off_by_default(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="does not exist"):
        app_module.create_app(tmp_path / "nowhere", warm_up=False)
    assert inspect.signature(app_module.serve).parameters["debug"].default is False
    assert inspect.signature(app_module.serve).parameters["host"].default == "127.0.0.1"  # not reachable from other machines unless asked


def test_map_is_drawn_before_queries_can_be_placed_and_the_query_follows(space_path: Path, model: object) -> None:
    services = Services.open(space_path, model=model)
    access, maps = services.access, services.maps
    assert maps.wait_for_map("2d", timeout=60).placeable
    loaded = maps._maps["2d"]
    maps._maps["2d"] = SpaceProjection(loaded.ids, loaded.coordinates, loaded.revision, None, loaded.folder)  # as right after start
    maps._placeable["2d"].clear()
    text, _, _, ready, interval = map_panel.poll(maps, "2d")
    assert ready["placeable"] is False and interval == map_panel.POLL_MS  # keep polling until placeable
    query, _ = search.search(access, [ids.SEARCH_TEXT], "kitten", None, None, "all", None, k=3)
    with ThreadPoolExecutor(1) as pool:  # the map is not held back by the projection model (which never loads here)
        figure, meta = pool.submit(map_panel.figure, maps, ready, "modality", None, query, None).result(timeout=60)
    assert len(figure.data[meta["base_traces"] + 5].x) == 0 and len(figure.data[meta["base_traces"] + 4].x) == 3
    maps._maps["2d"] = loaded
    maps._placeable["2d"].set()
    _, _, _, ready, interval = map_panel.poll(maps, "2d")
    assert ready["placeable"] is True and interval == map_panel.IDLE_POLL_MS
    patch, _ = map_panel.figure(maps, ready, "modality", None, query, meta)
    assert isinstance(patch, Patch)  # the query is added without resending the points
    services.shutdown()


def test_the_larger_clusters_are_named_on_a_2d_map() -> None:
    from dashboard.figures import MapPoints, cluster_annotations, map_figure
    from embedspace.clusters import ClusterInfo

    clusters = (ClusterInfo(0, "cat · kitten · <b>pet</b>", 60, (1.0, 2.0)), ClusterInfo(1, "car · truck", 39, (5.0, 5.0)), ClusterInfo(2, "tiny", 1, (9.0, 9.0)))
    points = MapPoints(np.arange(200), np.zeros((200, 2), np.float32), np.array(["text"] * 200, dtype=object), "modality", clusters=clusters)
    names = [annotation["text"] for annotation in cluster_annotations(points)]
    assert names == ["cat · kitten · &lt;b&gt;pet&lt;/b&gt;", "car · truck"]  # escaped; the cluster of 1 in 200 points is left out
    figure = map_figure(points)
    assert [annotation.text for annotation in figure.layout.annotations] == names and figure.layout.annotations[0].x == 1.0
    flat = MapPoints(np.arange(100), np.zeros((100, 3), np.float32), np.array(["text"] * 100, dtype=object), "modality", clusters=clusters)
    assert cluster_annotations(flat) == []
