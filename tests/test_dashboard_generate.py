"""Generation in the dashboard without a browser: settings, requests, the job manager and the panel's logic.

Real parts: the default model, a real space and a tiny random-weight generator (its
images are noise; the flow is the real one).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from dash import Patch, no_update

from browser import build_space
from conftest import build_tiny_generator
from dashboard import figures, ids
from dashboard.access import SpaceAccess
from dashboard.generator_source import NO_GENERATOR, GeneratorSource
from dashboard.jobs import CANCELLED, DONE, FAILED, Job, JobManager, Settings, arithmetic_request, parse_settings, path_request, point_request
from dashboard.maps import SpaceMaps
from dashboard.panels import generate, search
from dashboard.panels import map as map_panel
from dashboard.runner import GENERATION, JobRunner
from dashboard.services import Services
from dashboard.state import decode_vector
from embedspace import Generator, arithmetic
from embedspace.provenance import GENERATED_KEY

# -- settings and requests (pure) ------------------------------------------------------------------


def test_settings_are_checked_with_messages_naming_the_allowed_range() -> None:
    assert parse_settings(3, "5", 7, 0.8, 2) == Settings(count=3, steps=5, seed=7, temperature=0.8, guidance=2.0)
    for values, message in [
        ((9, 5, 0, 1, 3), "number of images: give a whole number from 1 to 8"),
        ((0, 5, 0, 1, 3), "number of images"),
        ((2.5, 5, 0, 1, 3), "number of images"),
        ((4, 1, 0, 1, 3), "steps along the path: give a whole number from 2 to 12"),
        ((4, 13, 0, 1, 3), "steps along the path"),
        ((4, 5, -1, 1, 3), "seed"),
        ((4, 5, 0, None, 3), "temperature: give a number from 0 to 2"),
        ((4, 5, 0, 1, "lots"), "guidance: give a number from 0 to 10"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_settings(*values)


def unit(seed: int, dim: int = 16) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_a_path_request_runs_from_a_to_b_with_one_seed_and_arithmetic_is_a_minus_b_plus_c() -> None:
    a, b, c = unit(0), unit(1), unit(2)
    request = path_request(a, b, "cat", "truck", Settings(steps=5, seed=9))
    assert request.kind == "path" and request.title == "cat → truck" and request.image_count == 5
    assert np.allclose(request.vectors[0], a, atol=1e-6) and np.allclose(request.vectors[-1], b, atol=1e-6)
    assert [condition.seed for condition in request.conditions] == [9] * 5
    assert request.conditions[2].description == "cat → truck (3/5)"
    assert Job("s", request).captions == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    request = arithmetic_request((a, b, c), ("king", "man", "woman"), Settings(count=2))
    assert request.title == "king − man + woman" and request.image_count == 2
    assert np.allclose(request.vectors[0], arithmetic(a, b, c))
    assert Job("s", point_request(a, "cat", Settings(count=3, seed=4))).captions == ["seed 4", "seed 5", "seed 6"]


# -- the job manager with a real (tiny) generator ----------------------------------------------------


@pytest.fixture(scope="module")
def generator(model: object) -> Generator:
    return build_tiny_generator(model.model_id, model.embed_dim)


@pytest.fixture
def runner() -> Iterator[JobRunner]:
    """A job runner with two generation workers, stopped after the test."""
    runner = JobRunner({GENERATION: 2})
    yield runner
    runner.shutdown(timeout=60)


def test_a_job_reports_progress_and_previews_then_reproducible_images(generator: Generator, model: object, runner: JobRunner) -> None:
    reports: list[tuple[float, int]] = []
    manager = JobManager(lambda: generator, runner, on_update=lambda job: reports.append((job.progress, sum(bool(p) for p in job.previews))))
    vector = model.embed_text(["kitten"])[0]
    manager.submit("session", point_request(vector, "kitten", Settings(count=3, seed=5, temperature=0.9, guidance=2.0)))
    view = manager.wait("session", timeout=120)
    assert view.state == DONE and view.progress == 1.0 and view.message == "3 images from kitten"
    progress = [fraction for fraction, _ in reports]
    assert progress == sorted(progress) and 0 < progress[0] < 1 and len(set(progress)) >= 8  # one preview per grid row
    assert reports[0][1] == 3  # every image shows its partial grid from the first row on
    assert all(slot.finished and slot.uri.startswith("data:image/png;base64,") for slot in view.slots)
    expected = generator.generate(vector, n=3, seed=5, temperature=0.9, guidance=2.0)
    for index, wanted in enumerate(expected.images):
        image = manager.image("session", view.id, index)
        assert np.array_equal(np.asarray(image), np.asarray(wanted))
        assert image.info[GENERATED_KEY]["condition"] == "kitten"
    manager.shutdown()


def test_cancel_stops_sampling_at_the_next_token(generator: Generator, model: object, runner: JobRunner) -> None:
    def cancel_on_first_report(job: Job) -> None:
        if job.progress > 0:
            manager.cancel(job.session)

    manager = JobManager(lambda: generator, runner, preview_every=1, on_update=cancel_on_first_report)
    manager.submit("session", point_request(model.embed_text(["dog"])[0], "dog", Settings(count=8)))
    view = manager.wait("session", timeout=120)
    assert view.state == CANCELLED and view.message == "cancelled (0 of 8 images finished)"
    assert view.progress < 0.1 and not any(slot.finished for slot in view.slots)
    assert manager.cancel("session") is False  # nothing left to cancel
    with pytest.raises(ValueError, match="not finished"):
        manager.image("session", view.id, 0)
    manager.shutdown()


def test_two_sessions_generate_at_once_and_each_sees_only_its_own_job(generator: Generator, model: object, runner: JobRunner) -> None:
    both_running = threading.Barrier(2, timeout=60)
    met: set[str] = set()

    def meet(job: Job) -> None:  # each worker waits once until the other has sampled too: they overlap
        if job.session not in met and job.progress > 0:
            met.add(job.session)
            both_running.wait()

    manager = JobManager(lambda: generator, runner, on_update=meet)  # the runner's two generation workers
    cat, car = model.embed_text(["cat", "car"])
    first = manager.submit("alice", point_request(cat, "cat", Settings(count=2)))
    second = manager.submit("bob", path_request(cat, car, "cat", "car", Settings(steps=3)))
    alice, bob = manager.wait("alice", timeout=120), manager.wait("bob", timeout=120)
    assert (alice.state, bob.state) == (DONE, DONE) and met == {"alice", "bob"}
    assert (alice.id, alice.title, len(alice.slots)) == (first.id, "cat", 2)
    assert (bob.id, bob.title, len(bob.slots)) == (second.id, "cat → car", 3)
    assert manager.view("carol") is None
    with pytest.raises(ValueError, match="earlier generation"):
        manager.image("alice", bob.id, 0)  # another session's job is out of reach
    replaced = manager.submit("alice", point_request(car, "car", Settings(count=1)))
    assert manager.wait("alice", timeout=120).id == replaced.id
    manager.shutdown()


def test_generator_source_says_why_generation_is_unavailable(tiny_generator_path: Path, model: object, runner: JobRunner) -> None:
    assert GeneratorSource(None, model.model_id).problem() == NO_GENERATOR
    assert "no generator folder or named generator 'no-such'" in GeneratorSource("no-such", model.model_id).problem()
    assert GeneratorSource(tiny_generator_path, model.model_id).problem() is None
    with pytest.raises(ValueError, match="started without a generator"):
        GeneratorSource(None, model.model_id).get()
    with pytest.raises(ValueError, match="generation is unavailable: no generator folder or named generator 'no-such'"):
        GeneratorSource("no-such", model.model_id).get()
    with pytest.raises(ValueError, match="does not fit this space: .*other-model"):
        GeneratorSource(tiny_generator_path, "other-model").get()
    source = GeneratorSource(tiny_generator_path, model.model_id)
    assert source.get() is source.get()  # loaded once per source (each app owns one)
    manager = JobManager(GeneratorSource(tiny_generator_path, "other-model").get, runner)
    manager.submit("session", point_request(unit(0, model.embed_dim), "x", Settings(count=1)))
    view = manager.wait("session", timeout=60)
    assert view.state == FAILED and "does not fit this space" in view.message
    manager.shutdown()


# -- the panel's logic on a real space ----------------------------------------------------------------


@pytest.fixture(scope="module")
def built_space(tmp_path_factory: pytest.TempPathFactory, model: object) -> Path:
    """The 14-item space with its stored 2-D map; tests work on copies of it."""
    path = build_space(tmp_path_factory.mktemp("dashboard-generate"), model)
    services = Services.open(path, model=model)
    assert services.maps.wait_for_map("2d", timeout=120).state == "ready"
    services.shutdown()
    return path


@pytest.fixture
def services(built_space: Path, tmp_path: Path, model: object, tiny_generator_path: Path) -> Iterator[Services]:
    """An app's parts on a fresh copy of the space (tests add generated images to it), 2-D map ready."""
    shutil.copytree(built_space, tmp_path / "space")
    services = Services.open(tmp_path / "space", model=model, generator=tiny_generator_path)
    assert services.maps.wait_for_map("2d", timeout=120).state == "ready"
    yield services
    services.shutdown(timeout=60)


