"""Large maps: a density image of every point under a sample of the points in view (dashboard.density).

The level-of-detail threshold is lowered so that a 3,000-item synthetic space (vectors in
eight separated groups, each with a few texts naming it) counts as large. Pure parts are
tested on arrays; the app's callbacks on that space; then the page in headless Chromium:
the density image is drawn, pan and zoom bring a new sample of the view, a lasso counts
every point inside it on the server, cluster names show, and eight sessions zoom at once.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from dash import no_update
from PIL import Image
from plotly.io.json import to_json_plotly

import browser
from dashboard import ids
from dashboard.density import CellIndex, View, density_image, inside_polygon, mix_categories, relayout_view, sample_priority, shape_mask, view_sample
from dashboard.figures import MapPoints
from dashboard.panels import map as map_panel, selection

WORDS = ("apple", "boat", "cloud", "drum", "engine", "forest", "guitar", "harbour")
ITEMS = 3_000
THRESHOLD = 1_000
SAMPLE = 600
TIMEOUT_MS = 60_000


# -- pure parts -----------------------------------------------------------------------------------


def test_the_sample_favours_sparse_regions_and_outliers() -> None:
    rng = np.random.default_rng(0)
    dense = rng.normal(scale=0.5, size=(20_000, 2))
    outliers = np.column_stack([np.linspace(-30, 30, 20), np.full(20, 25.0)])
    order = sample_priority(np.vstack([dense, outliers]))
    first = order[:400]  # 2 % of the points
    assert sorted(order.tolist()) == list(range(20_020))
    kept = int((first >= 20_000).sum())
    assert kept >= 6, f"only {kept} of 20 outliers among the first 400 (a uniform sample keeps 0.4 of them)"


def test_a_view_sample_lies_in_the_view_is_capped_and_repeatable() -> None:
    rng = np.random.default_rng(1)
    coordinates = rng.uniform(-10, 10, size=(50_000, 2)).astype(np.float32)
    order = sample_priority(coordinates)
    ordered = coordinates[order]
    view = View(0.0, 5.0, -2.0, 2.0)
    rows, in_view = view_sample(ordered, order, view, 1_000)
    assert in_view == int(view.contains(coordinates).sum()) and len(rows) == 1_000
    assert view.contains(coordinates[rows]).all()
    again, _ = view_sample(ordered, order, view, 1_000)
    assert np.array_equal(rows, again)
    whole, count = view_sample(ordered, order, None, 1_000)
    assert count == 50_000 and np.array_equal(whole, order[:1_000])


def test_a_cell_index_gathers_every_point_of_a_view_and_few_others() -> None:
    rng = np.random.default_rng(3)
    coordinates = rng.normal(size=(100_000, 2)).astype(np.float32) * [4, 2]
    index = CellIndex.build(coordinates, grid=64)
    for view in (View(-1, 2, -0.5, 0.7), View(-100, 100, -100, 100), View(3, 9, -9, -1), View(50, 60, 50, 60)):
        rows, gathered = index.gather(view)
        inside = set(np.flatnonzero(view.contains(coordinates)).tolist())
        assert inside <= set(rows.tolist()) and len(rows) == index.count(view) == len(set(rows.tolist()))
        assert np.array_equal(gathered, coordinates[rows])
        assert len(rows) <= max(4 * len(inside), 2_000), "only points near the view are gathered"
    subset = np.arange(0, 100_000, 10)
    rows, _ = CellIndex.build(coordinates, subset, grid=64).gather(View(-100, 100, -100, 100))
    assert sorted(rows.tolist()) == subset.tolist()


def test_point_in_polygon_follows_a_concave_lasso() -> None:
    grid = np.stack(np.meshgrid(np.linspace(0.05, 3.95, 40), np.linspace(0.05, 3.95, 40)), axis=-1).reshape(-1, 2)
    letter_l = np.array([[0, 0], [4, 0], [4, 1], [1, 1], [1, 4], [0, 4]], np.float64)  # an L: concave
    expected = (grid[:, 1] < 1) | (grid[:, 0] < 1)
    assert np.array_equal(inside_polygon(grid, letter_l), expected)
    assert np.array_equal(inside_polygon(grid, letter_l[::-1]), expected)  # either direction
    box = shape_mask(grid, {"range": {"x": [3.0, 1.0], "y": [0.0, 2.0]}})
    assert np.array_equal(box, (grid[:, 0] >= 1) & (grid[:, 0] <= 3) & (grid[:, 1] <= 2))
    assert shape_mask(grid, {"points": []}) is None


def test_relayout_events_become_views() -> None:
    full = View(-10, 10, -5, 5)
    assert relayout_view({"xaxis.range[0]": -1, "xaxis.range[1]": 1, "yaxis.range[0]": 2, "yaxis.range[1]": 3}, None, full) == View(-1, 1, 2, 3)
    assert relayout_view({"xaxis.range": [4, 2]}, View(0, 1, 0, 1), full) == View(2, 4, 0, 1)  # y kept from the current view
    assert relayout_view({"xaxis.autorange": True, "yaxis.autorange": True}, View(0, 1, 0, 1), full) == full
    assert relayout_view({"autosize": True}, None, full) is None
    assert relayout_view({"dragmode": "pan", "selections": [{"type": "path"}]}, None, full) is None


def test_the_density_image_shows_each_category_in_its_colour_where_it_lies() -> None:
    rng = np.random.default_rng(2)
    left = rng.normal(loc=(-5, 0), scale=0.5, size=(5_000, 2))
    right = rng.normal(loc=(5, 0), scale=0.5, size=(20_000, 2))
    coordinates = np.vstack([left, right]).astype(np.float32)
    codes = np.repeat([0, 1], [5_000, 20_000])
    view = View(-10, 10, -5, 5)
    source = density_image(coordinates, view, codes=codes, colours=["#ff0000", "#0000ff"])
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGBA")).astype(int)
    assert pixels.shape == (400, 800, 4)
    middle = pixels[200]
    red_side, blue_side = middle[200], middle[600]  # x = -5 and x = 5 on the middle row
    assert red_side[0] > 150 and red_side[2] < 100 and blue_side[2] > 150 and blue_side[0] < 100, (red_side, blue_side)
    assert middle[400][3] < 30, "nothing lies at x = 0: the pixel stays transparent"
    counts = np.zeros((1, 2, 2), np.uint32)
    counts[0, 0] = [1, 0]
    counts[0, 1] = [50, 50]
    mixed = mix_categories(counts, ["#ff0000", "#0000ff"])
    assert tuple(mixed[0, 0, :3]) == (255, 0, 0) and tuple(mixed[0, 1, :3]) == (127, 0, 127) and mixed[0, 0, 3] < mixed[0, 1, 3] == 255


# -- the app's callbacks on a large (by the lowered threshold) space -------------------------------


@pytest.fixture(scope="module")
def lod_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 items: eight separated groups of vectors, each with texts naming it, and the stored 2-D map with named clusters."""
    from embedspace import Space
    from embedspace.maps import compute_space_projection

    path = tmp_path_factory.mktemp("lod") / "space"
    space = Space.create(path)
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(WORDS), space.dim)).astype(np.float32)
    group = np.arange(ITEMS) % len(WORDS)
    vectors = centres[group] + rng.normal(size=(ITEMS, space.dim)).astype(np.float32) * 1.2
    texts = group < 0  # the first 40 of each group are texts
    texts[np.argsort(group, kind="stable").reshape(len(WORDS), -1)[:, :40].ravel()] = True
    for modality, rows in (("text", np.flatnonzero(texts)), ("image", np.flatnonzero(~texts))):
        labels = [WORDS[group[row]] if modality == "text" else f"picture {row}" for row in rows]
        space.add_vectors(vectors[rows], labels, modality=modality, metadata=[{"group": WORDS[group[row]]} for row in rows])
    compute_space_projection(space, 2)
    return path


