"""Large spaces at small N: memory-mapped parts, adds that never rewrite, the approximate index with exact
re-ranking above a (lowered) threshold, index trust, compaction and float16 storage."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest

from embedspace import Space
from embedspace.exact import gather_rows, search_blocks
from embedspace.index import THRESHOLD_VARIABLE, choose_factory, IndexSettings
from embedspace.models import EmbeddingModel

DIM = 384


@pytest.fixture(scope="module")
def model() -> EmbeddingModel:
    return EmbeddingModel.load("emoji-mini")


def clustered(count: int, seed: int = 0, latent: int = 32) -> np.ndarray:
    """Unit vectors in 200 clusters of a ``latent``-dimensional subspace (as real embeddings are), plus a little noise."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(latent, DIM)).astype(np.float32)
    centres = np.random.default_rng(98).normal(size=(200, latent)).astype(np.float32)
    points = centres[rng.integers(0, 200, count)] + 0.5 * rng.normal(size=(count, latent)).astype(np.float32)
    vectors = points @ basis + 0.05 * rng.normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def labels(count: int, prefix: str = "v") -> list[str]:
    return [f"{prefix}{number}" for number in range(count)]


def part_files(space: Space) -> dict[str, tuple[int, int]]:
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (space.path / "segments").iterdir()}


def test_exact_search_over_blocks_equals_one_matrix_product() -> None:
    vectors = clustered(5000, seed=1)
    blocks = [vectors[:1200], vectors[1200:1201], vectors[1201:]]
    queries = clustered(7, seed=2)
    mask = np.random.default_rng(3).random(len(vectors)) < 0.5
    masks = [mask[:1200], mask[1200:1201], mask[1201:]]
    scores, positions = search_blocks(blocks, queries, 10, masks)
    expected = np.where(mask[None, :], queries @ vectors.T, -np.inf)
    truth = np.argsort(-expected, axis=1)[:, :10]
    np.testing.assert_array_equal(positions, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(expected, truth, axis=1), atol=1e-5)
    single, where = search_blocks(blocks, queries[:1], 3)
    np.testing.assert_array_equal(where[0], np.argsort(-(vectors @ queries[0]))[:3])
    offsets = np.array([0, 1200, 1201, 5000])
    np.testing.assert_array_equal(gather_rows(blocks, offsets, np.array([4999, 0, 1200])), vectors[[4999, 0, 1200]])
    few, none = search_blocks([vectors[:3]], queries[:1], 5)
    assert (none[0, 3:] == -1).all() and (none[0, :3] >= 0).all()


def test_an_opened_space_maps_its_vectors_and_an_add_never_rewrites_a_part(tmp_path, model) -> None:
    space = Space.create(tmp_path / "s", model=model)
    vectors = clustered(3000)
    space.add_vectors(vectors[:2000], labels(2000))
    before = part_files(space)
    space.add_vectors(vectors[2000:], labels(1000, "w"))
    after = part_files(space)
    assert all(after[name] == stat for name, stat in before.items())  # same inode, same mtime: never rewritten or copied
    assert len(after) == len(before) + 2  # one new part: its table and its vectors
    reopened = Space.open(space.path, model=model)
    assert all(isinstance(part.vectors, np.memmap) for part in reopened._rows.parts)
    np.testing.assert_array_equal(reopened.vectors_of([5, 2500]), vectors[[5, 2500]])
    batches = list(reopened.iter_vectors(batch_rows=700))
    assert sum(len(ids) for ids, _ in batches) == 3000 and len(batches) == 5
    np.testing.assert_array_equal(np.concatenate([block for _, block in batches]), vectors)


def test_above_the_threshold_search_is_approximate_with_exact_scores_and_high_recall(tmp_path, model, monkeypatch) -> None:
    monkeypatch.setenv(THRESHOLD_VARIABLE, "2000")
    assert choose_factory(1999, DIM) == "Flat" and choose_factory(20_000, DIM) == "IVF512_HNSW32,PQ48"
    vectors = clustered(12_000)
    space = Space.create(tmp_path / "s", model=model)
    space.add_vectors(vectors, labels(12_000))
    assert space.info()["search"].startswith("approximate (IVF512_HNSW32,PQ48)")
    queries = clustered(50, seed=7)
    hits = 0
    for query in queries:
        found = space.search(query, k=10)
        np.testing.assert_allclose(found["score"], vectors[found["id"]] @ query, atol=1e-5)  # re-ranked exactly
        hits += len(set(found["id"]) & set(np.argsort(-(vectors @ query))[:10]))
    assert hits / 500 >= 0.9
    assert (space.path / "index.faiss").exists()
    stamp = json.loads((space.path / "index.json").read_text())
    assert stamp["factory"] == "IVF512_HNSW32,PQ48" and stamp["trained_on"] == 12_000  # 64 per list, capped at the items
    evaluation = space.evaluate_index(queries=30, k=10)
    assert evaluation.recall >= 0.9 and evaluation.index_bytes_per_vector < 200


