"""End-to-end generation in headless Chromium: from a search, between two clicked points, cancel, add to the space.

The server runs a tiny random-weight generator over a 14-item space built in tmp (its
images are noise; the flow is the real one). A :class:`Gate` can hold a generation
worker after its first partial preview, so a test can look at the page mid-job and click
Cancel while sampling is still under way — without sleeping or timing anything.
Screenshots are saved under each test's ``tmp_path``.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import browser
from browser import IMAGES, SOUNDS, TEXTS
from dashboard import ids
from dashboard.jobs import Job
from test_dashboard_browser import COUNT_POINTS_JS, TIMEOUT_MS, wait_for_text

pytestmark = pytest.mark.browser

ITEM_COUNT = len(TEXTS) + len(IMAGES) + len(SOUNDS)

#: Points (length) of the named overlay trace: "generation path", "generated", "query"...
TRACE_LENGTH_JS = """
(name) => {
    const gd = document.querySelector('.js-plotly-plot');
    const trace = (gd && gd._fullData || []).find(t => t.name === name && t.showlegend === false && t.mode !== 'lines');
    return trace ? trace._length : -1;
}
"""

#: Page position of the first point of the named overlay trace.
TRACE_POINT_JS = """
(name) => {
    const gd = document.querySelector('.js-plotly-plot');
    const L = gd._fullLayout, box = gd.getBoundingClientRect();
    const t = gd._fullData.find(t => t.name === name && t._length > 0);
    return t ? {x: box.left + L._size.l + L.xaxis.l2p(t.x[0]), y: box.top + L._size.t + L.yaxis.l2p(t.y[0])} : null;
}
"""


class Gate:
    """Holds the next generation job's worker after its first partial preview, until released."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.reached = threading.Event()
        self.released = threading.Event()

    def arm(self) -> None:
        self.reached.clear()
        self.released.clear()
        self.armed.set()

    def __call__(self, job: Job) -> None:  # create_app's on_generation_update, in the worker thread
        if self.armed.is_set() and job.progress > 0 and not job.done.is_set():
            self.armed.clear()
            self.reached.set()
            self.released.wait(timeout=120)


@pytest.fixture(scope="module")
def space_path(tmp_path_factory: pytest.TempPathFactory, model: object) -> Path:
    return browser.build_space(tmp_path_factory.mktemp("dashboard-generate-e2e"), model)


@pytest.fixture(scope="module")
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.released.set()


@pytest.fixture(scope="module")
def base_url(space_path: Path, model: object, tiny_generator_path: Path, gate: Gate) -> Iterator[str]:
    from dashboard import create_app

    app = create_app(space_path, model=model, generator=tiny_generator_path, generation_workers=2, on_generation_update=gate)
    with browser.running(app) as url:
        yield url
    gate.released.set()
    app.services.shutdown(timeout=60)


def new_page(chromium: object, base_url: str, errors: list[str]) -> tuple[object, object]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.base_url = base_url
    return context, page


