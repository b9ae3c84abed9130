"""Training the default model's towers, and the demo space built from the same data (both on a small real dataset)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from embedspace import EmbeddingModel, Space
import torch

from embedspace.recipes.emoji import load_emoji_dataset, load_emoji_images
from embedspace.recipes.speech import VOICE_STYLES, load_speech_dataset
from embedspace.recipes.demo import MANNER_EVERY, PLAIN_VOICE, demo_space_state, refresh_demo_space
from embedspace.recipes.encoder_training import PRESETS, audio_target_text, augment_images, text_targets, train_encoder

TINY = replace(PRESETS["cpu"], image_epochs=2, audio_epochs=1, batch_size=32, warmup_steps=2)


def test_audio_targets_name_the_manner_but_not_the_speaker():
    assert audio_target_text("dog", VOICE_STYLES["whispered"].description) == "dog, whispered"
    assert audio_target_text("dog", VOICE_STYLES["shouted"].description) == "dog, shouted"
    for plain in ("normal", "heldout", "speaker-f1", "speaker-m3"):
        assert audio_target_text("dog", VOICE_STYLES[plain].description) == "dog"


def test_training_writes_a_loadable_documented_folder_and_is_reproducible(model, small_emoji_dataset, tmp_path, one_thread):
    first = train_encoder(small_emoji_dataset, tmp_path / "a", config=TINY, progress=False)
    second = train_encoder(small_emoji_dataset, tmp_path / "b", config=TINY, progress=False)
    record = json.loads((first / "training.json").read_text())
    assert record["weights_sha256"] == json.loads((second / "training.json").read_text())["weights_sha256"]
    assert record["config"]["image_epochs"] == 2 and len(record["loss_per_epoch"]["image"]["loss"]) == 2
    assert record["data"]["builder"] == "embedspace.recipes.emoji"
    readme = (first / "README.md").read_text()
    assert "## How these weights were made" in readme and record["weights_sha256"][:16] in readme

    trained = EmbeddingModel.load(first)
    shipped = model
    assert trained.fingerprint != shipped.fingerprint  # new weights, a new fingerprint: spaces will not mix them
    clip = small_emoji_dataset / load_speech_dataset(small_emoji_dataset)["audio"][0]
    vectors = trained.embed_audio([clip])
    assert vectors.shape == (1, 384) and np.isclose(np.linalg.norm(vectors), 1.0, atol=1e-5)
    # the frozen text tower is untouched by training
    assert np.allclose(trained.embed_text(["cat"]), shipped.embed_text(["cat"]), atol=1e-6)


def test_augmentations_change_every_image_but_keep_it_an_image(small_emoji_dataset):
    rows = load_emoji_dataset(small_emoji_dataset, designs=None).iloc[:32]
    images = torch.from_numpy(load_emoji_images(small_emoji_dataset, rows)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    first = augment_images(images, torch.Generator().manual_seed(0))
    again = augment_images(images, torch.Generator().manual_seed(0))
    other = augment_images(images, torch.Generator().manual_seed(1))
    assert first.shape == images.shape and first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, again) and not torch.equal(first, other)  # seeded, and random
    assert ((first - images).abs().flatten(1).mean(dim=1) > 0.005).all()  # no image passes unchanged


def test_the_alignment_term_pulls_images_onto_their_captions(small_emoji_dataset, tmp_path, one_thread):
    """The modality gap: with the alignment term an image's cosine to its own caption is higher than with the contrastive loss alone."""
    train = load_emoji_dataset(small_emoji_dataset)
    train = train[train["split"] == "train"]
    targets = text_targets(train["caption"].tolist(), small_emoji_dataset, "emoji-mini")
    matched = {}
    for weight in (0.0, 1.0):
        config = replace(TINY, image_epochs=4, audio_epochs=0, alignment_weight=weight)
        trained = EmbeddingModel.load(train_encoder(small_emoji_dataset, tmp_path / str(weight), config=config, progress=False))
        vectors = trained.embed_images([small_emoji_dataset / path for path in train["image"]])
        matched[weight] = float(np.sum(vectors * targets, axis=1).mean())
    assert matched[1.0] > matched[0.0] + 0.05, matched


def test_demo_space_is_rebuilt_only_when_made_with_other_weights(small_emoji_dataset, tmp_path, one_thread):
    out = tmp_path / "demo"
    state, moved, space = refresh_demo_space(out, small_emoji_dataset, progress=False)
    assert (state, moved) == ("missing", None) and demo_space_state(out) == "current"
    # every image and caption, and the spoken captions in the demo voices only (not the extra training speakers)
    speech = load_speech_dataset(small_emoji_dataset)
    demo_styles = {name for name, style in VOICE_STYLES.items() if style.in_demo}
    assert "speaker-f1" not in demo_styles and {"normal", "whispered", "heldout"} <= demo_styles
    items = space.items
    drawn = load_emoji_dataset(small_emoji_dataset, designs=None)  # every design of every concept
    assert (items["modality"] == "image").sum() == len(drawn) and set(items["design"].dropna()) == set(drawn["design"])
    assert (items["modality"] == "text").sum() == speech["key"].nunique()
    # every caption in the plain voice; the other demo voices speak one concept in MANNER_EVERY
    sampled = set(load_emoji_dataset(small_emoji_dataset)["key"].iloc[::MANNER_EVERY])
    expected = speech[speech["style"].isin(demo_styles) & ((speech["style"] == PLAIN_VOICE) | speech["key"].isin(sampled))]
    audio = items[items["modality"] == "audio"]
    assert len(audio) == len(expected) < int(speech["style"].isin(demo_styles).sum()) and set(audio["style"]) == demo_styles
    assert refresh_demo_space(out, small_emoji_dataset, progress=False) == ("current", None, None)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["model"]["fingerprint"] = "0123456789abcdef"  # as if built before the weights were retrained
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert demo_space_state(out) == "stale"
    state, moved, space = refresh_demo_space(out, small_emoji_dataset, progress=False)
    assert state == "stale" and moved == tmp_path / "demo.stale-1"
    assert json.loads((moved / "manifest.json").read_text())["model"]["fingerprint"] == "0123456789abcdef"  # kept, not deleted
    assert demo_space_state(out) == "current" and len(Space.open(out)) == len(space)
