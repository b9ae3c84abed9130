"""One generation path: options and requests are checked once, where they are made; the space
picks the model's registered generator; images carry the same provenance whichever way they
were made (the API, the dashboard's jobs) and the space records it when they are added.

Real parts: the default model, a real space, the shipped emoji-mini generator and a tiny
random-weight generator (its images are noise; the flow is the real one).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_generator
from embedspace import EmbeddingModel, GenerationRequest, Generator, SamplingOptions, Space, SpaceError
from embedspace.generator import default_generator
from embedspace.provenance import GENERATED_KEY, read

pytestmark = pytest.mark.usefixtures("one_thread")

# -- sampling options ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("guidance", -1.0, ">= 0"),
        ("guidance", float("nan"), "finite"),
        ("guidance", "3", "finite number"),
        ("temperature", -0.5, ">= 0"),
        ("temperature", float("inf"), "finite"),
        ("top_k", 0, "integer >= 1"),
        ("top_k", 2.5, "integer >= 1"),
        ("top_p", 0.0, r"\(0, 1\]"),
        ("top_p", 1.5, r"\(0, 1\]"),
        ("plausibility", 1.0, r"\[0, 1\)"),
        ("seed", -1, "from 0 to 4294967295"),
        ("seed", 2**32, "from 0 to 4294967295"),
        ("seed", True, "integer"),
    ],
)
def test_a_bad_sampling_option_is_refused_naming_the_field_and_its_range(field: str, value: object, allowed: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}=.*: use .*{allowed}"):
        SamplingOptions(**{field: value})


def test_sampling_options_are_frozen_plain_numbers_and_replaced_only_through_a_new_check() -> None:
    options = SamplingOptions(guidance=np.float32(2.0), top_k=np.int64(5), seed=7)
    assert (options.guidance, options.top_k, options.seed) == (2.0, 5, 7)
    assert type(options.guidance) is float and type(options.top_k) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.guidance = 100.0  # type: ignore[misc]
    assert SamplingOptions.of(options, temperature=0.5) == SamplingOptions(guidance=2.0, top_k=5, seed=7, temperature=0.5)
    assert SamplingOptions.of(options) is options
    with pytest.raises(ValueError, match="temperature"):
        SamplingOptions.of(options, temperature=-1)
    with pytest.raises(TypeError, match="unknown sampling option 'temprature'; sampling options are guidance, .*temperature"):
        SamplingOptions.of(options, temprature=0.5)


# -- requests --------------------------------------------------------------------------------------


def unit(seed: int, dim: int = 384) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def test_a_request_holds_checked_read_only_unit_conditions_and_knows_its_seeds() -> None:
    request = GenerationRequest(unit(0) * 3, n=3, descriptions="kitten")
    assert request.conditions.shape == (1, 384) and request.conditions.dtype == np.float32
    assert np.isclose(np.linalg.norm(request.conditions[0]), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="read-only"):
        request.conditions[0, 0] = 1.0
    assert request.image_descriptions() == ("kitten",) * 3
    assert request.image_seeds(10).tolist() == [10, 11, 12]
    path = GenerationRequest.between(unit(1), unit(2), 4, "cat", "truck")
    assert path.descriptions == ("cat → truck (1/4)", "cat → truck (2/4)", "cat → truck (3/4)", "cat → truck (4/4)")
    assert path.image_seeds(5).tolist() == [5] * 4  # one seed along the path
    assert GenerationRequest(np.stack([unit(1), unit(2)]), n=1, seeds=[4, 9]).image_seeds(0).tolist() == [4, 9]


def test_a_composed_request_records_the_sum_of_its_parts_and_is_described_by_them() -> None:
    parts = np.stack([unit(1), unit(2) * 2, unit(3)])
    request = GenerationRequest.composed(parts, n=2, descriptions=["red shape", "circle", "shape at the top"])
    assert request.parts.shape == (1, 3, 384) and np.allclose(np.linalg.norm(request.parts, axis=2), 1, atol=1e-6)
    expected = request.parts[0].sum(axis=0)
    assert np.allclose(request.conditions[0], expected / np.linalg.norm(expected), atol=1e-6)
    assert request.image_descriptions() == ("red shape + circle + shape at the top",) * 2
    with pytest.raises(ValueError, match="one per part"):
        GenerationRequest.composed(parts, descriptions=["red shape"])
    with pytest.raises(ValueError, match=r"parts: give \(N=1, K >= 1, D=384\)"):
        GenerationRequest(unit(1), parts=np.ones((2, 1, 384)))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"conditions": np.zeros((1, 8), np.float32)}, r"condition vectors: rows \[0\] are all zeros"),
        ({"conditions": np.full((2, 8), np.nan)}, r"condition vectors: NaN or infinite values in rows \[0, 1\]"),
        ({"conditions": np.zeros((0, 8), np.float32)}, "none given"),
        ({"conditions": np.ones((2, 2, 8))}, r"shape \(2, 2, 8\)"),
        ({"conditions": np.ones(8), "n": 0}, r"^n=0: use an integer >= 1"),
        ({"conditions": np.ones((2, 8)), "descriptions": ("only one",)}, "one string per condition"),
        ({"conditions": np.ones(8), "n": 2, "seeds": [1, 2, 3]}, "seeds has 3 entries but 2 images"),
        ({"conditions": np.ones(8), "n": 1, "seeds": [-4]}, "seeds=-4"),
        ({"conditions": np.ones(8), "n": 1, "seeds": [1], "shared_seed": True}, "give one of them"),
    ],
)
def test_a_bad_request_is_refused_with_one_line_naming_what_is_wrong(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenerationRequest(**arguments)


def test_the_generator_checks_the_request_against_its_condition_dimension(model: EmbeddingModel) -> None:
    generator = build_tiny_generator(model.model_id, model.embed_dim)
    with pytest.raises(ValueError, match="condition vectors: got shape \\(1, 16\\); expected 384-dimensional vectors"):
        generator.generate(GenerationRequest(unit(0, 16)))
    with pytest.raises(TypeError, match="belong to the GenerationRequest"):
        generator.generate(GenerationRequest(unit(0)), n=2)
    with pytest.raises(ValueError, match="batch_size=0"):
        generator.generate(GenerationRequest(unit(0)), batch_size=0)


# -- the space picks the model's generator -----------------------------------------------------------


def test_generate_without_naming_a_generator_uses_the_models_registered_one(space: Space) -> None:
    assert default_generator(space.model_id) == "emoji-mini"
    result = space.generate("kitten", n=2, seed=3)
    named = space.generate("kitten", "emoji-mini", n=2, seed=3)  # the README's positional form
    shipped = Generator.load("emoji-mini")
    assert [image.size for image in result.images] == [(shipped.image_size, shipped.image_size)] * 2
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(result.images, named.images))
    assert result.seeds.tolist() == [3, 4] and result.descriptions == ("kitten", "kitten")
    path = space.generate_between("kitten", "truck", steps=3, seed=1, guidance=2.0)
    assert path.seeds.tolist() == [1, 1, 1] and path.descriptions[-1] == "kitten → truck (3/3)"
    with pytest.raises(ValueError, match="^guidance=-1"):
        space.generate("kitten", guidance=-1)
    drawn = space.generate("kitten", n=6, seed=3)
    best = space.generate("kitten", n=2, seed=3, best_of=3)  # the 2 of those 6 closest to "kitten"
    similarity = space.model.embed_images(drawn.images, progress=False) @ space.embed("kitten")
    assert best.seeds.tolist() == (3 + np.argsort(-similarity)[:2]).tolist()
    with pytest.raises(ValueError, match="best_of=0"):
        space.generate("kitten", best_of=0)
    parts = ["red shape", "circle", "shape at the top left"]
    assert (Generator.load("shapes").condition_parts, shipped.condition_parts) == (3, 1)
    composed = space.generate_composed(parts, "shapes", n=2, seed=3)
    assert composed.descriptions == ("red shape + circle + shape at the top left",) * 2
    expected = sum(space.embed(part) for part in parts)
    assert np.allclose(composed.conditions[0], expected / np.linalg.norm(expected), atol=1e-5)
    with pytest.raises(ValueError, match="3 points per image given; this generator takes 1 "):
        space.generate_composed(parts)  # emoji-mini's generator takes one point
    with pytest.raises(SpaceError, match="list of queries"):
        space.generate_composed("kitten")


def test_a_model_without_a_registered_generator_says_how_to_get_one(tmp_path: Path, model: EmbeddingModel) -> None:
    folder = model.save_pretrained(tmp_path / "other-model")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, name="my-model")))
    space = Space.create(tmp_path / "space", model=EmbeddingModel.load(folder))
    space.add_texts(["kitten"])
    with pytest.raises(SpaceError, match=r"model 'my-model' has no registered generator .*embedspace train generator --space SPACE --out G.*generator=G"):
        space.generate("kitten")
    with pytest.raises(SpaceError, match="no registered generator"):
        space.generate_between("kitten", "kitten", steps=2)


# -- provenance: one stamp, whichever way an image was made ---------------------------------------------


def test_provenance_is_stamped_identically_by_the_api_and_by_a_dashboard_job(space: Space, model: EmbeddingModel) -> None:
    from dashboard.jobs import DONE, JobManager, Settings, point_request
    from dashboard.runner import JobRunner

    generator = build_tiny_generator(model.model_id, model.embed_dim)
    from_api = space.generate("kitten", generator, n=2, seed=5, temperature=0.9, guidance=2.0)

    runner = JobRunner()
    manager = JobManager(lambda: generator, runner)
    manager.submit("session", point_request(space.embed("kitten"), "kitten", Settings(count=2, seed=5, temperature=0.9, guidance=2.0)))
    view = manager.wait("session", timeout=120)
    assert view.state == DONE, view.message
    from_job = [manager.image("session", view.id, index) for index in range(2)]
    manager.shutdown()
    runner.shutdown()

    for api_image, job_image in zip(from_api.images, from_job):
        assert np.array_equal(np.asarray(api_image), np.asarray(job_image))
        assert set(api_image.info[GENERATED_KEY]) == set(job_image.info[GENERATED_KEY]) == {"condition", "vector"}
        api, job = read(api_image), read(job_image)
        assert api.condition == job.condition == "kitten"
        np.testing.assert_array_equal(api.vector, job.vector)
        assert api.vector.dtype == np.float32 and np.isclose(api.vector @ space.embed("kitten"), 1.0, atol=1e-5)

    ids = space.add_images(from_api.images + from_job)
    added = space.items.set_index("id").loc[ids]
    assert added["generated"].tolist() == [True] * 4 and added["condition"].tolist() == ["kitten"] * 4
    np.testing.assert_allclose(added["fidelity"].to_numpy()[:2], added["fidelity"].to_numpy()[2:], atol=1e-6)
    expected = np.asarray([space.embed(item) @ read(image).vector for item, image in zip(ids, from_api.images + from_job)])
    np.testing.assert_allclose(added["fidelity"].to_numpy(), expected, atol=1e-5)


def test_an_image_without_a_stamp_or_with_a_malformed_one_is_not_recorded_as_generated(space: Space, media: dict) -> None:
    from PIL import Image

    forged = Image.open(media["red"]).convert("RGB")
    forged.info[GENERATED_KEY] = {"condition": "kitten", "vector": ["not", "numbers"]}
    ids = space.add_images([media["blue"], forged])
    assert "generated" not in space.items.columns or not space.items.set_index("id").loc[ids, "generated"].fillna(False).astype(bool).any()


def test_cli_generate_uses_the_models_generator_and_refuses_bad_options_in_one_line(space: Space, tmp_path: Path, capsys) -> None:
    from PIL import Image

    from embedspace.cli import main

    assert main(["generate", str(space.path), "--text", "kitten", "-n", "2", "--top-p", "0.9", "--out", str(tmp_path / "out")]) == 0
    shipped = Generator.load("emoji-mini")
    assert [Image.open(tmp_path / "out" / name).size for name in ("000.png", "001.png")] == [(shipped.image_size, shipped.image_size)] * 2
    capsys.readouterr()
    assert main(["generate", str(space.path), "--text", "kitten", "--temperature", "-1", "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.strip() == "embedspace: error: temperature=-1.0: use a finite number >= 0 (0 = greedy, 1 = plain sampling)"
    assert not (tmp_path / "bad").exists()


def test_cli_composes_attributes_with_the_shapes_generator(space: Space, tmp_path: Path, capsys) -> None:
    from PIL import Image

    from embedspace.cli import main
    from embedspace.recipes import shapes

    out = tmp_path / "composed"
    assert main(["generate", str(space.path), "--generator", "shapes", "--text", "red shape", "--and", "square",
                 "--and", "shape at the top left", "-n", "4", "--out", str(out)]) == 0
    readings = [shapes.analyse(Image.open(out / f"{number:03d}.png")) for number in range(4)]
    assert sum(reading == shapes.ShapeReading("red", "square", "top left") for reading in readings) >= 3
    capsys.readouterr()
    assert main(["generate", str(space.path), "--text", "kitten", "--and", "hat", "--out", str(tmp_path / "one")]) == 2
    assert "this generator takes 1 " in capsys.readouterr().err
    assert main(["generate", str(space.path), "--text", "a", "--to", "b", "--and", "c", "--out", str(tmp_path / "both")]) == 2
