"""Space: round trips, persistence, cross-modal queries, removal, and every bad input leaving it unchanged."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedspace import Space, SpaceError
from embedspace.models import EmbeddingModel


def state(space: Space) -> tuple:
    """What a user could observe of a space on disk."""
    reopened = Space.open(space.path)
    return reopened.revision, len(reopened), reopened.items.to_json(), reopened.vectors.tobytes()


def test_text_search_finds_semantic_neighbours_best_first(space):
    results = space.search("kitten", k=3, modality="text")
    assert list(results.columns[:5]) == ["id", "modality", "label", "score", "source"]
    assert results["label"].tolist()[:2] == ["kitten", "cat"]
    assert results["score"].is_monotonic_decreasing
    assert "group" in results.columns


def test_search_returns_all_modalities_and_filters_by_modality(space):
    everything = space.search("a red circle", k=len(space))
    assert set(everything["modality"]) == {"text", "image", "audio"}
    images = space.search("a red circle", k=5, modality="image")
    assert set(images["modality"]) == {"image"} and len(images) == 2
    audio = space.search("a low hum", k=5, modality="audio")
    assert set(audio["modality"]) == {"audio"} and len(audio) == 2


def test_image_and_audio_files_find_themselves(space, media):
    assert space.search(media["red"], k=1)["label"].item() == "red"
    assert space.search(str(media["blue"]), k=1)["label"].item() == "blue"
    first = space.search(str(media["high"]), k=1)
    assert first["label"].item() == "high" and first["score"].item() == pytest.approx(1.0, abs=1e-4)


def test_query_by_id_vector_and_pil_image(space, media):
    cat = int(space.items.query("label == 'cat'")["id"].item())
    assert space.search(cat, k=1)["id"].item() == cat
    vector = space.embed("cat")
    assert vector.shape == (384,) and vector.dtype == np.float32
    assert space.search(vector * 5.0, k=1)["label"].item() == "cat"  # vectors are renormalised
    assert space.search(Image.open(media["red"]), k=1)["label"].item() == "red"


def test_neighbors_exclude_the_item_itself(space):
    dog = int(space.items.query("label == 'dog'")["id"].item())
    neighbours = space.neighbors(dog, k=3, modality="text")
    assert dog not in neighbours["id"].tolist() and len(neighbours) == 3
    assert neighbours["label"].iloc[0] == "puppy"


def test_everything_persists_after_reopen(space, model):
    before = space.search("ocean", k=4)
    reopened = Space.open(space.path, model=model)
    assert len(reopened) == len(space) == 12
    assert reopened.items.equals(space.items)
    np.testing.assert_array_equal(reopened.vectors, space.vectors)
    assert reopened.search("ocean", k=4)["id"].tolist() == before["id"].tolist()
    assert reopened.info()["by_modality"] == {"text": 8, "image": 2, "audio": 2}


def test_generated_images_from_memory_are_stored_in_the_space(space):
    [item] = space.add_images([Image.new("RGB", (32, 32), (0, 200, 0))], metadata={"generated": True})
    assert space.source_path(item).is_file() and space.thumbnail_path(item).is_file()
    moved = space.path.parent / "moved"
    shutil.move(space.path, moved)
    assert Space.open(moved).source_path(item).is_file()


def test_removal_hides_items_and_ids_are_never_reused(space, model):
    cat = int(space.items.query("label == 'cat'")["id"].item())
    assert space.remove([cat]) == 1
    assert cat not in space.search("kitten", k=len(space))["id"].tolist()
    reopened = Space.open(space.path, model=model)
    assert cat not in reopened.items["id"].tolist() and len(reopened) == 11
    [new_id] = reopened.add_texts(["cat again"])
    assert new_id > max(space.items["id"])
    with pytest.raises(SpaceError, match=f"no item with id {cat}"):
        reopened.neighbors(cat)


def test_a_graph_index_is_saved_and_rebuilt_when_stale(tmp_path, model):
    space = Space.create(tmp_path / "hnsw", model=model, factory="HNSW16")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 384)).astype(np.float32)
    space.add_vectors(vectors, [f"v{i}" for i in range(300)])
    assert space.search(vectors[3], k=1)["label"].item() == "v3"  # the first search builds and saves the index
    assert json.loads((space.path / "index.json").read_text())["revision"] == space.revision
    space.add_vectors(vectors[:1] * -1, ["opposite"])  # makes the saved index stale
    reopened = Space.open(space.path, model=model)
    assert reopened.search(-vectors[0], k=1)["label"].item() == "opposite"
    reopened.remove([0])  # HNSW cannot remove in place: the index is rebuilt
    assert 0 not in reopened.search(vectors[0], k=5)["id"].tolist()


# -- bad input: a clear error, and the space exactly as it was --------------------------------


def test_corrupt_image_adds_nothing_and_names_the_file(space, tmp_path, media):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"GIF89a garbage")
    before = state(space)
    with pytest.raises(SpaceError, match="corrupt.png") as error:
        space.add_images([media["red"], bad])
    assert "nothing was added" in str(error.value)
    assert state(space) == before


def test_skip_mode_adds_the_good_inputs(space, tmp_path, media, caplog):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8 nope")
    ids = space.add_images([media["red"], bad], on_error="skip")
    assert len(ids) == 1 and "corrupt.jpg" in caplog.text


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunk", b"hello, not audio"])
def test_bad_audio_adds_nothing(space, tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    before = state(space)
    with pytest.raises(SpaceError, match="bad.wav"):
        space.add_audio([bad])
    assert state(space) == before


def test_empty_text_adds_nothing(space):
    before = state(space)
    with pytest.raises(ValueError, match="empty"):
        space.add_texts(["fine", ""])
    with pytest.raises(SpaceError, match="empty"):
        space.search("   ")
    assert state(space) == before


def test_wrong_dimension_and_nan_vectors_are_refused(space):
    before = state(space)
    with pytest.raises(ValueError, match="384"):
        space.search(np.ones(512, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        space.add_vectors(np.full((1, 384), np.nan, np.float32), ["nan"])
    with pytest.raises(SpaceError, match="zeros"):
        space.search(np.zeros(384, np.float32))
    assert state(space) == before


def test_missing_files_and_unsupported_types(space, tmp_path):
    with pytest.raises(SpaceError, match="no such file"):
        space.search(str(tmp_path / "nowhere.png"))
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    before = state(space)
    with pytest.raises(SpaceError, match="unsupported file type"):
        space.add_files([notes])
    with pytest.raises(SpaceError, match="no such file or folder"):
        space.add_files([tmp_path / "missing-folder"])
    assert state(space) == before


def test_missing_space_folder_and_non_space_folder(tmp_path):
    with pytest.raises(SpaceError, match="does not exist"):
        Space.open(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SpaceError, match="not a space"):
        Space.open(tmp_path / "plain")


def test_unknown_model_and_bad_arguments(space, tmp_path):
    with pytest.raises(ValueError, match="unknown model"):
        Space.create(tmp_path / "x", model="no-such-model")
    assert not (tmp_path / "x" / "manifest.json").exists()
    with pytest.raises(SpaceError, match="modality"):
        space.search("cat", modality="video")
    with pytest.raises(SpaceError, match="k must be"):
        space.search("cat", k=0)
    with pytest.raises(SpaceError, match="already holds a space"):
        Space.create(space.path)


def test_a_space_refuses_another_models_vectors_and_queries(space, tmp_path, model):
    with pytest.raises(SpaceError, match="emoji-mini"):
        space.add_vectors(np.ones((1, 384), np.float32), ["x"], model_id="ViT-B-32-laion2b")
    other_folder = model.save_pretrained(tmp_path / "retrained")
    config = json.loads((other_folder / "config.json").read_text())
    config["name"] = "other-model"
    (other_folder / "config.json").write_text(json.dumps(config))
    other = EmbeddingModel.load(other_folder)
    with pytest.raises(SpaceError, match="was built with model 'emoji-mini'"):
        Space.open(space.path, model=other)
    manifest = json.loads((space.path / "manifest.json").read_text())
    manifest["model"]["fingerprint"] = "0000000000000000"
    (space.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SpaceError, match="not comparable"):
        Space.open(space.path).search("cat")


def test_per_modality_search_returns_the_best_of_each_modality_grouped(space):
    grouped = space.search("kitten", per_modality=2)
    assert list(grouped["modality"]) == ["text", "text", "image", "image", "audio", "audio"]
    for name, group in grouped.groupby("modality"):
        expected = space.search("kitten", k=2, modality=name)
        assert list(group["id"]) == list(expected["id"]) and group["score"].is_monotonic_decreasing
    assert space.search("kitten", k=10)["modality"].iloc[0] == "text"  # one ranking: texts come first
    around = space.neighbors(int(grouped["id"].iloc[0]), per_modality=1)
    assert int(grouped["id"].iloc[0]) not in set(around["id"]) and len(around) == 3
    with pytest.raises(SpaceError, match="either modality"):
        space.search("kitten", modality="text", per_modality=2)


def test_the_modality_gap_compares_matched_pairs_with_unmatched_ones(tmp_path, model, media):
    space = Space.create(tmp_path / "gap", model=model)
    space.add_texts(["a red circle", "a blue square", "a cat", "a dog"], metadata=[{"key": "red"}, {"key": "blue"}, {"key": "cat"}, {"key": "dog"}])
    space.add_images([media["red"], media["blue"]], metadata=[{"key": "red"}, {"key": "blue"}])
    space.add_audio([media["low"]])
    gap = space.modality_gap().set_index(["first", "second"])
    assert list(gap.index) == [("text", "image"), ("text", "audio"), ("image", "audio")]
    assert gap.loc[("text", "image"), "pairs"] == 2 and -1 <= gap.loc[("text", "image"), "matched"] <= 1
    assert gap.loc[("text", "audio"), "pairs"] == 0 and pd.isna(gap.loc[("text", "audio"), "matched"])  # the clip has no key
    assert (gap["centroid_distance"] > 0).all() and (gap["centroid_distance"] <= 2).all()
    by_hand = float(space.vectors_of([0])[0] @ space.vectors_of([4])[0] + space.vectors_of([1])[0] @ space.vectors_of([5])[0]) / 2
    assert gap.loc[("text", "image"), "matched"] == pytest.approx(by_hand, abs=1e-6)
