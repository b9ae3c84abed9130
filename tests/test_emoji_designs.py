"""The three npm emoji designs: fetched with `npm pack` at pinned versions, hash-checked, joined by code point, rendered.

The tarballs come from the npm registry (cached under data/cache/npm, git-ignored).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedspace.recipes.emoji import build_emoji_dataset, load_emoji_dataset
from embedspace.recipes.emoji_designs import (
    DESIGN_NAMES,
    NPM_DESIGNS,
    DesignFetchError,
    design_credit,
    fetch_design,
    load_icon_set,
    verify_integrity,
)

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm (the designs come from the npm registry)")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("designs")
    build_emoji_dataset(folder, limit=40, heldout_fraction=0.3, progress=False)
    return folder


def test_every_design_draws_the_same_concepts_with_the_same_caption_and_split(dataset: Path) -> None:
    table = load_emoji_dataset(dataset, designs=None)
    openmoji = load_emoji_dataset(dataset)  # the default: OpenMoji only, one row per key as before
    assert set(openmoji["design"]) == {"openmoji"} and openmoji["key"].is_unique
    assert set(table["design"]) == set(DESIGN_NAMES)
    for name in NPM_DESIGNS:
        rows = table[table["design"] == name].set_index("key")
        assert len(rows) >= 0.7 * len(openmoji)  # each design draws most of these concepts
        same = openmoji.set_index("key").loc[rows.index]
        assert (rows[["caption", "base", "split", "group"]] == same[["caption", "base", "split", "group"]]).all().all()
        first = rows.iloc[0]
        drawn = np.asarray(Image.open(dataset / first["image"]).convert("RGB"), dtype=np.int16)
        original = np.asarray(Image.open(dataset / same.iloc[0]["image"]).convert("RGB"), dtype=np.int16)
        assert drawn.shape == original.shape and drawn.std() > 10  # a real drawing, not a blank tile
        assert np.abs(drawn - original).mean() > 5  # and another designer's


def test_a_tarball_that_is_not_the_pinned_one_is_refused(tmp_path: Path) -> None:
    design = NPM_DESIGNS["twemoji"]
    good = fetch_design(design)
    verify_integrity(good, design)
    tampered = tmp_path / design.tarball_name
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(DesignFetchError, match="sha512"):
        verify_integrity(tampered, design)
    with pytest.raises(DesignFetchError):
        load_icon_set("twemoji", cache_dir=tmp_path)  # the cache holds the tampered file: never parsed


def test_unknown_designs_and_credits(dataset: Path) -> None:
    with pytest.raises(ValueError, match="unknown emoji design"):
        load_icon_set("comic-sans")
    for name in DESIGN_NAMES:
        assert design_credit(name).split(" ")[0] in (dataset / "dataset.json").read_text()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert all(NPM_DESIGNS[name].title in readme for name in NPM_DESIGNS)
