"""The model registry and the three towers: shapes, norms, semantics, determinism, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import embedspace
from embedspace import EmbeddingModel
from embedspace.models import AudioDecodeError, ImageDecodeError, ModelLoadError


def test_registry_lists_default_and_open_clip_models():
    names = embedspace.list_models()
    assert "emoji-mini" in names
    assert "ViT-B-32-laion2b" in names


def test_text_embeddings_are_unit_float32_rows_with_minilm_semantics(model):
    vectors = model.embed_text(["kitten", "cat", "truck"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_embeddings_are_deterministic_across_loads(model):
    again = EmbeddingModel.load("emoji-mini")
    image = Image.new("RGB", (50, 50), (10, 200, 10))
    np.testing.assert_array_equal(model.embed_images([image]), again.embed_images([image]))
    np.testing.assert_array_equal(model.embed_text(["dog"]), again.embed_text(["dog"]))


def test_images_from_path_and_pil_agree(model, media):
    from_path = model.embed_images([media["red"]])
    from_pil = model.embed_images([Image.open(media["red"])])
    assert from_path.shape == (1, 384)
    np.testing.assert_allclose(from_path, from_pil, atol=1e-6)


def test_audio_from_file_and_array_at_other_rates(model, media):
    vectors = model.embed_audio([media["low"], media["high"], (np.zeros(8000, np.float32) + 0.01, 8000)])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_text_is_refused(model):
    with pytest.raises(ValueError, match="empty"):
        model.embed_text(["fine", "  "])


def test_corrupt_image_names_the_file(model, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageDecodeError, match="broken.png"):
        model.embed_images([bad])


def test_empty_and_non_audio_files_are_refused(model, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(AudioDecodeError, match="empty"):
        model.embed_audio([empty])
    with pytest.raises(AudioDecodeError, match="notes.wav"):
        model.embed_audio([text])


def test_unknown_model_name_says_how_to_list_models():
    with pytest.raises(ModelLoadError, match="embedspace models"):
        EmbeddingModel.load("no-such-model")


def test_model_folder_round_trip(model, tmp_path, media):
    folder = model.save_pretrained(tmp_path / "copy")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    loaded = EmbeddingModel.load(folder)
    np.testing.assert_allclose(loaded.embed_images([media["red"]]), model.embed_images([media["red"]]), atol=1e-6)
    np.testing.assert_allclose(loaded.embed_audio([media["low"]]), model.embed_audio([media["low"]]), atol=1e-6)


TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _save_tiny_open_clip(folder: Path) -> None:
    """A tiny open_clip model saved as open_clip's own local folder format (config + safetensors)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    clip = open_clip.CLIP(**TINY_CLIP)
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}}))
    save_file({key: value.contiguous() for key, value in clip.state_dict().items()}, str(folder / "open_clip_model.safetensors"))


def test_open_clip_architecture_loads_through_open_clip_from_a_local_checkpoint(tmp_path):
    _save_tiny_open_clip(tmp_path / "tiny-clip")
    config = {
        "name": "tiny-clip",
        "embed_dim": 32,
        "open_clip": {"architecture": f"local-dir:{tmp_path / 'tiny-clip'}"},
        "audio": None,
    }
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    tiny = EmbeddingModel.load(tmp_path / "model")
    assert tiny.embed_text(["a cat", "a dog"]).shape == (2, 32)
    assert tiny.embed_images([Image.new("RGB", (40, 40), "red")]).shape == (1, 32)
    with pytest.raises(ValueError, match="no audio tower"):
        tiny.embed_audio([(np.zeros(1000, np.float32), 16000)])


def test_named_pretrained_weights_without_internet_fail_with_a_hint(tmp_path):
    config = {"name": "offline", "embed_dim": 32, "open_clip": {"architecture": "ViT-B-32", "pretrained": str(tmp_path / "missing.pt")}, "audio": None}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="local checkpoint"):
        EmbeddingModel.load(tmp_path / "model")