@pytest.fixture(scope="module")
def lod_app(lod_space: Path, model: object) -> Iterator[object]:
    from dashboard import create_app

    app = create_app(lod_space, model=model, lod_threshold=THRESHOLD, lod_points=SAMPLE)
    assert app.services.maps.wait_for_map("2d").state == "ready"
    yield app
    app.services.shutdown()


def drawn_count(figure: dict, base_traces: int) -> int:
    """Points in the base traces of a figure's JSON (float32 typed arrays arrive as base64)."""
    return sum(len(base64.b64decode(trace["x"]["bdata"])) // 4 if isinstance(trace["x"], dict) else len(trace["x"]) for trace in figure["data"][:base_traces])


def test_a_large_map_is_a_density_image_under_a_sample(lod_app: object) -> None:
    maps = lod_app.services.maps
    revision = lod_app.services.access.revision()
    figure, meta = map_panel.figure(maps, {"dims": "2d", "revision": revision, "placeable": True}, "group", None, None, None)
    figure = figure.to_plotly_json()
    images = figure["layout"]["images"]
    assert len(images) == 1 and images[0]["source"].startswith("data:image/webp;base64,")
    picture = Image.open(io.BytesIO(base64.b64decode(images[0]["source"].split(",", 1)[1])))
    assert picture.width == 800 and np.asarray(picture.convert("RGBA"))[..., 3].any()
    assert meta["base_traces"] == len(WORDS) and len(meta["view"]) == 4
    assert drawn_count(figure, meta["base_traces"]) == SAMPLE
    names = {annotation["text"] for annotation in figure["layout"]["annotations"]}
    assert names and all(any(word in name for word in WORDS) for name in names), names

    # zoom into the first cluster: a new sample, all inside the view, and the events on it name the right items
    points = maps.points("2d", "group")
    centre = np.asarray(maps._map("2d").cluster_info[0].centre[:2])
    view = View(centre[0] - 1.5, centre[0] + 1.5, centre[1] - 1.5, centre[1] + 1.5)
    patch, moved_meta = map_panel.moved(maps, {"xaxis.range[0]": view.x0, "xaxis.range[1]": view.x1, "yaxis.range[0]": view.y0, "yaxis.range[1]": view.y1}, meta)
    assert moved_meta["view"] == view.to_list()
    sample = maps.drawn_points("2d", "group", view)
    assert 0 < len(sample.ids) <= SAMPLE and view.contains(sample.coordinates).all()
    operations = to_json_plotly(patch.to_plotly_json())
    assert "images" in operations and "annotations" in operations
    trace = next(number for number, rows in enumerate(sample.rows) if len(rows))
    clicked = map_panel.event_items(maps, {"points": [{"curveNumber": trace, "pointNumber": 0}]}, moved_meta)
    assert clicked == [int(sample.ids[sample.rows[trace][0]])]
    position = np.flatnonzero(points.ids == clicked[0])[0]
    assert view.contains(points.coordinates[position : position + 1])[0]

    # neighbours are drawn where they lie, sampled or not
    outside = [int(item) for item in points.ids[~view.contains(points.coordinates)][:3]]
    assert not set(outside) & set(sample.ids.tolist())
    highlight = map_panel.neighbors_highlight(maps, "2d", {"id": clicked[0], "label": "a point", "results": [{"id": item, "label": str(item)} for item in outside]})
    assert highlight.origin is not None and len(highlight.targets) == 3
    assert maps.status("2d").message == f"{ITEMS:,} points · density of all, {SAMPLE:,} drawn from the view"


def test_a_lasso_counts_every_point_inside_not_only_the_sample(lod_app: object) -> None:
    maps = lod_app.services.maps
    revision = lod_app.services.access.revision()
    _, meta = map_panel.figure(maps, {"dims": "2d", "revision": revision, "placeable": True}, "modality", None, None, None)
    stored = maps._map("2d")
    full = View.from_list(meta["view"])
    x = [full.x0, (full.x0 + full.x1) / 2, full.x1]
    y = [full.y0, full.y1, full.y0]  # a triangle over most of the map
    chosen = selection.new_selection(maps, {"points": [], "lassoPoints": {"x": x, "y": y}}, meta)
    inside = inside_polygon(stored.coordinates, np.column_stack([x, y]))
    found = selection.selected_ids(maps, chosen)
    assert len(found) == int(inside.sum()) > SAMPLE
    assert set(found.tolist()) == set(stored.ids[inside].tolist())
    view = json.dumps(selection.selection_view(lod_app.services.access, maps, chosen).to_plotly_json(), default=str)
    pages = (len(found) + selection.PAGE_ROWS - 1) // selection.PAGE_ROWS
    assert f"{len(found):,} selected" in view and f"page 1 of {pages}" in view


def test_a_large_3d_map_draws_a_fixed_sample_and_its_events_name_items(lod_app: object) -> None:
    maps = lod_app.services.maps
    assert maps.wait_for_map("3d").state == "ready"
    revision = lod_app.services.access.revision()
    figure, meta = map_panel.figure(maps, {"dims": "3d", "revision": revision, "placeable": True}, "modality", None, None, None)
    figure = figure.to_plotly_json()
    assert "view" not in meta and not figure["layout"].get("images")
    assert drawn_count(figure, meta["base_traces"]) == SAMPLE
    sample = maps.drawn_points("3d", "modality")
    assert map_panel.event_items(maps, {"points": [{"curveNumber": 0, "pointNumber": 5}]}, meta) == [int(sample.ids[sample.rows[0][5]])]
    assert map_panel.moved(maps, {"scene.camera": {"eye": {"x": 1, "y": 1, "z": 1}}}, meta) == (no_update, no_update)


def test_a_named_cluster_is_offered_and_selects_its_members(lod_app: object) -> None:
    maps = lod_app.services.maps
    meta = {"dims": "2d", "revision": lod_app.services.access.revision()}
    stored = maps._map("2d")
    options = selection.cluster_options(maps, meta)
    assert len(options) == len(stored.cluster_info) >= len(WORDS) // 2
    for option, cluster in zip(options, stored.cluster_info):
        assert option["label"] == f"{cluster.name} ({cluster.size:,})"
        members = selection.selected_ids(maps, selection.cluster_selection(option["value"], meta))
        assert len(members) == cluster.size and set(members.tolist()) == set(stored.ids[stored.clusters == cluster.cluster].tolist())


def test_colouring_by_a_number_keeps_one_scale_in_both_layers(lod_app: object) -> None:
    points = lod_app.services.maps.points("2d", "group")
    numbers = MapPoints(points.ids, points.coordinates, np.arange(len(points.ids), dtype=np.float64), "n")
    sample = numbers.subset(np.arange(10, 20))
    assert sample.groups is None and sample.limits == (0.0, float(len(points.ids) - 1))


# -- in the browser ---------------------------------------------------------------------------------

#: The map's state in the page: points drawn in the base (legend) traces, density images, axis ranges, cluster names.
STATE_JS = """
() => {
    const gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullData || !gd._fullLayout || !gd._fullLayout.xaxis) return null;
    const drawn = gd._fullData.filter(t => t.showlegend !== false).reduce((n, t) => n + (t._length || 0), 0);
    const images = (gd.layout.images || []).filter(i => (i.source || '').startsWith('data:image/'));
    const names = [...document.querySelectorAll('.annotation-text')].map(e => e.textContent);
    return {drawn, images: images.length, source: images.length ? images[0].source.length : 0,
            x: gd._fullLayout.xaxis.range, y: gd._fullLayout.yaxis.range, names};
}
"""


#: Sampled points lying outside the axes' current ranges (0 when the sample is the view's).
OUTSIDE_JS = """
() => {
    const gd = document.querySelector('.js-plotly-plot');
    const x = gd._fullLayout.xaxis.range, y = gd._fullLayout.yaxis.range;
    let outside = 0;
    gd._fullData.filter(t => t.showlegend !== false).forEach(t => {
        for (let i = 0; i < t._length; i++) {
            if (t.x[i] < x[0] - 1e-6 || t.x[i] > x[1] + 1e-6 || t.y[i] < y[0] - 1e-6 || t.y[i] > y[1] + 1e-6) outside++;
        }
    });
    return outside;
}
"""


@pytest.fixture(scope="module")
def lod_url(lod_app: object) -> Iterator[str]:
    with browser.running(lod_app) as url:
        yield url


def open_page(chromium: object, url: str) -> tuple[object, object, list[str]]:
    context = chromium.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}") if "_dash-update-component" in response.url and response.status >= 400 else None)
    page.goto(url)
    page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s && s.images === 1 && s.drawn === {SAMPLE}; }}")
    return context, page, errors


