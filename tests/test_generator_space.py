"""A generator for any space: `embedspace train generator --space` trains on the space's images, the space records it,
and `generate` / `edit` / `generate_between` use it without being told."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import write_image
from embedspace import EmbeddingModel, Space, SpaceError
from embedspace.cli import main
from embedspace.generator import Generator
from embedspace.recipes.generator_space import MAX_TRAIN_IMAGES, MIN_IMAGES, plan_training

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 170, 40), "yellow": (240, 200, 20)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, model: EmbeddingModel) -> tuple[Path, Path]:
    """A space of 24 coloured shapes (half with a caption linked by `key`) and a generator trained on it for one epoch."""
    root = tmp_path_factory.mktemp("space-generator")
    space = Space.create(root / "space", model=model)
    paths, captions = [], []
    for i in range(24):
        colour, shape = list(COLOURS)[i % 4], "circle" if i % 2 else "square"
        paths.append(write_image(root / f"{i}.png", tuple(max(0, v - 6 * (i // 4)) for v in COLOURS[colour]), shape))
        captions.append(f"{colour} {shape}")
    space.add_images(paths, metadata=[{"key": f"k{i}"} for i in range(24)])
    space.add_texts(captions[:12], metadata=[{"key": f"k{i}"} for i in range(12)])
    out = root / "generator"
    assert main(["train", "generator", "--space", str(space.path), "--out", str(out), "--epochs", "1"]) == 0
    return space.path, out


def test_the_trained_folder_loads_and_generates_for_that_space(trained, model, capsys, tmp_path):
    space_path, out = trained
    generator = Generator.load(out, encoder_model_id=model.model_id)
    result = generator.generate(model.embed_text(["red circle"]), n=2, seed=0)
    assert [image.size for image in result.images] == [(32, 32), (32, 32)]
    record = json.loads((out / "space-training.json").read_text())
    assert record["finished"] and record["counts"] == {"images": 24, "captions": 12, "sounds": 0, "skipped": 0}
    assert record["plan"]["recipe"]["tokenizer_epochs"] == 1 and record["estimate_s"] > 0
    assert json.loads((out / "training-prior.json").read_text())["settings"]["encoder_fingerprint"] == model.fingerprint
    # the CLI takes the folder too
    assert main(["generate", str(space_path), "--text", "blue square", "-n", "1", "--generator", str(out), "--out", str(tmp_path / "png")]) == 0
    assert (tmp_path / "png" / "000.png").is_file()


def test_space_generate_without_a_generator_uses_the_recorded_one(trained, model):
    space_path, out = trained
    space = Space.open(space_path, model=model)
    assert space.default_generator() == out.resolve()
    recorded = space.generate("red circle", n=2, seed=1)
    named = space.generate("red circle", generator=out, n=2, seed=1)
    assert (recorded.tokens == named.tokens).all()
    assert (space.generate("red circle", generator="emoji-mini", n=2, seed=1).tokens != recorded.tokens).any()
    item = int(space.items.query("modality == 'image'")["id"].iloc[0])
    assert len(space.edit(item, "blue square", keep="top", n=1).images) == 1
    assert len(space.generate_between("red circle", "blue square", steps=2).images) == 2


def test_the_dashboard_uses_the_recorded_generator_unless_told_otherwise(trained, model):
    from dashboard import create_app

    space_path, out = trained
    sources = {}
    for name, chosen in (("recorded", {}), ("named", {"generator": "emoji-mini"}), ("off", {"generator": None})):
        app = create_app(space_path, model=model, warm_up=False, **chosen)
        sources[name] = app.services.generator
        app.services.shutdown()
    assert sources["recorded"].spec == out.resolve() and sources["recorded"].problem() is None
    assert sources["named"].spec == "emoji-mini"
    assert sources["off"].problem() is not None  # the panel says how to turn generation on


def test_generator_set_takes_a_name_or_a_folder(space, tiny_generator_path, tmp_path):
    assert space.default_generator() == "emoji-mini"  # an emoji-mini space without a record: the shipped one
    assert main(["generator", "set", str(space.path), str(tiny_generator_path)]) == 0
    assert Space.open(space.path).default_generator() == tiny_generator_path.resolve()
    assert Space.open(space.path).generate("kitten", n=1).images[0].size == (32, 32)
    assert main(["generator", "set", str(space.path), "emoji-mini"]) == 0
    assert json.loads((space.path / "generator.json").read_text())["name"] == "emoji-mini"
    assert Space.open(space.path).default_generator() == "emoji-mini"
    assert main(["generator", "set", str(space.path), "none"]) == 0
    assert not (space.path / "generator.json").exists()
    assert main(["generator", "set", str(space.path), str(tmp_path / "nothing")]) == 2


def test_a_recorded_folder_inside_the_space_is_stored_relative(space, tiny_generator_path):
    inside = space.path / "my-generator"
    shutil.copytree(tiny_generator_path, inside)
    space.set_generator(inside)
    assert json.loads((space.path / "generator.json").read_text())["folder"] == "my-generator"
    assert Space.open(space.path).default_generator() == inside.resolve()


def test_a_recorded_folder_that_is_gone_or_changed_is_refused_with_a_clear_message(space, tiny_generator_path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_generator_path, copy)
    space.set_generator(copy)
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    with pytest.raises(SpaceError, match="no longer holds the generator"):
        space.generate("kitten", n=1)
    shutil.rmtree(copy)
    with pytest.raises(SpaceError, match="does not exist on this machine"):
        space.generate("kitten", n=1)


def test_a_shared_space_cannot_point_the_generator_elsewhere(space, tiny_generator_path):
    forged = [
        {"folder": str(tiny_generator_path), "fingerprint": "0" * 64},  # a folder of this machine the user never chose
        {"folder": "../../elsewhere", "fingerprint": "0" * 64},  # relative, out of the space
        {"name": "../../../tmp/x"},  # a name that is a path
        {"name": "emoji.mini"},
    ]
    for record in forged:
        with space.store.lock():
            space.store.write_generator_record(record)
        with pytest.raises(SpaceError, match="generator"):
            Space.open(space.path).generate("kitten", n=1)


def test_a_generator_for_another_model_is_not_recorded(space, tmp_path):
    from conftest import build_tiny_generator

    build_tiny_generator("other-model", 384).save_pretrained(tmp_path / "other")
    with pytest.raises(SpaceError, match="other-model"):
        space.set_generator(tmp_path / "other")
    assert not (space.path / "generator.json").exists()


def test_too_few_images_or_none_say_how_many_are_needed_and_write_nothing(space, model, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["train", "generator", "--space", str(space.path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"has 2 image(s); a generator needs at least {MIN_IMAGES}" in error
    texts = Space.create(tmp_path / "texts", model=model)
    texts.add_texts(["kitten", "cat"])
    assert main(["train", "generator", "--space", str(texts.path), "--out", str(out)]) == 2
    assert f"has no images; a generator needs at least {MIN_IMAGES}" in capsys.readouterr().err
    assert not out.exists() and not (space.path / "generator.json").exists() and not (texts.path / "generator.json").exists()


def test_resuming_an_interrupted_training_continues_it(trained, tmp_path):
    original, finished = trained
    space_path, out = tmp_path / "space", tmp_path / "generator"
    shutil.copytree(original, space_path)
    shutil.copytree(finished, out)
    first = json.loads((out / "training-prior.json").read_text())["loss_per_epoch"]
    tokenizer = (out / "tokenizer" / "model.safetensors").read_bytes()
    # what a run stopped during its prior leaves: the tokenizer and the prior's checkpoint, no generator yet
    (out / "config.json").unlink()
    shutil.rmtree(out / "prior")
    assert main(["train", "generator", "--space", str(space_path), "--out", str(out), "--epochs", "2", "--resume"]) == 0
    history = json.loads((out / "training-prior.json").read_text())["loss_per_epoch"]
    assert len(history) == 2 and history[0] == first[0]  # epoch 1 was kept, epoch 2 was trained
    assert (out / "tokenizer" / "model.safetensors").read_bytes() == tokenizer  # the written tokenizer was kept
    assert Generator.load(out).prior.config.grid_size == 8


def test_recipe_sizes_grow_with_the_number_of_images():
    small, medium, large = plan_training(50), plan_training(5_000), plan_training(500_000)
    assert small.recipe.tokenizer.codebook_size < medium.recipe.tokenizer.codebook_size < large.recipe.tokenizer.codebook_size
    assert small.recipe.n_embd < medium.recipe.n_embd < large.recipe.n_embd
    assert small.repeats > 1 and large.images == MAX_TRAIN_IMAGES and large.repeats == 1
    assert plan_training(50, epochs=3).recipe.prior_epochs == 3
    with pytest.raises(ValueError, match=f"at least {MIN_IMAGES}"):
        plan_training(MIN_IMAGES - 1)
