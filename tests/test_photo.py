"""Photos: the real EfficientNet-Lite0 weights and real sample photographs.

scikit-learn ships two photographs (a Chinese temple, a flower); scikit-image's cat
(chelsea) is used when scikit-image is installed. Drawings must keep the tower's vector
exactly, a changed weights file must be refused, and a config without photo settings
must load and embed as before.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from embedspace import EmbeddingModel
from embedspace.errors import ModelLoadError
from embedspace.models.config import CONFIG_NAME, WEIGHTS_NAME, ModelConfig, PhotoConfig
from embedspace.models.photo import default_backbone_weights, load_backbone, photo_score
from embedspace.models.registry import resolve_model
from embedspace.recipes.emoji import default_svg_dir, render_svg

#: Emoji captions a photo is ranked among (a few per photo below, and everyday distractors).
WORDS = ["castle", "classical building", "Japanese castle", "cat", "cat face", "dog", "rocket", "pizza",
         "hot beverage", "automobile", "grinning face", "red heart", "deciduous tree", "house", "fish", "soccer ball"]
BUILDINGS = {"castle", "classical building", "Japanese castle", "house"}


@pytest.fixture(scope="module")
def without_photos(tmp_path_factory) -> EmbeddingModel:
    """emoji-mini loaded from a folder whose config.json has no photo settings, as every folder written before them."""
    config, weights = resolve_model("emoji-mini")
    folder = tmp_path_factory.mktemp("no-photo")
    data = config.to_dict()
    data.pop("photo", None)
    (folder / CONFIG_NAME).write_text(json.dumps(data, indent=2))
    shutil.copy(weights, folder / WEIGHTS_NAME)
    return EmbeddingModel.load(folder)


@pytest.fixture(scope="module")
def with_photos() -> EmbeddingModel:
    """emoji-mini with its photo settings (the defaults if it ships none)."""
    config, weights = resolve_model("emoji-mini")
    return EmbeddingModel.from_config(dataclasses.replace(config, photo=config.photo or PhotoConfig()), weights)


@pytest.fixture(scope="module")
def temple() -> Image.Image:
    return Image.fromarray(load_sample_image("china.jpg"))


def rank_of(vector: np.ndarray, word_vectors: np.ndarray, right: set[str]) -> int:
    """Position (0 = nearest) of the nearest right word among WORDS."""
    order = np.argsort(-(word_vectors @ vector))
    return next(position for position, index in enumerate(order) if WORDS[index] in right)


def test_a_photo_of_a_temple_lands_among_buildings_far_closer_than_with_the_tower_alone(with_photos, without_photos, temple):
    # (the v2 tower alone, trained with coloured backgrounds, ranks "house" first too, but at cosine 0.25 against 0.55 fused)
    words = with_photos.embed_text(WORDS)
    fused = with_photos.embed_images([temple])[0]
    alone = without_photos.embed_images([temple])[0]
    assert rank_of(fused, words, BUILDINGS) == 0
    assert np.max(words[[WORDS.index(word) for word in BUILDINGS]] @ fused) > np.max(words[[WORDS.index(word) for word in BUILDINGS]] @ alone) + 0.2


def test_a_photo_of_a_cat_lands_near_cat(with_photos, without_photos):
    skimage_data = pytest.importorskip("skimage.data")
    cat = Image.open(Path(skimage_data.__file__).parent / "chelsea.png")
    words = with_photos.embed_text(WORDS)
    assert rank_of(with_photos.embed_images([cat])[0], words, {"cat", "cat face"}) == 0
    assert rank_of(without_photos.embed_images([cat])[0], words, {"cat", "cat face"}) > 0


def test_drawings_keep_the_tower_vector_exactly(with_photos, without_photos, media):
    emoji = [Image.fromarray(render_svg(default_svg_dir() / f"{key}.svg", 64)) for key in ("1F431", "1F680", "2615", "1F3EF")]  # cat, rocket, coffee, castle
    drawings = emoji + [media["red"], media["blue"]]
    assert max(photo_score(Image.open(image).convert("RGB") if isinstance(image, Path) else image) for image in drawings) < PhotoConfig().photo_score_low
    np.testing.assert_array_equal(with_photos.embed_images(drawings), without_photos.embed_images(drawings))


def test_a_changed_weights_file_is_refused_before_it_is_read(tmp_path):
    changed = tmp_path / "efficientnet-lite0.pth"
    shutil.copy(default_backbone_weights(), changed)
    with open(changed, "r+b") as handle:
        handle.seek(1_000_000)
        byte = handle.read(1)
        handle.seek(1_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelLoadError, match=r"sha256 .* is not the pinned EfficientNet-Lite0 weights file .*reinstall"):
        load_backbone(changed)
    assert load_backbone().training is False  # the installed file is the pinned one


def test_loading_the_backbone_leaves_the_random_state_alone():
    state = torch.random.get_rng_state()
    load_backbone()
    assert torch.equal(torch.random.get_rng_state(), state)  # training seeds once, then loads models: runs stay reproducible


def test_a_config_without_photo_settings_loads_and_embeds_as_before(without_photos, temple):
    assert without_photos.photo is None and without_photos.config.photo is None
    config, weights = resolve_model(without_photos.config.name)
    data = json.loads(Path(weights.parent / CONFIG_NAME).read_text())
    data.pop("photo", None)
    # written back without a "photo" key: the same JSON, so the same fingerprint as before photos existed
    assert json.dumps(ModelConfig.from_dict(data).to_dict(), sort_keys=True) == json.dumps(data, sort_keys=True)
    tower = without_photos.clip.encode_image(without_photos.image_tensor([temple])).detach()
    np.testing.assert_allclose(without_photos.embed_images([temple])[0], (tower / tower.norm()).numpy()[0], atol=1e-6)


def test_photo_settings_are_checked_key_by_key():
    assert PhotoConfig.from_dict({}) == PhotoConfig()
    with pytest.raises(ValueError, match=r"'photo.weight' must be a number in \[0, 1\], got 2"):
        PhotoConfig.from_dict({"weight": 2})
    with pytest.raises(ValueError, match=r"unknown photo config keys \['topk'\]"):
        PhotoConfig.from_dict({"topk": 3})
    with pytest.raises(ValueError, match="'photo.backbone' must be one of"):
        PhotoConfig.from_dict({"backbone": "resnet50"})
    with pytest.raises(ValueError, match="must be below"):
        PhotoConfig.from_dict({"photo_score_low": 0.7, "photo_score_high": 0.6})