def plot_box(page: object) -> dict:
    return page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()


@pytest.mark.browser
def test_the_page_draws_density_zooms_to_a_new_sample_and_counts_a_lasso(chromium: object, lod_url: str, lod_app: object, tmp_path: Path) -> None:
    context, page, errors = open_page(chromium, lod_url)
    before = page.evaluate(STATE_JS)
    assert before["names"] and all(any(word in name for word in WORDS) for name in before["names"]), before["names"]
    page.screenshot(path=str(tmp_path / "density.png"))

    box = plot_box(page)
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.4)
    for _ in range(4):
        page.mouse.wheel(0, -400)
        page.wait_for_timeout(150)
    page.wait_for_function(
        "([x, source]) => { const s = (" + STATE_JS + ")(); return s && s.x[1] - s.x[0] < 0.8 * (x[1] - x[0]) && s.source !== source && s.drawn > 0; }",
        arg=[before["x"], before["source"]],
    )
    # once the wheel stops, the drawn sample is the last view's: no point outside the axes
    page.wait_for_function(f"() => ({OUTSIDE_JS})() === 0")
    page.screenshot(path=str(tmp_path / "zoomed.png"))
    zoomed = page.evaluate(STATE_JS)

    # back to the whole map, then a lasso: the page's count is the server's count over every point.
    # The lasso starts only once the server's whole-map figure has replaced the zoomed one
    # (a figure that lands mid-drag cuts the lasso short).
    page.click(".js-plotly-plot .modebar-btn[data-title='Reset axes']")
    page.wait_for_function(
        "([x, source, sample]) => { const s = (" + STATE_JS + ")(); return s && s.drawn === sample && s.source !== source && s.x[1] - s.x[0] > 0.99 * (x[1] - x[0]); }",
        arg=[before["x"], zoomed["source"], SAMPLE],
    )
    page.wait_for_function(f"() => ({OUTSIDE_JS})() === 0")
    sent: list[dict] = []
    page.on("request", lambda request: sent.append(json.loads(request.post_data)) if "_dash-update-component" in request.url and "selectedData" in (request.post_data or "") else None)
    corners = [(0.15, 0.15), (0.85, 0.2), (0.8, 0.85), (0.2, 0.8)]
    page.mouse.move(box["x"] + box["width"] * corners[0][0], box["y"] + box["height"] * corners[0][1])
    page.mouse.down()
    for fx, fy in corners[1:] + corners[:1]:
        page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy, steps=8)
    page.mouse.up()
    page.wait_for_function("() => /[0-9,]+ selected/.test(document.querySelector('#%s').innerText)" % ids.SELECTION_TABLE)
    shown = int(page.inner_text(f"#{ids.SELECTION_TABLE} .selection-count").split(" selected")[0].replace(",", ""))
    event = next(value["value"] for body in sent for value in body["inputs"] if value["property"] == "selectedData" and value.get("value"))
    server, _ = lod_app.services.maps.select("2d", shape=event)
    assert "lassoPoints" in event and shown == len(server) > SAMPLE // 2, (shown, len(server), event.get("lassoPoints"), page.evaluate(STATE_JS))
    assert shown > len(event.get("points", [])), "the count covers every point inside the lasso, not only the drawn sample"
    page.screenshot(path=str(tmp_path / "lasso.png"))
    context.close()
    assert not errors, errors