def test_adds_go_into_the_trained_index_and_a_reopen_catches_it_up(tmp_path, model, monkeypatch, caplog) -> None:
    monkeypatch.setenv(THRESHOLD_VARIABLE, "1000")
    vectors = clustered(6000)
    space = Space.create(tmp_path / "s", model=model)
    space.add_vectors(vectors[:5000], labels(5000))
    space.search(vectors[0], k=1)
    trained = json.loads((space.path / "index.json").read_text())["trained_on"]
    space.add_vectors(vectors[5000:], labels(1000, "new"))
    assert space.search(vectors[5500], k=1)["label"].item() == "new500"
    space.remove([5500])
    assert 5500 not in space.search(vectors[5500], k=5)["id"].tolist()
    space.close()
    with caplog.at_level(logging.INFO, logger="embedspace"):
        reopened = Space.open(space.path, model=model)
        assert reopened.search(vectors[5501], k=1)["label"].item() == "new501"
    assert "building the index" not in caplog.text  # loaded and caught up, not rebuilt
    assert json.loads((space.path / "index.json").read_text())["trained_on"] == trained


def test_a_damaged_or_foreign_index_is_never_trusted(tmp_path, model, monkeypatch, caplog) -> None:
    monkeypatch.setenv(THRESHOLD_VARIABLE, "1000")
    vectors = clustered(4000)
    first, second = (Space.create(tmp_path / name, model=model) for name in ("a", "b"))
    first.add_vectors(vectors, labels(4000, "a"))
    second.add_vectors(vectors[::-1].copy(), labels(4000, "b"))
    first.search(vectors[0], k=1), second.search(vectors[0], k=1)
    for name in ("index.faiss", "index.json"):  # another space's index, copied in
        shutil.copy(second.path / name, first.path / name)
    with caplog.at_level(logging.INFO, logger="embedspace"):
        assert Space.open(first.path, model=model).search(vectors[3], k=1)["label"].item() == "a3"
    assert "belongs to another space" in caplog.text
    data = bytearray((first.path / "index.faiss").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (first.path / "index.faiss").write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="embedspace"):
        assert Space.open(first.path, model=model).search(vectors[4], k=1)["label"].item() == "a4"
    assert "does not match its stamp" in caplog.text


