"""End-to-end: the dashboard in headless Chromium (Playwright, Debian's /usr/bin/chromium).

The server runs in a background thread over a 14-item space built in tmp; each test
opens a fresh page and saves a screenshot under its ``tmp_path``.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import browser
from dashboard import ids
from browser import IMAGES, SOUNDS, TEXTS, GatedProjection

pytestmark = pytest.mark.browser

ITEM_COUNT = len(TEXTS) + len(IMAGES) + len(SOUNDS)
TIMEOUT_MS = 30_000

#: Points on the map, counted from the plotly figure's data (typed arrays arrive base64-encoded).
COUNT_POINTS_JS = """
() => {
    const gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd.data) return -1;
    const size = {f4: 4, f8: 8, i1: 1, u1: 1, i2: 2, u2: 2, i4: 4, u4: 4};
    const count = a => !a ? 0 : (a.bdata !== undefined ? atob(a.bdata).length / size[a.dtype] : a.length);
    return gd.data.filter(t => t.showlegend !== false).reduce((n, t) => n + count(t.x), 0);
}
"""

#: Points in the overlay trace called ``name`` ("query", "selected", "neighbours").
OVERLAY_POINTS_JS = """
(name) => {
    const gd = document.querySelector('.js-plotly-plot');
    const trace = (gd && gd._fullData || []).find(t => t.name === name && t.showlegend === false && t.mode === 'markers');
    return trace ? trace._length : -1;
}
"""

@pytest.fixture(scope="module")
def space_path(tmp_path_factory: pytest.TempPathFactory, model: object) -> Path:
    return browser.build_space(tmp_path_factory.mktemp("dashboard-e2e"), model)


@pytest.fixture(scope="module")
def base_url(space_path: Path, model: object) -> Iterator[str]:
    from dashboard import create_app

    app = create_app(space_path, model=model)
    with browser.running(app) as url:
        yield url


@pytest.fixture
def page(chromium: object, base_url: str, tmp_path: Path) -> Iterator[object]:
    context = chromium.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    refused: list[str] = []  # callback requests the server's checks turned away (dashboard.guard): the page's own must all pass
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("response", lambda response: refused.append(f"{response.status} {response.text()[:200]}") if "_dash-update-component" in response.url and response.status >= 400 else None)
    page.base_url = base_url
    yield page
    page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
    assert not refused, f"callback requests of the page were refused: {refused}"


def open_map(page: object, query: str = "") -> None:
    """Load the page and wait until every point of the space is drawn."""
    page.goto(page.base_url + "/" + query)
    page.wait_for_function(f"() => ({COUNT_POINTS_JS})() === {ITEM_COUNT}")


def wait_for_text(page: object, selector: str, text: str, start: bool = False, timeout: int = TIMEOUT_MS) -> None:
    """Wait until the element at ``selector`` exists and its text contains (or, with ``start``, starts with) ``text``."""
    page.wait_for_function(
        "([selector, text, start]) => { const e = document.querySelector(selector); return !!e && (start ? e.innerText.startsWith(text) : e.innerText.includes(text)); }",
        arg=[selector, text, start],
        timeout=timeout,
    )


def results(page: object, selector: str) -> list[str]:
    return [label.strip() for label in page.locator(f"{selector} button.pick").all_inner_texts()]


def test_map_renders_every_point_of_the_space(page: object, tmp_path: Path) -> None:
    open_map(page)
    assert page.evaluate(COUNT_POINTS_JS) == ITEM_COUNT
    assert re.search(r"2D map · 14 points", page.inner_text(f"#{ids.MAP_STATUS}"))
    legend = page.evaluate("() => [...document.querySelectorAll('.legend .legendtext')].map(e => e.textContent)")
    assert {"text", "image", "audio"} <= set(legend)
    page.click(f"#{ids.ABOUT} summary")
    assert "OpenMoji" in page.inner_text(f"#{ids.ABOUT}") and "CC BY-SA 4.0" in page.inner_text(f"#{ids.ABOUT}")
    for credit in ("Noto Emoji", "Apache-2.0", "Twemoji", "CC-BY-4.0", "Fluent Emoji (flat)", "Whisper tiny.en", "EfficientNet-Lite0"):
        assert credit in page.inner_text(f"#{ids.ABOUT}"), credit
    gap = page.inner_text(f"#{ids.ABOUT_GAP}")  # the space holds texts, images and sounds: three pairs of modalities
    assert all(pair in gap for pair in ("text–image", "text–audio", "image–audio")) and "centroids" in gap
    page.screenshot(path=str(tmp_path / "map.png"))


def test_text_search_shows_neighbours_and_places_the_query(page: object, tmp_path: Path) -> None:
    open_map(page)
    page.fill(f"#{ids.SEARCH_TEXT}", "kitten")
    page.press(f"#{ids.SEARCH_TEXT}", "Enter")
    page.wait_for_selector(f"#{ids.SEARCH_RESULT_LIST}")
    assert results(page, f"#{ids.SEARCH_RESULT_LIST}")[:2] == ["kitten", "cat"]
    page.wait_for_function(f"() => ({OVERLAY_POINTS_JS})('query') === 1")
    assert page.evaluate(OVERLAY_POINTS_JS, "query") == 1  # the query point on the map
    page.wait_for_url(re.compile(r"q=kitten"))
    page.screenshot(path=str(tmp_path / "search.png"))


def test_clicking_a_point_shows_its_neighbours_and_the_url_restores_it(page: object, tmp_path: Path) -> None:
    open_map(page)
    point = page.evaluate(browser.SPREAD_POINTS_JS)[0]
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector(f"#{ids.NEIGHBOR_LIST}")
    label = html.unescape(point["label"])  # hover text is escaped; the panel shows it as typed
    assert label in page.inner_text(".selected-item")
    assert len(results(page, f"#{ids.NEIGHBOR_LIST}")) == 10
    page.wait_for_function(f"() => ({OVERLAY_POINTS_JS})('selected') === 1")
    page.wait_for_url(re.compile(r"item=\d+"))
    page.screenshot(path=str(tmp_path / "neighbours.png"))
    page.reload()  # a reload (or a shared link) restores the selected item
    page.wait_for_selector(f"#{ids.NEIGHBOR_LIST}")
    assert label in page.inner_text(".selected-item")


def test_shared_link_restores_query_view_and_selection(page: object, space_path: Path) -> None:
    open_map(page, "?q=puppy&view=3d&modality=text")
    page.wait_for_selector(f"#{ids.SEARCH_RESULT_LIST}")
    assert results(page, f"#{ids.SEARCH_RESULT_LIST}")[0] == "puppy"
    page.wait_for_function("() => ((document.querySelector('.js-plotly-plot') || {})._fullData || []).some(t => t.type === 'scatter3d')")
    assert page.locator(f"#{ids.MAP_VIEW} input[value='3d']").is_checked()
    assert page.locator(f"#{ids.SEARCH_MODALITY} input[value='text']").is_checked()


def test_the_modality_aligned_view_is_computed_on_demand_and_drawn(page: object, space_path: Path) -> None:
    open_map(page, "?view=aligned&q=puppy")
    wait_for_text(page, f"#{ids.MAP_STATUS}", "2D modality-aligned map")
    assert page.locator(f"#{ids.MAP_VIEW} input[value='aligned']").is_checked()
    page.wait_for_selector(f"#{ids.SEARCH_RESULT_LIST}")
    assert results(page, f"#{ids.SEARCH_RESULT_LIST}")[0] == "puppy"
    assert (space_path / "projections" / "umap-2d-aligned" / "current.json").exists()  # stored beside the plain map


def test_image_and_audio_uploads_return_the_item_itself_first(page: object, space_path: Path, tmp_path: Path) -> None:
    files = space_path.parent / "files"
    open_map(page)
    page.set_input_files(f"#{ids.SEARCH_IMAGE_UPLOAD} input[type=file]", str(files / "green-triangle.png"))
    wait_for_text(page, f"#{ids.SEARCH_RESULTS}", "nearest to image")
    assert results(page, f"#{ids.SEARCH_RESULT_LIST}")[0] == "green triangle"
    assert page.locator(f"#{ids.SEARCH_RESULT_LIST} .score").first.inner_text() == "1.000"
    assert page.locator(f"#{ids.SEARCH_RESULT_LIST} img.thumbnail").count() >= 1
    page.screenshot(path=str(tmp_path / "image-search.png"))
    page.set_input_files(f"#{ids.SEARCH_AUDIO_UPLOAD} input[type=file]", str(files / "high-beep.wav"))
    wait_for_text(page, f"#{ids.SEARCH_RESULTS}", "nearest to sound")
    assert results(page, f"#{ids.SEARCH_RESULT_LIST}")[0] == "high beep"
    audio = page.locator(f"#{ids.SEARCH_RESULT_LIST} audio").first
    assert audio.get_attribute("src").startswith("/media/")
    status = page.evaluate("src => fetch(src).then(r => r.status + ' ' + r.headers.get('content-type'))", audio.get_attribute("src"))
    assert status.startswith("200 audio/")


def test_bad_uploads_show_a_message_and_the_server_keeps_serving(page: object, tmp_path: Path) -> None:
    open_map(page)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    page.set_input_files(f"#{ids.SEARCH_IMAGE_UPLOAD} input[type=file]", str(notes))
    wait_for_text(page, f"#{ids.SEARCH_MESSAGE}", "notes.txt: not a readable image")
    big = tmp_path / "huge.wav"
    big.write_bytes(b"\0" * (21 * 1024 * 1024))
    page.set_input_files(f"#{ids.SEARCH_AUDIO_UPLOAD} input[type=file]", str(big))
    wait_for_text(page, f"#{ids.SEARCH_MESSAGE}", "upload limit is 20.0 MB")
    assert "huge.wav is 21.0 MB" in page.inner_text(f"#{ids.SEARCH_MESSAGE}")
    page.screenshot(path=str(tmp_path / "bad-upload.png"))
    page.fill(f"#{ids.SEARCH_TEXT}", "ocean")  # still serving: a search works and clears the message
    page.click(f"#{ids.SEARCH_BUTTON}")
    wait_for_text(page, f"#{ids.SEARCH_RESULTS}", "nearest to text")
    assert results(page, f"#{ids.SEARCH_RESULT_LIST}")[0] == "ocean"
    assert page.inner_text(f"#{ids.SEARCH_MESSAGE}").strip() == ""


def test_page_shows_progress_while_the_map_is_computed(chromium: object, space_path: Path, model: object, tmp_path: Path) -> None:
    from dashboard import create_app

    shutil.copytree(space_path, tmp_path / "space", ignore=shutil.ignore_patterns("projections"))
    GatedProjection.gate.clear()
    app = create_app(tmp_path / "space", model=model, projection_factory=lambda n: GatedProjection(n_components=n))
    try:
        with browser.running(app) as url:
            context = chromium.new_context(viewport={"width": 1400, "height": 950})
            page = context.new_page()
            page.goto(url + "/")
            # a progress report from the server (not the placeholder) with the progress bar showing, while the fit is held
            page.wait_for_function(
                "([status, progress]) => { const text = document.getElementById(status)?.innerText || '';"
                " const bar = document.getElementById(progress);"
                " return text.startsWith('computing map…') && text.includes('% · ') && bar !== null && bar.offsetParent !== null; }",
                arg=[ids.MAP_STATUS, ids.MAP_PROGRESS],
                timeout=TIMEOUT_MS,
            )
            GatedProjection.gate.set()
            page.wait_for_function(f"() => ({COUNT_POINTS_JS})() === {ITEM_COUNT}", timeout=TIMEOUT_MS)
            assert not page.locator(f"#{ids.MAP_PROGRESS}").is_visible()
            context.close()
    finally:
        GatedProjection.gate.set()
        app.services.shutdown(timeout=60)


def test_readme_serve_with_a_relative_path_shows_thumbnails_and_plays_sounds(chromium: object, space_path: Path, tmp_path: Path) -> None:
    with browser.cli_server(space_path.name, cwd=space_path.parent) as (url, _log):  # `embedspace serve space`, as the README does
        context = chromium.new_context(viewport={"width": 1400, "height": 950})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url + "/?q=red%20circle")
        page.wait_for_selector(f"#{ids.SEARCH_RESULT_LIST} img.thumbnail")
        loaded = "() => [...document.querySelectorAll('#%s img.thumbnail')].map(i => i.complete && i.naturalWidth > 0)" % ids.SEARCH_RESULT_LIST
        page.wait_for_function(f"() => ({loaded})().every(Boolean)")
        assert len(page.evaluate(loaded)) >= 1  # every image result's thumbnail loaded (they were 500s before)
        page.goto(url + "/?q=low%20hum&modality=audio")
        audio = page.locator(f"#{ids.SEARCH_RESULT_LIST} audio").first.get_attribute("src")
        status = page.evaluate("src => fetch(src).then(r => r.status + ' ' + r.headers.get('content-type'))", audio)
        assert status.startswith("200 audio/")
        page.screenshot(path=str(tmp_path / "relative-path.png"))
        context.close()
