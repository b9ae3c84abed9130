"""Editing, token by token: keep a region of an image's tokens, sample the rest toward a new point.

Uses the tiny random-weight generator of conftest (an 8×8 grid of 64 codes): its images
are noise, but tokenizing, forcing and sampling are the real code paths.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedspace import Space, SpaceError
from embedspace.generator import Generator
from embedspace.generator.editing import keep_mask
from embedspace.models.model import ImageDecodeError


@pytest.fixture
def generator(tiny_generator_path: Path) -> Generator:
    return Generator.load(tiny_generator_path)


def picture(seed: int = 0, size: int = 48) -> Image.Image:
    """A random RGBA picture (the transparent parts become white before tokenizing)."""
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 4), dtype=np.uint8)
    return Image.fromarray(pixels, "RGBA")


def test_keep_regions_cover_the_named_part_of_the_grid() -> None:
    top = keep_mask("top", 8)
    assert top[:4].all() and not top[4:].any()
    assert keep_mask("bottom", 8)[4:].all() and not keep_mask("bottom", 8)[:4].any()
    assert keep_mask("left", 8)[:, :4].all() and not keep_mask("left", 8)[:, 4:].any()
    assert keep_mask("right", 8)[:, 4:].all() and not keep_mask("right", 8)[:, :4].any()
    centre = keep_mask("centre", 8)
    assert centre[2:6, 2:6].all() and centre.sum() == 16
    with pytest.raises(ValueError, match="use one of top, bottom, left, right, centre"):
        keep_mask("middle", 8)
    with pytest.raises(ValueError, match=r"expected a \(8, 8\) boolean array"):
        keep_mask(np.ones((4, 4), bool), 8)


def test_an_edit_keeps_the_kept_tokens_exactly_and_samples_the_rest(generator: Generator, model: object) -> None:
    image = picture()
    original = generator.tokenize([image])[0].numpy()  # (8, 8)
    condition = model.embed_text(["a red apple"])[0]
    result = generator.edit(image, condition, keep="top", n=4, seed=3)
    assert result.tokens.shape == (4, 8, 8) and len(result.images) == 4
    assert (result.tokens[:, :4] == original[:4]).all(), "kept tokens must come back unchanged"
    assert (result.tokens[:, 4:] != original[4:]).any(), "the free tokens are sampled anew"
    assert not all(np.array_equal(result.tokens[0], tokens) for tokens in result.tokens[1:])  # four different completions

    mask = np.zeros((8, 8), bool)
    mask[::2, ::2] = True  # any mask at the token resolution
    scattered = generator.edit(image, condition, keep=mask, n=2, seed=3)
    assert (scattered.tokens[:, mask] == original[mask]).all()

    # keeping everything gives the image's own tokens; keeping nothing is plain generation with the same seeds
    assert (generator.edit(image, condition, keep=np.ones((8, 8), bool), n=1).tokens[0] == original).all()
    free = generator.edit(image, condition, keep=np.zeros((8, 8), bool), n=2, seed=5)
    assert np.array_equal(free.tokens, generator.generate(condition, n=2, seed=5).tokens)


def test_an_edit_sees_the_kept_tokens_while_sampling(generator: Generator, model: object) -> None:
    condition = model.embed_text(["a boat"])[0]
    # greedy decoding (temperature 0): the free tokens are the prior's choice given what precedes them
    first = generator.edit(picture(1), condition, keep="top", n=1, temperature=0.0)
    second = generator.edit(picture(2), condition, keep="top", n=1, temperature=0.0)
    assert not np.array_equal(first.tokens[0, :4], second.tokens[0, :4]), "two pictures, two sets of kept tokens"
    assert not np.array_equal(first.tokens[0, 4:], second.tokens[0, 4:]), "other kept tokens: the rest follows them"


def test_space_edit_takes_an_item_a_path_or_an_edited_image(space: Space, tiny_generator_path: Path, tmp_path: Path) -> None:
    items = space.items
    image_item = int(items.loc[items["modality"] == "image", "id"].iloc[0])
    text_item = int(items.loc[items["modality"] == "text", "id"].iloc[0])
    result = space.edit(image_item, "kitten", keep="left", generator=tiny_generator_path, n=2, seed=0)
    assert len(result.images) == 2 and result.descriptions[0] == f"edit of item {image_item} toward kitten"
    again = space.edit(result.images[0], "puppy", keep="right", generator=tiny_generator_path, n=1)  # a chain of edits
    kept = Generator.load(tiny_generator_path).tokenize([result.images[0]])[0].numpy()
    assert (again.tokens[0][:, 4:] == kept[:, 4:]).all()
    path = tmp_path / "edit-me.png"
    picture(3).save(path)
    assert len(space.edit(path, "kitten", generator=tiny_generator_path, n=1).images) == 1
    before = len(space)
    with pytest.raises(SpaceError, match=f"item {text_item} is a text item"):
        space.edit(text_item, "kitten", generator=tiny_generator_path)
    with pytest.raises(ImageDecodeError):
        space.edit(tmp_path / "missing.png", "kitten", generator=tiny_generator_path)
    with pytest.raises(ValueError, match="use one of top"):
        space.edit(image_item, "kitten", keep="upper", generator=tiny_generator_path)
    assert len(space) == before  # editing never writes to the space


def test_cli_edit_writes_the_edited_images(space: Space, tiny_generator_path: Path, tmp_path: Path) -> None:
    items = space.items
    image_item = int(items.loc[items["modality"] == "image", "id"].iloc[0])
    out = tmp_path / "edits"
    command = [sys.executable, "-m", "embedspace.cli", "edit", str(space.path), "--item", str(image_item), "--text", "a boat",
               "--keep", "bottom", "-n", "2", "--generator", str(tiny_generator_path), "--out", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert sorted(path.name for path in out.glob("*.png")) == ["000.png", "001.png"] and "kept: bottom" in finished.stdout
    refused = subprocess.run(command[:7] + ["--text", "x", "--to-item", "1", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "exactly one new point" in refused.stderr