@pytest.fixture
def access(services: Services) -> SpaceAccess:
    return services.access


@pytest.fixture
def maps(services: Services) -> SpaceMaps:
    return services.maps


@pytest.fixture
def manager(services: Services) -> JobManager:
    return services.jobs


def item_id(access: SpaceAccess, label: str) -> int:
    items = access.space().items
    return int(items.loc[items["label"] == label, "id"].iloc[0])


VALUES = (2, 4, 0, 1.0, 3.0)  # images, steps, seed, temperature, guidance


def test_generate_from_a_search_then_add_an_image_to_the_space(access: SpaceAccess, maps: SpaceMaps, manager: JobManager) -> None:
    query, _ = search.search(access, [ids.SEARCH_TEXT], "kitten", None, None, "all", None, k=3)
    job, overlay, message = generate.start(access, manager, "session", "query", VALUES, None, query, None, None)
    assert message == "" and job["kind"] == "point" and job["title"] == "kitten"
    assert [entry["label"] for entry in overlay["conditions"]] == ["kitten"] and overlay["added"] == []
    manager.wait("session", timeout=120)
    images, status, percent, style, interval_off, cancel_off, seen = generate.poll(manager, "session", None)
    assert status == "2 images from kitten" and percent == "100" and interval_off and cancel_off
    assert generate.poll(manager, "session", seen)[0] is no_update  # unchanged: the images are not resent
    rendered = str(images.to_plotly_json())
    assert rendered.count("data:image/png;base64,") == 2 and rendered.count(ids.ADD_GENERATED) == 2

    count = access.count()
    overlay, message = generate.add_to_space(access, manager, "session", job, 1, overlay)
    assert message == ""
    (entry,) = overlay["added"]
    items = access.space().items.set_index("id")
    assert access.count() == count + 1 and items.loc[entry["id"], "label"] == "generated: kitten"
    assert bool(items.loc[entry["id"], "generated"]) and items.loc[entry["id"], "condition"] == "kitten"
    assert entry["fidelity"] == pytest.approx(float(items.loc[entry["id"], "fidelity"]), abs=1e-4)
    assert entry["fidelity"] == pytest.approx(float(decode_vector(entry["vector"]) @ decode_vector(query["vector"])), abs=1e-3)
    assert generate.add_to_space(access, manager, "session", job, 1, overlay) == (no_update, "")  # once only
    assert access.count() == count + 1
    assert "in the space as item" in str(generate.images_view(manager.view("session")).to_plotly_json())
    assert "similarity" in str(generate.added_view(overlay).to_plotly_json())

    highlight = map_panel.generation_highlight(maps, "2d", overlay)  # where it lands, next to its condition
    assert highlight.conditions.shape == (1, 2) and list(highlight.added_ids) == [entry["id"]]
    assert highlight.added.shape == (1, 2) and not np.isnan(highlight.added_origins).any()
    assert "similarity" in highlight.added_labels[0]