@pytest.mark.browser
def test_picking_a_named_cluster_lists_its_members(chromium: object, lod_url: str, lod_app: object, tmp_path: Path) -> None:
    context, page, errors = open_page(chromium, lod_url)
    cluster = lod_app.services.maps._map("2d").cluster_info[0]
    page.click(f"#{ids.SELECTION_CLUSTER}")
    page.locator("[role=option]", has_text=f"{cluster.name} ({cluster.size:,})").click()
    pages = (cluster.size + selection.PAGE_ROWS - 1) // selection.PAGE_ROWS
    page.wait_for_function("([selector, text]) => document.querySelector(selector).innerText.includes(text)", arg=[f"#{ids.SELECTION_TABLE}", f"{cluster.size:,} selected"])
    assert f"page 1 of {pages}" in page.inner_text(f"#{ids.SELECTION_TABLE}")
    first = page.inner_text(f"#{ids.SELECTION_TABLE} table")
    page.click(f"#{ids.SELECTION_NEXT}")
    page.wait_for_function("([selector, text]) => document.querySelector(selector).innerText.includes(text)", arg=[f"#{ids.SELECTION_TABLE}", f"page 2 of {pages}"])
    assert page.inner_text(f"#{ids.SELECTION_TABLE} table") != first
    page.screenshot(path=str(tmp_path / "cluster.png"))
    context.close()
    assert not errors, errors


@pytest.mark.browser
def test_eight_sessions_zoom_at_once_and_each_sees_its_own_view(chromium: object, lod_url: str, tmp_path: Path) -> None:
    sessions = [open_page(chromium, lod_url) for _ in range(8)]
    targets = [(0.2 + 0.08 * number, 0.3 + 0.05 * number) for number in range(8)]
    for _ in range(3):  # interleaved: every page zooms before any waits
        for (context, page, _), (fx, fy) in zip(sessions, targets):
            box = plot_box(page)
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            page.mouse.wheel(0, -300)
    views = []
    for number, (context, page, errors) in enumerate(sessions):
        page.wait_for_timeout(300)
        page.wait_for_function(f"() => {{ const s = ({STATE_JS})(); return s && s.images === 1 && s.drawn > 0; }}")
        state = page.evaluate(STATE_JS)
        views.append((round(state["x"][0], 3), round(state["y"][0], 3)))
        page.wait_for_function(f"() => ({OUTSIDE_JS})() === 0")  # each session's sample is of its own view
        page.screenshot(path=str(tmp_path / f"session-{number}.png"))
    assert len(set(views)) == 8, f"sessions share views: {views}"
    for context, page, errors in sessions:
        context.close()
        assert not errors, errors
