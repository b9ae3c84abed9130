"""The space store: the only code that names files inside a space folder, and how it keeps them.

The store is used directly here, with small hand-made vectors (no model): a commit is
what a reader sees, dropped parts stay readable while retired, a crashed write's files
are swept, the write lock excludes other processes and is freed when its holder is killed,
and item files never resolve outside the space.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedspace import SpaceError
from embedspace.index import VectorIndex
from embedspace.projection import Projection
from embedspace.store import PENDING, RETAIN_SECONDS, SpaceStore
from embedspace.store_maps import SpaceProjection

ROOT = Path(__file__).resolve().parent.parent
#: Names of files and folders inside a space; only the store's modules may spell them.
SPACE_NAMES = ("manifest.json", "segments/", "thumbnails", "projections", "index.faiss", "index.json", PENDING, "current.json", "removed-")
STORE_MODULES = ("embedspace/store.py", "embedspace/store_maps.py", "embedspace/manifest.py")
DIM = 4
MODEL = {"id": "test-model", "source": "test-model", "fingerprint": "0123456789abcdef", "embed_dim": DIM}


def library_sources() -> list[Path]:
    return sorted((ROOT / "embedspace").rglob("*.py")) + sorted((ROOT / "dashboard").rglob("*.py"))


def strings_outside_docstrings(path: Path) -> list[tuple[int, str]]:
    """``(line, text)`` of every string constant in ``path`` (f-string parts included) that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_only_the_store_names_files_inside_a_space_folder() -> None:
    found = []
    for path in library_sources():
        relative = path.relative_to(ROOT).as_posix()
        if relative in STORE_MODULES:
            continue
        for line, text in strings_outside_docstrings(path):
            if any(name in text for name in SPACE_NAMES) or text == "media" or text.startswith("media/"):
                found.append(f"{relative}:{line}: {text[:80]!r}")
    assert not found, "files inside a space are named outside the store (use SpaceStore / Space methods):\n" + "\n".join(found)


def test_the_manifest_schema_is_read_only_by_the_store() -> None:
    importers = []
    for path in library_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if "embedspace.manifest" in modules:
                importers.append(path.relative_to(ROOT).as_posix())
    assert importers == ["embedspace/store.py"]


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def items(ids: range, label: str = "x") -> pd.DataFrame:
    return pd.DataFrame({"id": np.arange(ids.start, ids.stop, dtype=np.int64), "modality": "text", "label": [f"{label}{i}" for i in ids], "source": ""})


def add_part(store: SpaceStore, manifest: dict, count: int, seed: int = 0) -> dict:
    """One write through the store, as Space does it: reserve, write the part, commit."""
    with store.lock():
        revision, start = manifest["revision"] + 1, manifest["next_id"]
        name = store.part_name(revision, compacted=False)
        store.reserve((start, start + count), name)
        store.write_part(name, items(range(start, start + count)), unit_vectors(count, seed))
        return store.commit(manifest, dict(manifest, revision=revision, next_id=start + count, segments=manifest["segments"] + [name]))


@pytest.fixture
def store(tmp_path: Path) -> SpaceStore:
    store = SpaceStore(tmp_path / "space")
    store.create(MODEL, "Flat")
    return store


def test_a_commit_is_what_the_next_read_sees(store: SpaceStore) -> None:
    assert len(store.read().items) == 0
    manifest = add_part(store, store.read_manifest(), 3, seed=1)
    manifest = add_part(store, manifest, 2, seed=2)
    snapshot = store.read()
    assert snapshot.manifest == manifest and snapshot.manifest["revision"] == 2
    assert snapshot.items["id"].tolist() == [0, 1, 2, 3, 4] and snapshot.items["label"].tolist() == ["x0", "x1", "x2", "x3", "x4"]
    np.testing.assert_array_equal(snapshot.vectors, np.concatenate([unit_vectors(3, 1), unit_vectors(2, 2)]))
    assert snapshot.vectors.dtype == np.float32 and not (store.path / PENDING).exists()
    with store.lock():
        removed = store.write_tombstones(3, np.array([1, 3]))
        store.commit(manifest, dict(manifest, revision=3, removed=removed))
    assert store.read().removed.tolist() == [1, 3]


def test_a_dropped_part_stays_readable_until_its_retention_ends(store: SpaceStore) -> None:
    first = add_part(store, store.read_manifest(), 2)
    [old_part] = first["segments"]
    with store.lock():  # a compaction: one part replaces the old one
        merged = store.part_name(2, compacted=True)
        store.write_part(merged, items(range(0, 2)), unit_vectors(2))
        second = store.commit(first, dict(first, revision=2, segments=[merged]))
    assert [entry["files"] for entry in second["retired"]] == [[f"{old_part}.npy", f"{old_part}.parquet"]]
    store.load_part(old_part, DIM)  # a reader that read the first manifest can still open its part
    aged = dict(second, retired=[dict(entry, time=entry["time"] - RETAIN_SECONDS - 1) for entry in second["retired"]])
    with store.lock():
        third = store.commit(aged, dict(aged, revision=3))
    assert third["retired"] == [] and not (store.path / f"{old_part}.npy").exists()
    assert store.read().items["id"].tolist() == [0, 1]


