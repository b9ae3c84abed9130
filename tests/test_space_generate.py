"""Space.generate: a query becomes images through a generator tied to the space's model; results go back in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedspace import Generator, SpaceError
from embedspace.generator import Prior, PriorConfig, TokenizerConfig, VQTokenizer


def tiny_generator(encoder_model_id: str) -> Generator:
    torch.manual_seed(0)
    tokenizer = VQTokenizer(TokenizerConfig(image_size=16, widths=(8, 16, 16), codebook_size=32, code_dim=8)).eval()
    prior = Prior(PriorConfig(vocab_size=32, grid_size=4, condition_dim=384, n_prefix=2, n_layer=2, n_head=2, n_embd=32)).eval()
    return Generator(tokenizer, prior, encoder_model_id)


def test_generate_from_text_and_item_then_add_back(space, tmp_path):
    folder = tmp_path / "generator"
    tiny_generator("emoji-mini").save_pretrained(folder)
    result = space.generate("kitten", generator=folder, n=2, seed=3)
    assert len(result.images) == 2 and result.images[0].size == (16, 16)
    again = space.generate("kitten", generator=folder, n=2, seed=3)
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(again.images[0]))
    cat = int(space.items.query("label == 'cat'")["id"].item())
    assert len(space.generate(cat, generator=folder, n=1).images) == 1

    ids = space.add_images(result.images)
    added = space.items.set_index("id").loc[ids]
    assert added["generated"].tolist() == [True, True]
    assert added["condition"].tolist() == ["kitten", "kitten"]
    assert added["fidelity"].between(-1, 1).all()
    assert all(space.source_path(item).is_file() for item in ids)


def test_a_generator_for_another_model_is_refused(space):
    with pytest.raises(ValueError, match="other-model"):
        space.generate("kitten", generator=tiny_generator("other-model"))


def test_missing_generator_names_what_is_available(space):
    with pytest.raises(ValueError, match="no generator folder or named generator"):
        space.generate("kitten", generator="no-such-generator")
    with pytest.raises(SpaceError, match="empty"):
        space.generate("  ", generator=tiny_generator("emoji-mini"))


def test_cli_generate_writes_images_and_a_path_strip(space, tmp_path):
    from PIL import Image

    from embedspace.cli import main

    folder = tmp_path / "generator"
    tiny_generator("emoji-mini").save_pretrained(folder)
    assert main(["generate", str(space.path), "--text", "kitten", "-n", "3", "--generator", str(folder), "--out", str(tmp_path / "one")]) == 0
    assert sorted(path.name for path in (tmp_path / "one").iterdir()) == ["000.png", "001.png", "002.png"]
    assert main(["generate", str(space.path), "--text", "kitten", "--to", "truck", "--steps", "5", "--generator", str(folder), "--out", str(tmp_path / "path")]) == 0
    assert Image.open(tmp_path / "path" / "strip.png").size == (16 * 5, 16)
    assert main(["generate", str(space.path), "--generator", str(folder), "--out", str(tmp_path / "none")]) == 2