def test_an_invalid_factory_is_one_line_before_anything_is_written(tmp_path, model) -> None:
    cli = [sys.executable, "-m", "embedspace.cli"]
    result = subprocess.run(cli + ["create", str(tmp_path / "s"), "--index", "IVF-nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "IVF-nonsense" in result.stderr
    assert not (tmp_path / "s").exists()
    space = Space.create(tmp_path / "t", model=model)
    space.add_vectors(clustered(300), labels(300))
    manifest = (space.path / "manifest.json").read_bytes()
    result = subprocess.run(cli + ["index", "build", str(space.path), "--factory", "PQ7x"], capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "PQ7x" in result.stderr
    assert (space.path / "manifest.json").read_bytes() == manifest and not (space.path / "index.faiss").exists()


def test_compaction_merges_parts_drops_removed_rows_and_readers_keep_working(tmp_path, model) -> None:
    space = Space.create(tmp_path / "s", model=model)
    vectors = clustered(900)
    for start in range(0, 900, 100):
        space.add_vectors(vectors[start : start + 100], labels(100, f"p{start}-"))
    space.remove([3, 450])
    reader = Space.open(space.path, model=model)
    assert space.compact() == 9
    assert len(space.store.read_manifest()["segments"]) == 1 and len(space._rows.ids) == 898  # removed rows are gone
    found = reader.search(vectors[10], k=1)  # an older reader still opens the retired parts
    assert found["id"].item() == 10
    reopened = Space.open(space.path, model=model)
    np.testing.assert_array_equal(reopened.vectors, np.delete(vectors, [3, 450], axis=0))
    assert reopened.items["label"].tolist()[:4] == ["p0-0", "p0-1", "p0-2", "p0-4"]


def test_parts_piling_up_are_merged_by_the_next_write(tmp_path, model, monkeypatch) -> None:
    import embedspace.store as store_module

    monkeypatch.setattr(store_module, "MAX_SEGMENTS", 4)
    space = Space.create(tmp_path / "s", model=model)
    vectors = clustered(60)
    for start in range(0, 60, 10):
        space.add_vectors(vectors[start : start + 10], labels(10, f"b{start}-"))
        assert len(space.store.read_manifest()["segments"]) <= 4
    np.testing.assert_array_equal(Space.open(space.path, model=model).vectors, vectors)


def test_a_float16_space_stores_half_the_bytes_and_ranks_the_same(tmp_path, model) -> None:
    vectors = clustered(2000)
    spaces = {dtype: Space.create(tmp_path / dtype, model=model, vector_dtype=dtype) for dtype in ("float32", "float16")}
    for space in spaces.values():
        space.add_vectors(vectors, labels(2000))
    sizes = {dtype: sum(path.stat().st_size for path in (space.path / "segments").glob("*.npy")) for dtype, space in spaces.items()}
    assert sizes["float16"] < 0.52 * sizes["float32"]
    half = Space.open(spaces["float16"].path, model=model)
    for query in clustered(10, seed=5):
        full, approx = spaces["float32"].search(query, k=5), half.search(query, k=5)
        assert full["id"].iloc[0] == approx["id"].iloc[0]
        np.testing.assert_allclose(approx["score"], full["score"], atol=2e-3)


def test_an_ingest_reservation_is_found_again_and_blocks_commit_once(tmp_path, model) -> None:
    space = Space.create(tmp_path / "s", model=model)
    space.add_vectors(clustered(5), labels(5))
    start, done = space.begin_ingest("0123456789abcdef", rows=20, block_rows=8)
    assert (start, done) == (5, set()) and space.add_vectors(clustered(1, seed=3), ["later"]) == [25]
    vectors = clustered(20, seed=4)
    import pandas as pd

    for block in range(3):
        ids = np.arange(start + 8 * block, min(start + 8 * block + 8, start + 20))
        frame = pd.DataFrame({"id": ids, "modality": "text", "label": [f"i{i}" for i in ids], "source": ""})
        space.store.write_part(space.store.ingest_part_name("0123456789abcdef", block), frame, vectors[ids - start])
    assert space.commit_ingest("0123456789abcdef", [2, 0]) == 12
    assert space.commit_ingest("0123456789abcdef", [0, 1, 2]) == 8  # block 0 and 2 again: skipped
    again = Space.open(space.path, model=model)
    assert again.begin_ingest("0123456789abcdef", rows=20, block_rows=8) == (5, {0, 1, 2})
    assert len(again) == 26 and sorted(again.items["id"]) == list(range(26))
    np.testing.assert_array_equal(again.vectors_of(np.arange(5, 25)), vectors)
    with pytest.raises(Exception, match="planned with 20 rows"):
        again.begin_ingest("0123456789abcdef", rows=21, block_rows=8)


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(THRESHOLD_VARIABLE, "12")
    assert IndexSettings.from_environment().ann_threshold == 12
    monkeypatch.setenv(THRESHOLD_VARIABLE, "many")
    with pytest.raises(ValueError, match="EMBEDSPACE_ANN_THRESHOLD"):
        IndexSettings.from_environment()


def test_an_index_built_below_the_threshold_is_the_one_searched_and_evaluated(tmp_path, model) -> None:
    space = Space.create(tmp_path / "space", model=model)
    space.add_vectors(clustered(3000), labels(3000))
    assert space.info()["search"] == "exact"
    factory = space.build_index()  # below the threshold: the size rule alone would search exactly
    assert factory.startswith("IVF") and space.factory == factory
    assert Space.open(space.path, model=model).info()["search"].startswith(f"approximate ({factory})")
    evaluation = space.evaluate_index(clustered(50, seed=5), k=10)
    assert evaluation.queries == 50 and evaluation.recall > 0.9 and evaluation.factory == factory