def test_edit_an_image_item_then_one_of_its_edits(access: SpaceAccess, manager: JobManager, services: Services) -> None:
    generator = services.generator.get()  # the tokens kept exactly are checked in tests/test_editing.py
    items = access.space().items
    image = int(items.loc[items["modality"] == "image", "id"].iloc[0])
    text = int(items.loc[items["modality"] == "text", "id"].iloc[0])
    assert generate.choose_edit(access, ids.EDIT_SELECTED, text, None)[1].startswith("the selected item is a text item")
    assert generate.choose_edit(access, ids.EDIT_SELECTED, None, None)[1].startswith("no image is selected")
    edit, message = generate.choose_edit(access, ids.EDIT_SELECTED, image, None)
    assert message == "" and edit["kind"] == "item" and "editing item" in generate.edit_text(edit)

    query, _ = search.search(access, [ids.SEARCH_TEXT], "kitten", None, None, "all", None, k=3)
    both_ends = {"a": {"description": "kitten", "vector": query["vector"]}, "b": {"description": "kitten", "vector": query["vector"]}, "c": None}
    assert generate.start(access, manager, "session", "path", VALUES, None, query, both_ends, None, edit, "top")[2].startswith("an edit redraws toward one point")
    job, overlay, message = generate.start(access, manager, "session", "query", VALUES, None, query, None, None, edit, "top")
    assert message == "" and job["kind"] == "edit" and job["title"].endswith("→ kitten (keeping the top)")
    manager.wait("session", timeout=120)
    first = manager.view("session")
    assert first.message.startswith("2 images from item") and all(slot.finished for slot in first.slots)
    assert ids.EDIT_GENERATED in str(generate.images_view(first).to_plotly_json())  # every finished image can be edited
    assert manager.image("session", job["id"], 0).size == (generator.image_size, generator.image_size)

    # a chain: edit the first edit, keeping its left half, toward the same query
    chained, _ = generate.choose_edit(access, {"type": ids.EDIT_GENERATED, "index": 0}, None, job)
    assert chained["kind"] == "generated" and chained["description"].startswith("image 1 of")
    job2, _, message = generate.start(access, manager, "session", "query", VALUES, None, query, None, overlay, chained, "left")
    assert message == "" and job2["title"].endswith("(keeping the left)")
    manager.wait("session", timeout=120)
    assert manager.view("session").message.startswith("2 images from image 1 of")
    assert generate.choose_edit(access, ids.EDIT_CLEAR, image, job2) == (None, "")