def test_sweep_deletes_only_what_a_crashed_write_left(store: SpaceStore) -> None:
    manifest = add_part(store, store.read_manifest(), 2)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead, alive = int(finished.stdout), os.getpid()
    # a write killed before its commit: reserved ids 2-3, wrote a thumbnail, a sound and half a part
    store.reserve((2, 4), store.part_name(2, compacted=False))
    store.write_thumbnail(2, Image.new("RGB", (200, 100), "red"))
    store.write_audio(3, np.zeros(160, np.float32), 16_000)
    (store.path / "segments" / "00000002.parquet").write_bytes(b"half")
    (store.path / "segments" / f".00000002.npy.tmp-{dead}").write_bytes(b"half")
    (store.path / "segments" / f".00000002.npy.tmp-{alive}").write_bytes(b"a live writer's")
    assert set(store.leftovers()) == {PENDING, f"segments/.00000002.npy.tmp-{dead}", f"segments/.00000002.npy.tmp-{alive}"}
    with store.lock():
        swept = {path.relative_to(store.path).as_posix() for path in store.sweep(manifest)}
    assert swept == {PENDING, "thumbnails/2.png", "media/3.wav", "segments/00000002.parquet", f"segments/.00000002.npy.tmp-{dead}"}
    assert store.leftovers() == [f"segments/.00000002.npy.tmp-{alive}"]
    assert store.read().items["id"].tolist() == [0, 1]


HOLDER = textwrap.dedent(
    """
    import sys, time
    from embedspace.store import SpaceStore

    with SpaceStore(sys.argv[1]).lock():
        print("held", flush=True)
        time.sleep(600)
    """
)


def test_the_write_lock_excludes_other_processes_and_is_freed_when_its_holder_is_killed(store: SpaceStore) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        acquired = threading.Event()

        def write() -> None:
            with store.lock():
                acquired.set()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert not acquired.wait(1.0)  # the holder never lets go on its own
        os.kill(holder.pid, signal.SIGKILL)
        assert acquired.wait(60)  # the OS released the dead holder's lock
        writer.join(60)
    finally:
        holder.kill()
        holder.wait()


def test_item_files_never_resolve_outside_the_space(store: SpaceStore, tmp_path: Path) -> None:
    store.write_thumbnail(7, Image.new("RGB", (300, 150), "blue"))
    thumbnail = store.thumbnail_path(7)
    assert thumbnail == (store.path / "thumbnails" / "7.png").resolve() and max(Image.open(thumbnail).size) == 96
    assert store.thumbnail_path(8) is None
    source = store.write_image(9, Image.new("RGB", (8, 8), "green"))
    assert store.source_path(source) == (store.path / "media" / "9.png").resolve()
    outside = tmp_path / "photo.png"
    assert store.source_path(str(outside)) == outside  # an original file added from disk
    for refused in ("../photo.png", "media/../../photo.png", "media/\0.png", "", None, 3):
        assert store.source_path(refused) is None, refused
    elsewhere = tmp_path / "elsewhere"
    (store.path / "thumbnails").rename(elsewhere)
    (store.path / "thumbnails").symlink_to(elsewhere, target_is_directory=True)
    assert (store.path / "thumbnails" / "7.png").is_file() and store.thumbnail_path(7) is None


def test_a_saved_index_is_trusted_only_with_its_stamp(store: SpaceStore) -> None:
    manifest = store.read_manifest()
    index = VectorIndex.build(unit_vectors(6), np.arange(6, dtype=np.int64), "HNSW8")
    with pytest.raises(ValueError, match="no saved index"):
        store.read_index(manifest)
    stamp = {"uid": manifest["uid"], "revision": 0, "covered": [], "removed": 0, "trained_on": 0}
    with store.lock():
        written = store.write_index(index, stamp)
    assert written["factory"] == "HNSW8" and written["bytes"] == (store.path / "index.faiss").stat().st_size
    loaded, read_stamp = store.read_index(manifest)
    assert len(loaded) == 6 and read_stamp == written
    other = dict(manifest, uid="0" * 32)
    with pytest.raises(ValueError, match="belongs to another space"):
        store.read_index(other)
    data = bytearray((store.path / "index.faiss").read_bytes())
    data[-1] ^= 0xFF
    (store.path / "index.faiss").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its stamp"):
        store.read_index(manifest)
    assert store.drop_index() == ["index.json", "index.faiss"] and store.index_stamp() is None


def test_a_stored_map_is_read_back_only_at_its_revision(store: SpaceStore) -> None:
    vectors = unit_vectors(5)
    projection = Projection()
    coordinates = projection.fit_transform(vectors)
    folder = store.write_map(SpaceProjection(np.arange(5, dtype=np.int64), coordinates, 4, projection))
    assert folder.parent == store.map_folder(2)
    stored = store.read_map(2, revision=4)
    np.testing.assert_array_equal(stored.coordinates, coordinates)
    assert store.read_map(2, revision=5) is None and store.read_map(2).revision == 4 and store.read_map(3) is None
    assert store.read_map(2, revision=4, load_model=False).projection is None


def test_creating_over_a_space_or_a_non_empty_folder_is_refused(store: SpaceStore, tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="already holds a space"):
        store.create(MODEL, "Flat")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(SpaceError, match="not an empty folder"):
        SpaceStore(tmp_path / "full").create(MODEL, "Flat")
    assert (tmp_path / "full" / "notes.txt").read_text() == "mine" and not SpaceStore(tmp_path / "full").exists()