@pytest.fixture
def page(chromium: object, base_url: str, tmp_path: Path, gate: Gate) -> Iterator[object]:
    errors: list[str] = []
    context, page = new_page(chromium, base_url, errors)
    yield page
    gate.armed.clear()
    gate.released.set()
    page.screenshot(path=str(tmp_path / "final.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def open_map(page: object) -> None:
    """Load the page and wait until the map shows at least every original point."""
    page.goto(page.base_url + "/")
    page.wait_for_function(f"() => ({COUNT_POINTS_JS})() >= {ITEM_COUNT}")


def search_text(page: object, text: str) -> None:
    page.fill(f"#{ids.SEARCH_TEXT}", text)
    page.press(f"#{ids.SEARCH_TEXT}", "Enter")
    page.wait_for_function(
        "([selector, text]) => { const first = document.querySelector(selector); return !!first && first.innerText.trim() === text; }",
        arg=[f"#{ids.SEARCH_RESULT_LIST} button.pick", text],
    )


def generate(page: object, source: str, **numbers: int) -> None:
    """Choose the source, set the number inputs (``count=``, ``steps=``, ``seed=``) and press Generate."""
    page.check(f"#{ids.GENERATE_SOURCE} input[value='{source}']")
    inputs = {"count": ids.GENERATE_COUNT, "steps": ids.GENERATE_STEPS, "seed": ids.GENERATE_SEED}
    for name, value in numbers.items():
        page.fill(f"#{inputs[name]}", str(value))
    page.click(f"#{ids.GENERATE_BUTTON}")


def finished_images(page: object) -> int:
    return page.locator(f"#{ids.GENERATE_IMAGES} img.generated-image:not(.partial)").count()


def click_point(page: object, point: dict) -> str:
    """Click a map point and wait until the neighbours panel shows it; returns its label."""
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    label = html.unescape(point["label"])
    wait_for_text(page, ".selected-item", label)
    return label


def test_generate_from_a_search_fills_in_the_images_while_the_page_stays_responsive(page: object, gate: Gate, tmp_path: Path) -> None:
    open_map(page)
    search_text(page, "kitten")
    gate.arm()
    generate(page, "query", count=4)
    assert gate.reached.wait(60)  # the worker is held after the first row of tokens
    page.wait_for_selector(f"#{ids.GENERATE_IMAGES} img.generated-image.partial")
    assert page.locator(f"#{ids.GENERATE_IMAGES} img.partial").count() == 4  # every image shows its partial grid
    assert page.locator(f"#{ids.GENERATE_PROGRESS}").is_visible()
    assert "%" in page.inner_text(f"#{ids.GENERATE_STATUS}") and page.is_enabled(f"#{ids.GENERATE_CANCEL}")
    page.screenshot(path=str(tmp_path / "token-by-token.png"), full_page=True)
    search_text(page, "ocean")  # the page answers while the job runs
    gate.released.set()
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", "4 images from kitten")
    assert finished_images(page) == 4
    assert page.locator(f"#{ids.GENERATE_IMAGES} img").first.get_attribute("src").startswith("data:image/png;base64,")
    assert not page.locator(f"#{ids.GENERATE_PROGRESS}").is_visible() and not page.is_enabled(f"#{ids.GENERATE_CANCEL}")
    page.wait_for_function(f"() => ({TRACE_LENGTH_JS})('generation path') === 1")  # the condition on the map
    page.screenshot(path=str(tmp_path / "generated.png"), full_page=True)


def test_interpolate_between_two_clicked_points_draws_the_path_and_a_strip(page: object, tmp_path: Path) -> None:
    open_map(page)
    first, second = page.evaluate(browser.SPREAD_POINTS_JS)[:2]
    start = click_point(page, first)
    page.locator(".slot").nth(0).locator("button", has_text="← selected").click()
    wait_for_text(page, ".slots", start)
    end = click_point(page, second)
    page.locator(".slot").nth(1).locator("button", has_text="← selected").click()
    wait_for_text(page, ".slots", end)
    generate(page, "path", steps=5)
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", f"5 images from {start} → {end}")
    assert page.locator(f"#{ids.GENERATE_IMAGES} .strip figure").count() == 5 and finished_images(page) == 5
    assert page.locator(f"#{ids.GENERATE_IMAGES} figcaption .caption").all_inner_texts() == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    page.wait_for_function(f"() => ({TRACE_LENGTH_JS})('generation path') === 5")  # the slerp path, projected
    page.screenshot(path=str(tmp_path / "path.png"), full_page=True)


def test_cancel_stops_a_running_job(page: object, gate: Gate, tmp_path: Path) -> None:
    open_map(page)
    click_point(page, page.evaluate(browser.SPREAD_POINTS_JS)[0])
    gate.arm()
    generate(page, "selected", count=8)
    assert gate.reached.wait(60)
    page.wait_for_selector(f"#{ids.GENERATE_IMAGES} img.partial")
    page.click(f"#{ids.GENERATE_CANCEL}")
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", "cancelling")
    gate.released.set()  # the worker resumes and stops at its next token
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", "cancelled (0 of 8 images finished)")
    assert not page.is_enabled(f"#{ids.GENERATE_CANCEL}") and finished_images(page) == 0
    page.screenshot(path=str(tmp_path / "cancelled.png"), full_page=True)


def test_add_a_result_to_the_space_and_find_it_on_the_map(page: object, tmp_path: Path) -> None:
    open_map(page)
    before = page.evaluate(COUNT_POINTS_JS)
    search_text(page, "kitten")
    generate(page, "query", count=2)
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", "2 images from kitten")
    page.locator(f"#{ids.GENERATE_IMAGES} .add-button").first.click()
    wait_for_text(page, f"#{ids.GENERATE_IMAGES}", "in the space as item")
    wait_for_text(page, f"#{ids.GENERATE_ADDED}", "similarity")
    assert "from kitten · similarity" in page.inner_text(f"#{ids.GENERATE_ADDED}")
    page.wait_for_function(f"() => ({TRACE_LENGTH_JS})('generated') === 1")  # placed next to its condition
    page.wait_for_function(f"() => ({COUNT_POINTS_JS})() === {before + 1}")  # and then part of the map itself
    page.screenshot(path=str(tmp_path / "added.png"), full_page=True)
    point = page.evaluate(TRACE_POINT_JS, "generated")
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    wait_for_text(page, ".selected-item", "generated: kitten")


def test_edit_a_picked_image_keeping_the_top_then_edit_the_edit_and_add_it(page: object, gate: Gate, tmp_path: Path) -> None:
    open_map(page)
    names = {name for name, _, _ in IMAGES}
    point = next(point for point in page.evaluate(browser.SPREAD_POINTS_JS) if html.unescape(point["label"]) in names)
    label = click_point(page, point)
    page.click(f"#{ids.EDIT_SELECTED}")
    wait_for_text(page, f"#{ids.EDIT_LABEL}", f"({label})")
    search_text(page, "kitten")
    gate.arm()
    generate(page, "query", count=2)
    assert gate.reached.wait(60)  # held mid-job: the tokens arrive one row at a time
    page.wait_for_selector(f"#{ids.GENERATE_IMAGES} img.generated-image.partial")
    page.screenshot(path=str(tmp_path / "editing.png"), full_page=True)
    gate.released.set()
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", "2 images from item")
    assert "→ kitten (keeping the top)" in page.inner_text(f"#{ids.GENERATE_STATUS}") and finished_images(page) == 2

    page.locator(f"#{ids.GENERATE_IMAGES} .edit-button").first.click()  # a chain: edit the first edit
    wait_for_text(page, f"#{ids.EDIT_LABEL}", "editing image 1 of")
    page.check(f"#{ids.EDIT_KEEP} input[value='bottom']")
    generate(page, "query", count=1)
    wait_for_text(page, f"#{ids.GENERATE_STATUS}", "1 image from image 1 of")
    assert page.inner_text(f"#{ids.GENERATE_STATUS}").endswith("(keeping the bottom)")
    page.locator(f"#{ids.GENERATE_IMAGES} .add-button").first.click()
    wait_for_text(page, f"#{ids.GENERATE_IMAGES}", "in the space as item")
    page.wait_for_function(f"() => ({TRACE_LENGTH_JS})('generated') === 1")
    page.click(f"#{ids.EDIT_CLEAR}")
    wait_for_text(page, f"#{ids.EDIT_LABEL}", "not editing")
    page.screenshot(path=str(tmp_path / "edited.png"), full_page=True)


def test_two_sessions_generate_at_once_and_keep_their_own_state(chromium: object, base_url: str, tmp_path: Path) -> None:
    errors: list[str] = []
    pages = []
    for word in ("cat", "truck"):
        context, page = new_page(chromium, base_url, errors)
        open_map(page)
        search_text(page, word)
        pages.append((context, page, word))
    for _, page, _ in pages:
        generate(page, "query", count=3)
    for context, page, word in pages:
        wait_for_text(page, f"#{ids.GENERATE_STATUS}", f"3 images from {word}")
        assert finished_images(page) == 3
        other = "truck" if word == "cat" else "cat"
        assert other not in page.inner_text(f"#{ids.GENERATE_IMAGES}") and other not in page.inner_text(f"#{ids.GENERATE_STATUS}")
        page.screenshot(path=str(tmp_path / f"session-{word}.png"), full_page=True)
        context.close()
    assert not errors, f"JavaScript errors in the pages: {errors}"