def test_interpolation_draws_its_path_and_arithmetic_uses_the_slots(access: SpaceAccess, maps: SpaceMaps, manager: JobManager) -> None:
    slots, message = generate.set_slot(access, None, "a", "selected", item_id(access, "cat"), None)
    assert message == "" and slots["a"]["description"] == "cat" and generate.slot_text(slots["b"]) == "empty"
    job, overlay, message = generate.start(access, manager, "session", "path", VALUES, None, None, slots, None)
    assert job is no_update and "slot B is empty" in message
    slots, _ = generate.set_slot(access, slots, "b", "selected", item_id(access, "truck"), None)
    job, overlay, message = generate.start(access, manager, "session", "path", VALUES, None, None, slots, None)
    assert message == "" and job["title"] == "cat → truck" and len(overlay["conditions"]) == 4
    view = manager.wait("session", timeout=120)
    assert [slot.caption for slot in view.slots] == ["1/4", "2/4", "3/4", "4/4"]
    assert "strip" in str(generate.images_view(view).to_plotly_json())

    ready = {"dims": "2d", "revision": access.space().revision, "placeable": True}
    figure, meta = map_panel.figure(maps, ready, "modality", None, None, None, overlay)
    assert isinstance(figure, go.Figure)
    path = figure.data[meta["base_traces"] + figures.OVERLAY_TRACE_COUNT]
    assert path.name == "generation path" and len(path.x) == 4  # the slerp path as a line of projected points
    patch, _ = map_panel.figure(maps, ready, "modality", None, None, meta, overlay)
    assert isinstance(patch, Patch)

    _, message = generate.set_slot(access, slots, "c", "query", None, None)
    assert "no search query" in message
    query, _ = search.search(access, [ids.SEARCH_TEXT], "ocean", None, None, "all", None, k=3)
    slots, _ = generate.set_slot(access, slots, "c", "query", None, query)
    job, _, message = generate.start(access, manager, "session", "arithmetic", VALUES, None, None, slots, overlay)
    assert message == "" and job["title"] == "cat − truck + ocean"
    assert manager.wait("session", timeout=120).state == DONE


