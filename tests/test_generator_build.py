"""Training a generator from the command line, and its quality report, on data the project builds."""

from __future__ import annotations

import json
from dataclasses import astuple

import numpy as np
import pytest

from conftest import build_tiny_generator
from embedspace.cli import main
from embedspace.generator import Generator
from embedspace.recipes import shapes
from embedspace.recipes.generator_data import RECIPES, embed_conditions, heldout_shape, load_generator_data
from embedspace.recipes.generator_report import ReportSettings, controllability, evaluate_generator, render_markdown


pytestmark = pytest.mark.usefixtures("one_thread")


def test_shapes_set_keeps_twelve_combinations_out_of_training():
    data = load_generator_data("shapes")
    assert data.images.shape == (216 * 16, 32, 32, 3) and data.images.dtype == np.uint8
    assert data.parts[0] == shapes.attribute_captions(*astuple(data.labels[0]))
    held_out = {data.captions[i] for i in np.flatnonzero(data.split == "test")}
    trained = {data.captions[i] for i in data.train}
    assert len(held_out) == 12 and not held_out & trained
    assert sum(heldout_shape(i) for i in range(216)) == 12


def test_emoji_set_is_shrunk_to_the_recipe_size_and_keeps_the_split(small_emoji_dataset):
    data = load_generator_data(small_emoji_dataset)
    size = RECIPES["emoji"].image_size
    assert data.images.shape[1:] == (size, size, 3) and data.full_size.shape[1:] == (64, 64, 3)
    assert set(data.split) == {"train", "test"} and len(data.captions) == len(data.images)


def test_the_prior_can_train_on_every_design_and_shares_each_emojis_caption_and_clip(small_emoji_dataset, model):
    openmoji = load_generator_data(small_emoji_dataset)
    every = load_generator_data(small_emoji_dataset, ("openmoji", "noto", "twemoji", "fluent"))
    assert len(openmoji.captions) < len(every.captions) <= 4 * len(openmoji.captions)
    assert every.captions[: len(openmoji.captions)] == openmoji.captions and set(every.keys) == set(openmoji.keys)
    images, captions, audio = embed_conditions(every, model)
    first = {key: every.keys.index(key) for key in every.keys}
    again = [row for row, key in enumerate(every.keys) if first[key] != row]  # the same emoji in another design
    assert again and all(np.array_equal(audio[row], audio[first[every.keys[row]]]) for row in again)
    assert all(np.allclose(captions[row], captions[first[every.keys[row]]]) for row in again)
    assert not np.allclose(images[again[0]], images[first[every.keys[again[0]]]])  # but not its image


def test_missing_dataset_says_how_to_build_it(tmp_path, capsys):
    assert main(["train", "tokenizer", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "g")]) == 2
    assert "embedspace data build" in capsys.readouterr().err
    assert main(["train", "generator", "--data", "shapes", "--out", str(tmp_path / "g")]) == 2
    assert "train tokenizer" in capsys.readouterr().err


def test_train_tokenizer_then_generator_writes_a_loadable_generator(tmp_path, model):
    out = tmp_path / "shapes"
    assert main(["train", "tokenizer", "--data", "shapes", "--out", str(out), "--epochs", "1"]) == 0
    record = json.loads((out / "training-tokenizer.json").read_text())
    assert len(record["loss_per_epoch"]) == 1 and record["train_images"] == 204 * 16
    assert main(["train", "generator", "--data", "shapes", "--out", str(out), "--epochs", "1"]) == 0
    generator = Generator.load(out, encoder_model_id=model.model_id)
    assert generator.tokenizer.config == RECIPES["shapes"].tokenizer
    result = generator.generate(model.embed_text(["red circle at the top left"]), n=2, seed=0)
    assert [image.size for image in result.images] == [(32, 32), (32, 32)]
    prior_record = json.loads((out / "training-prior.json").read_text())
    assert prior_record["settings"]["encoder_fingerprint"] == model.fingerprint
    recipe = RECIPES["shapes"]  # how the images were drawn and corrupted is recorded with the run
    assert (prior_record["settings"]["balance_groups"], prior_record["settings"]["token_noise"]) == (recipe.balance_groups, recipe.token_noise)

    # resuming with more epochs continues the stored run instead of starting again
    assert main(["train", "generator", "--data", "shapes", "--out", str(out), "--epochs", "2", "--resume"]) == 0
    assert len(json.loads((out / "training-prior.json").read_text())["loss_per_epoch"]) == 2