def test_start_reports_what_is_missing_or_out_of_range(access: SpaceAccess, manager: JobManager) -> None:
    assert "no point is selected" in generate.start(access, manager, "session", "selected", VALUES, None, None, None, None)[2]
    assert "number of images" in generate.start(access, manager, "session", "selected", (20, 4, 0, 1, 3), 1, None, None, None)[2]
    job, _, message = generate.start(access, manager, "session", "selected", VALUES, item_id(access, "red circle"), None, None, None)
    assert message == "" and job["title"] == "red circle"
    assert generate.status_view(None) == ("", "0", {"display": "none"}, True, True)
    assert generate.add_to_space(access, manager, "session", None, 0, None)[1].startswith("nothing to add")


def test_generation_traces_escape_labels_and_carry_added_ids() -> None:
    overlay = figures.GenerationOverlay(
        conditions=np.array([[0.0, 0.0], [1.0, 1.0]]),
        condition_labels=["<b>a</b>", "b"],
        added=np.array([[2.0, 2.0]]),
        added_ids=np.array([42]),
        added_labels=["generated from <i>x</i>"],
        added_origins=np.array([[0.0, 0.0]]),
    )
    path, links, added = figures.generation_traces(2, overlay)
    assert list(path.hovertext) == ["&lt;b&gt;a&lt;/b&gt;", "b"] and path.mode == "lines+markers"
    assert list(links.x[:2]) == [0.0, 2.0] and np.isnan(links.x[2])
    assert list(added.customdata) == [42] and added.hovertext[0] == "generated from &lt;i&gt;x&lt;/i&gt;"
    empty = figures.generation_traces(3)
    assert len(empty) == figures.GENERATION_TRACE_COUNT and all(isinstance(trace, go.Scatter3d) and len(trace.x) == 0 for trace in empty)


def test_the_page_says_when_there_is_no_generator_and_disables_generate(access: SpaceAccess) -> None:
    for spec, message in ((None, NO_GENERATOR), ("no-such", "there is no generator folder or named generator 'no-such'")):
        layout = generate.layout(GeneratorSource(spec, access.model_id()))
        assert message in str(layout.to_plotly_json())
        (button,) = [node for node in walk(layout) if getattr(node, "id", None) == ids.GENERATE_BUTTON]
        assert button.disabled is True


def walk(component: object) -> list:
    """Every component in a Dash layout tree."""
    children = getattr(component, "children", None)
    nested = children if isinstance(children, list) else [children] if children is not None else []
    return [component] + [node for child in nested if hasattr(child, "to_plotly_json") for node in walk(child)]