def test_report_separates_real_images_from_an_untrained_generator(model, small_emoji_dataset, tmp_path):
    settings = ReportSettings(emoji_per_split=8, diversity_conditions=3, diversity_samples=2, guidances=(1.0, 3.0),
                              temperatures=(1.3,), interpolation_pairs=2, interpolation_steps=3,
                              interpolation_seeds=1, shapes_samples=1, edit_pairs=3)
    generator = build_tiny_generator(model.model_id, model.embed_dim)
    metrics = evaluate_generator(generator, model, load_generator_data(small_emoji_dataset), generator, settings, "random")
    train = metrics["fidelity"]["splits"]["train"]
    # the encoder knows its training images; the untrained generator's noise retrieves far less
    assert train["ceiling: real images, full size"] > train["generated from text"] + 0.3
    leaning = metrics["fidelity"]["reliance"]["train"]  # an untrained prior does not lean on its condition
    assert set(leaning) == {"its caption", "another emoji's caption", "no condition (the null prefix)"}
    assert max(leaning.values()) - min(leaning.values()) < 0.1 * max(leaning.values())
    assert len(metrics["diversity"]) == 3 and all(row["pixel_diversity"] > 0 for row in metrics["diversity"])
    assert len(metrics["interpolation"]["mean_gap_per_step"]) == 3
    control = metrics["controllability"]
    assert control["analyser_on_clean_renders"] == 1.0 and control["combinations"] == {"seen": 204, "held out": 12}
    editing = metrics["editing"]
    assert editing["pairs"] == 3 and [row["keep"] for row in editing["regions"]] == ["top", "left"]
    for row in editing["regions"]:
        assert 0 <= row["pixel_difference_kept"] <= 1 and 0 < row["pixel_difference_redrawn"] <= 1
        assert -1 <= row["cosine_to_new_point_after"] <= 1 and 0 <= row["share_moved_toward_new_point"] <= 1
    markdown = render_markdown(metrics)
    for heading in ("Fidelity", "Diversity", "Interpolation", "Editing", "Controllability"):
        assert f"## {heading}" in markdown
    assert "| no condition (the null prefix) |" in markdown
    json.dumps(metrics)  # JSON-ready


def test_the_shipped_shapes_generator_draws_held_out_combinations_asked_for_by_caption_or_by_parts(model):
    control = controllability(Generator.load("shapes"), model, ReportSettings(shapes_samples=1))
    rows = {(row["condition"], row["guidance"], row["plausibility"]): row for row in control["generated"]}
    assert set(rows) == {("caption", 1.0, 0.0), ("caption", 3.0, 0.0), ("caption", 3.0, 0.1),
                         ("attributes composed", 1.0, 0.1), ("attributes composed", 3.0, 0.1)}
    for condition in ("caption", "attributes composed"):  # the aim: held-out combinations >= 0.5
        assert rows[(condition, 3.0, 0.1)]["held out"]["all"] >= 0.5
        assert rows[(condition, 3.0, 0.1)]["seen"]["all"] >= 0.75


def test_report_refuses_a_generator_for_another_model(model, small_emoji_dataset):
    generator = build_tiny_generator(model.model_id, model.embed_dim)
    generator.encoder_model_id = "another-model"
    with pytest.raises(ValueError, match="another-model"):
        evaluate_generator(generator, model, load_generator_data(small_emoji_dataset), None, ReportSettings(), "x")
