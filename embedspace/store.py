"""SpaceStore: a space folder on disk, and the only code that reads or writes inside it.

The folder's layout::

    SPACE/
      manifest.json            format version, model id + fingerprint, dimension, metric,
                               index factory string, revision, next id, part list, counts,
                               retired files (see :mod:`embedspace.manifest`)
      segments/<rev>.parquet   items added in one write: id, modality, label, source, metadata...
      segments/<rev>.npy       their vectors, float32 (n, D), L2-normalised, row-aligned
      removed-<rev>.npy        tombstoned ids (int64), if any
      thumbnails/<id>.png      small previews of image items
      media/<id>.png|.wav      images and sounds added from memory (e.g. generated ones)
      index.faiss, index.json  derived FAISS index (only for non-Flat factories) and its revision
      projections/             derived maps (see :mod:`embedspace.store_maps`)
      .lock                    the write lock (``filelock``, an OS lock released when its holder dies)
      .pending.json            ids and part of a write in progress (see :meth:`SpaceStore.reserve`)
      quarantine/              damaged parts set aside by ``embedspace check --repair``
      generator.json           the generator the space uses when none is named (optional; see
                               :mod:`embedspace.generator.recorded`)

**Durability.** Every file is written with :func:`embedspace.durable.write_atomic`
(temporary file, fsync, rename). A write is acknowledged when ``manifest.json`` naming it
has been durably replaced (:meth:`SpaceStore.commit`), so a crash at any moment leaves the
last acknowledged state readable. Writers hold :meth:`SpaceStore.lock`; readers never lock:
files an older manifest named are *retired*, not deleted, and kept :data:`RETAIN_SECONDS`
so that a reader that read that manifest can still open them; :meth:`SpaceStore.read` retries
when a writer replaced the files it was about to read. What a crashed write left behind
(its parts, temporary files, thumbnails and media of ids it reserved) is deleted by the next
writer (:meth:`SpaceStore.sweep`). Vectors and items are the source of truth; the index and
the maps are derived and rebuilt when missing, stale or damaged.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.format as npy_format
import pandas as pd
import soundfile
from filelock import FileLock
from PIL import Image

from embedspace.durable import process_alive, temporary_owner, write_atomic, write_bytes_atomic
from embedspace.errors import SpaceError
from embedspace.index import VectorIndex
from embedspace.manifest import INGEST_KEY, MANIFEST, new_manifest, read_manifest, retired_files, segment_files
from embedspace.store_maps import SpaceProjection, projection_folder, read_map, write_map

logger = logging.getLogger(__name__)

#: Columns every part's table has, in this order, before the metadata columns.
BASE_COLUMNS = ("id", "modality", "label", "source")
THUMBNAIL_SIZE = 96
#: Above this many parts, a write merges runs of neighbouring small parts (see :meth:`SpaceStore.compaction_runs`).
MAX_SEGMENTS = 64
#: Parts below this many rows are "small": merged with their small neighbours once parts pile up.
SMALL_PART_ROWS = 262_144
#: Rows copied at a time when parts are merged.
MERGE_CHUNK_ROWS = 65_536
#: Files an older revision used are kept this many seconds after they are dropped, so that
#: a reader that read the older manifest can still open them; later writes delete them.
RETAIN_SECONDS = 120.0
#: A reader retries this many times when a writer replaced the files it was about to read.
READ_ATTEMPTS = 8
#: Written before a write's files, removed after its manifest commit; names what to sweep after a crash.
PENDING = ".pending.json"
LOCK = ".lock"
SEGMENTS = "segments"
THUMBNAILS = "thumbnails"
MEDIA = "media"
QUARANTINE = "quarantine"
INDEX_FILE = "index.faiss"
INDEX_STAMP = "index.json"
GENERATOR_RECORD = "generator.json"


@dataclass(frozen=True)
class Part:
    """One stored part: its items (ids strictly increasing) and their ``(n, D)`` vectors.

    ``vectors`` is memory-mapped from ``<name>.npy`` (float32 or float16, as stored), so a
    part costs no memory until rows are read.
    """

    name: str
    items: pd.DataFrame
    vectors: np.ndarray

    @property
    def first_id(self) -> int:
        return int(self.items["id"].iloc[0]) if len(self.items) else -1


@dataclass(frozen=True)
class Snapshot:
    """What one manifest revision names, opened: its parts (in id order) and the tombstones.

    ``parts`` hold disjoint id ranges, ordered by id, so their items concatenated have ids
    strictly increasing; ``removed`` is ``(R,)`` int64 ids.
    """

    manifest: dict[str, Any]
    parts: tuple[Part, ...]
    removed: np.ndarray

    @property
    def items(self) -> pd.DataFrame:
        """All stored rows (live and removed): columns :data:`BASE_COLUMNS` plus metadata."""
        return concat_items(self.parts, self.manifest)

    @property
    def vectors(self) -> np.ndarray:
        """All stored vectors as one ``(N, D)`` float32 array, row-aligned with :attr:`items` (loads them all)."""
        dim = int(self.manifest["model"]["embed_dim"])
        blocks = [np.asarray(part.vectors, dtype=np.float32) for part in self.parts]
        return np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)

    @staticmethod
    def empty(manifest: dict[str, Any]) -> "Snapshot":
        """No items: the state of a new space with this manifest."""
        return Snapshot(manifest, (), np.zeros(0, np.int64))


def empty_items() -> pd.DataFrame:
    return pd.DataFrame({"id": np.zeros(0, np.int64), "modality": [], "label": [], "source": []})


def concat_items(parts: tuple[Part, ...], manifest: dict[str, Any] | None = None) -> pd.DataFrame:
    """The parts' items as one table (ids strictly increasing)."""
    frames = [part.items for part in parts if len(part.items)]
    if not frames:
        return empty_items()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _check_finite(path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> bool:
    """Whether the vectors stored at ``offset`` in ``path`` are all finite, read in chunks (nothing stays mapped)."""
    rows_per_chunk = max(1, (64 << 20) // max(1, shape[1] * dtype.itemsize))
    with open(path, "rb") as handle:
        handle.seek(offset)
        for start in range(0, shape[0], rows_per_chunk):
            count = min(rows_per_chunk, shape[0] - start)
            chunk = np.fromfile(handle, dtype=dtype, count=count * shape[1])
            if len(chunk) != count * shape[1] or not np.isfinite(chunk).all():
                return False
    return True


def value_kind(values: pd.Series) -> str | None:
    """``"number"``, ``"bool"`` or ``"text"`` for a metadata column, or None when empty or already mixed."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    if kind == "boolean":
        return "bool"
    if kind in ("string", "unicode"):
        return "text"
    return None


def _mergeable(items: pd.DataFrame) -> pd.DataFrame:
    """Columns of mixed kinds (from spaces written before kinds were checked) become text, so Parquet can store them."""
    items = items.copy()
    for column in items.columns:
        if column not in BASE_COLUMNS and items[column].dtype == object and value_kind(items[column].dropna()) is None:
            items[column] = items[column].map(lambda value: value if value is None or (isinstance(value, float) and np.isnan(value)) else str(value))
    return items


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0][:200] if str(error) else type(error).__name__


def _inside(path: Path, folder: Path) -> bool:
    return folder in path.parents


class SpaceStore:
    """The files of the space at ``path``. The constructor only stores the path.

    Every method that writes must run while :meth:`lock` is held, except :meth:`create`
    (a new folder) and :meth:`write_map` (derived data written whole, then renamed).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).absolute()

    def __repr__(self) -> str:
        return f"SpaceStore({str(self.path)!r})"

    # -- the manifest --------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether the folder holds a space (a ``manifest.json``, not yet validated)."""
        return (self.path / MANIFEST).exists()

    def check_new(self) -> None:
        """Raise :class:`SpaceError` unless a space can be created here (a new or empty folder)."""
        if self.exists():
            raise SpaceError(f"{self.path} already holds a space; open it with Space.open({str(self.path)!r})")
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise SpaceError(f"{self.path} exists and is not an empty folder; choose a new path for the space")

    def create(self, model: dict[str, Any], factory: str, vector_dtype: str = "float32") -> dict[str, Any]:
        """Create an empty space here for ``model`` (``{"id", "source", "fingerprint", "embed_dim"}``); returns its manifest.

        Raises:
            SpaceError: the folder is not new or empty, or cannot be written.
        """
        self.check_new()
        manifest = new_manifest(model, factory, vector_dtype)
        try:
            for folder in (SEGMENTS, THUMBNAILS, MEDIA):
                (self.path / folder).mkdir(parents=True, exist_ok=True)
            self.write_manifest(manifest)
        except OSError as error:
            raise SpaceError(f"cannot create a space at {self.path}: {error.strerror or error}; choose a folder you can write to") from None
        return manifest

    def read_manifest(self) -> dict[str, Any]:
        """The validated manifest (see :func:`embedspace.manifest.read_manifest`).

        Raises:
            SpaceError: no space here, or a damaged manifest (the message names the file).
        """
        return read_manifest(self.path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Durably replace the manifest as it is (no retiring; :meth:`commit` is the write path)."""
        write_bytes_atomic(self.path / MANIFEST, json.dumps(manifest, indent=2).encode())

    def commit(self, previous: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
        """Acknowledge a write: durably replace ``previous`` with ``manifest``; returns the manifest as written.

        Files ``previous`` named and ``manifest`` does not are retired, not deleted: readers
        that read ``previous`` may still open them for :data:`RETAIN_SECONDS`. Retired files
        older than that are deleted, only after the new manifest is durable. The write's
        ``.pending.json`` is removed.
        """
        now = time.time()
        dropped = sorted(segment_files(previous) - segment_files(manifest))
        retired = [entry for entry in previous.get("retired", []) if now - entry["time"] < RETAIN_SECONDS]
        expired = retired_files(previous) - retired_files({"retired": retired}) - segment_files(manifest)
        manifest = dict(manifest, retired=retired + ([{"time": now, "files": dropped}] if dropped else []))
        self.write_manifest(manifest)
        (self.path / PENDING).unlink(missing_ok=True)
        for name in expired:  # only after the new manifest is durable, and long after readers moved on
            (self.path / name).unlink(missing_ok=True)
        return manifest

    # -- items and vectors ---------------------------------------------------------------------

    def read(self) -> Snapshot:
        """The newest manifest and the parts it names, loaded as one version.

        A writer may replace the manifest between our reading it and opening its parts; then
        a part can be gone (kept :data:`RETAIN_SECONDS`, so only for slow readers): read the
        newest manifest and retry. A part missing from an unchanged manifest is damage.

        Raises:
            SpaceError: no space here, a damaged manifest or part (named), or a folder that
                kept changing during :data:`READ_ATTEMPTS` reads.
        """
        for _ in range(READ_ATTEMPTS):
            manifest = self.read_manifest()
            try:
                return self._load(manifest)
            except FileNotFoundError as error:
                missing = Path(error.filename or "?")
                if self.read_manifest()["revision"] == manifest["revision"]:
                    raise self._damaged(missing, "is named by the manifest but missing") from None
                time.sleep(0.01)
        raise SpaceError(f"{self.path} changed {READ_ATTEMPTS} times while it was being read; try again")

    def _load(self, manifest: dict[str, Any]) -> Snapshot:
        """Every part ``manifest`` names (see :meth:`load_part`), ordered by id, and its tombstones; FileNotFoundError if one is gone."""
        dim = int(manifest["model"]["embed_dim"])
        parts = [Part(name, *self.load_part(name, dim)) for name in manifest["segments"]]
        parts.sort(key=lambda part: (not len(part.items), part.first_id))
        last = -1
        for part in parts:
            ids = part.items["id"].to_numpy()
            if len(ids) and (ids[0] <= last or (np.diff(ids) <= 0).any() or ids[0] < 0):
                raise self._damaged(self.path / f"{part.name}.parquet", "holds ids that repeat, go backwards, are negative or overlap another part")
            last = int(ids[-1]) if len(ids) else last
        if last >= manifest["next_id"]:
            raise self._damaged(self.path / MANIFEST, f"next_id {manifest['next_id']} is not above the largest item id {last}")
        removed = self.load_tombstones(manifest["removed"]) if manifest.get("removed") else np.zeros(0, np.int64)
        return Snapshot(manifest, tuple(parts), removed)

    def _damaged(self, path: Path, what: str) -> SpaceError:
        return SpaceError(f"{path}: {what}; `embedspace check {self.path}` lists damaged parts and `--repair` sets them aside")

    def load_part(self, name: str, dim: int) -> tuple[pd.DataFrame, np.ndarray]:
        """One part's items and ``(n, dim)`` float32 vectors, checked: readable, row-aligned, finite, integer ids.

        Raises:
            FileNotFoundError: a file is missing (the caller decides whether a writer replaced it).
            SpaceError: a file is damaged (named).
        """
        table, matrix = self.path / f"{name}.parquet", self.path / f"{name}.npy"
        try:
            items = pd.read_parquet(table)
        except FileNotFoundError:
            raise FileNotFoundError(2, "No such file", str(table)) from None  # pyarrow's error names no file
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
            raise self._damaged(table, f"not a readable Parquet table ({_first_line(error)})") from None
        vectors = self.open_vectors(matrix, len(items), dim)
        missing = [column for column in BASE_COLUMNS if column not in items.columns]
        if missing:
            raise self._damaged(table, f"lacks the column(s) {', '.join(missing)}")
        if not pd.api.types.is_integer_dtype(items["id"]):
            raise self._damaged(table, "has non-integer ids")
        return items, vectors

    def open_vectors(self, matrix: Path, rows: int, dim: int) -> np.ndarray:
        """A part's ``(rows, dim)`` vectors, memory-mapped when stored as float32 or float16, checked finite in chunks.

        Raises:
            FileNotFoundError: the file is missing.
            SpaceError: the file is damaged, of another shape, not floats, or holds NaN or infinite values.
        """
        try:
            with open(matrix, "rb") as handle:
                version = npy_format.read_magic(handle)
                read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
                shape, fortran, dtype = read_header(handle, max_header_size=10_000)
                offset = handle.tell()
        except FileNotFoundError:
            raise
        except Exception as error:  # ValueError (not an .npy file, truncated header), OSError, EOFError
            raise self._damaged(matrix, f"not a readable vector file ({_first_line(error)})") from None
        if len(shape) != 2 or shape[1] != dim or dtype.kind != "f" or dtype.hasobject or fortran:
            raise self._damaged(matrix, f"holds a {dtype} array of shape {shape}, expected ({rows}, {dim}) floats")
        if shape[0] != rows:
            raise self._damaged(matrix, f"holds {shape[0]} vectors but its table {matrix.with_suffix('.parquet').name} holds {rows} items")
        if matrix.stat().st_size < offset + shape[0] * shape[1] * dtype.itemsize:
            raise self._damaged(matrix, "is truncated")
        if not _check_finite(matrix, shape, dtype, offset):
            raise self._damaged(matrix, "holds NaN or infinite vectors")
        if rows == 0:
            return np.zeros((0, dim), np.float32)
        if dtype in (np.dtype(np.float32), np.dtype(np.float16)):
            return np.load(matrix, mmap_mode="r", allow_pickle=False)
        return np.load(matrix, allow_pickle=False).astype(np.float32)  # other float widths: small crafted parts only

    def load_tombstones(self, name: str) -> np.ndarray:
        """The ``(R,)`` int64 removed ids in tombstone file ``name``.

        Raises:
            FileNotFoundError: it is missing.
            SpaceError: it is damaged (named).
        """
        path = self.path / name
        try:
            tombstones = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise self._damaged(path, f"not a readable id list ({_first_line(error)})") from None
        if tombstones.ndim != 1 or tombstones.dtype.kind not in "iu":
            raise self._damaged(path, f"holds a {tombstones.dtype} array of shape {tombstones.shape}, expected integer ids")
        return tombstones.astype(np.int64)

    @staticmethod
    def compaction_runs(parts: tuple[Part, ...]) -> list[list[int]]:
        """Which neighbouring parts a write merges: none while there are at most :data:`MAX_SEGMENTS`, else each
        run of two or more neighbouring parts smaller than :data:`SMALL_PART_ROWS` rows (slots in ``parts``)."""
        if len(parts) <= MAX_SEGMENTS:
            return []
        runs, run = [], []
        for slot, part in enumerate(parts):
            if len(part.items) < SMALL_PART_ROWS:
                run.append(slot)
                continue
            runs, run = runs + ([run] if len(run) > 1 else []), []
        return runs + ([run] if len(run) > 1 else [])

    @staticmethod
    def part_name(revision: int, compacted: bool, run: int | None = None) -> str:
        """The name of a part written at ``revision``: ``segments/<rev>``, or ``segments/<rev>-all[-<run>]`` for a merge."""
        if not compacted:
            return f"{SEGMENTS}/{revision:08d}"
        return f"{SEGMENTS}/{revision:08d}-all" + ("" if run is None else f"-{run}")

    def merge_parts(self, name: str, parts: tuple[Part, ...], removed: np.ndarray, dtype: str, dim: int) -> Part:
        """Write ``parts`` (neighbours in id order) as one part ``name`` without their removed rows; returns it, memory-mapped.

        Vectors are copied in chunks, so memory stays flat however large the parts are.
        """
        keeps = [~np.isin(part.items["id"].to_numpy(), removed) if len(removed) else np.ones(len(part.items), bool) for part in parts]
        items = _mergeable(concat_items(tuple(Part(part.name, part.items[keep], part.vectors) for part, keep in zip(parts, keeps))))
        total = int(sum(keep.sum() for keep in keeps))
        write_atomic(self.path / f"{name}.parquet", lambda handle: items.to_parquet(handle, index=False))

        def write_vectors(handle: Any) -> None:
            header = {"descr": npy_format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (total, dim)}
            npy_format.write_array_header_1_0(handle, header)
            for part, keep in zip(parts, keeps):
                for start in range(0, len(part.vectors), MERGE_CHUNK_ROWS):
                    chunk = np.asarray(part.vectors[start : start + MERGE_CHUNK_ROWS])[keep[start : start + MERGE_CHUNK_ROWS]]
                    handle.write(np.ascontiguousarray(chunk, dtype=np.dtype(dtype)).tobytes())

        write_atomic(self.path / f"{name}.npy", write_vectors)
        return Part(name, items, self.open_vectors(self.path / f"{name}.npy", total, dim))

    @staticmethod
    def is_ingest_key(key: Any) -> bool:
        """Whether ``key`` is a valid ingest key (16 lowercase hex digits)."""
        return isinstance(key, str) and INGEST_KEY.fullmatch(key) is not None

    @staticmethod
    def ingest_part_name(key: str, block: int) -> str:
        """The part block ``block`` of ingest ``key`` writes: ``segments/ingest-<key>-<block:06d>``."""
        return f"{SEGMENTS}/ingest-{key}-{int(block):06d}"

    def reserve(self, ids: tuple[int, int], part: str) -> None:
        """Record a write in progress (``.pending.json``): ids ``[start, end)`` and its part, before any of its files.

        If the writer dies before :meth:`commit`, the next :meth:`sweep` deletes the part and
        the thumbnails and media of those ids, so a later item never inherits them.
        """
        write_bytes_atomic(self.path / PENDING, json.dumps({"ids": [int(ids[0]), int(ids[1])], "segment": part}).encode())

    def write_part(self, name: str, items: pd.DataFrame, vectors: np.ndarray, dtype: str = "float32") -> pd.DataFrame:
        """Write one part: ``name.parquet`` (items) and ``name.npy`` (``(n, D)`` vectors, ``dtype`` float32 or float16); returns the items as stored.

        A retried writer (an ingest task run again) rewrites the same files whole.

        Metadata columns of mixed kinds (from spaces written before kinds were checked) are
        stored as text.

        Raises:
            SpaceError: Parquet cannot store the items' metadata (nothing was added).
        """
        stored = _mergeable(items)
        try:
            write_atomic(self.path / f"{name}.parquet", lambda handle: stored.to_parquet(handle, index=False))
        except (ValueError, TypeError, UnicodeError) as error:  # pyarrow: ArrowInvalid / ArrowTypeError
            raise SpaceError(f"cannot store these items' metadata ({_first_line(error)}); nothing was added") from None
        write_atomic(self.path / f"{name}.npy", lambda handle: np.save(handle, np.ascontiguousarray(vectors, dtype=np.dtype(dtype))))
        return stored

    def write_tombstones(self, revision: int, removed: np.ndarray) -> str:
        """Write the ``(R,)`` int64 removed ids as ``removed-<rev>.npy``; returns its name for the manifest."""
        name = f"removed-{revision:08d}.npy"
        write_atomic(self.path / name, lambda handle: np.save(handle, np.asarray(removed, dtype=np.int64)))
        return name

    # -- files of items ------------------------------------------------------------------------

    def write_thumbnail(self, item_id: int, picture: Image.Image) -> None:
        """Store a preview of an image item, at most :data:`THUMBNAIL_SIZE` pixels a side."""
        thumbnail = picture.copy()
        thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        write_atomic(self.path / THUMBNAILS / f"{int(item_id)}.png", lambda handle: thumbnail.save(handle, format="PNG"))

    def write_image(self, item_id: int, picture: Image.Image) -> str:
        """Store an image added from memory as PNG under ``media/``; returns its ``source`` (relative to the space)."""
        source = f"{MEDIA}/{int(item_id)}.png"
        write_atomic(self.path / source, lambda handle: picture.save(handle, format="PNG"))
        return source

    def write_audio(self, item_id: int, samples: np.ndarray, rate: int) -> str:
        """Store a sound added from memory as 16-bit WAV under ``media/``; returns its ``source`` (relative to the space)."""
        source = f"{MEDIA}/{int(item_id)}.wav"
        write_atomic(self.path / source, lambda handle: soundfile.write(handle, samples, rate, format="WAV", subtype="PCM_16"))
        return source

    def thumbnail_path(self, item_id: int) -> Path | None:
        """The stored preview of an image item, resolved (links followed) and inside ``thumbnails/``; else None."""
        try:
            folder = self.path.resolve() / THUMBNAILS  # a thumbnails folder that links elsewhere holds nothing servable
            path = (folder / f"{int(item_id)}.png").resolve()
            return path if _inside(path, folder) and path.is_file() else None
        except (OSError, ValueError):  # a loop of links
            return None

    def source_path(self, source: Any) -> Path | None:
        """The file an item's stored ``source`` names, or None (text items, or a relative name outside the space).

        An absolute ``source`` is the original file of an item added from disk, recorded at add
        time, and is returned as it is. A relative one (``media/<id>.png``, written by
        :meth:`write_image`) is resolved (links followed) and must stay inside the space:
        a space folder is untrusted input.
        """
        if not isinstance(source, str) or not source:
            return None
        try:
            path = Path(source)
            if path.is_absolute():
                return path
            inside = (self.path / path).resolve()
            return inside if _inside(inside, self.path.resolve()) else None
        except (OSError, ValueError):  # a NUL byte, a name too long, a loop of links
            return None

    def model_folder(self, source: str) -> Path | None:
        """The model folder the manifest's model ``source`` names inside the space (resolved), or None.

        A space folder is untrusted: it never makes embedspace load a model from outside itself.
        """
        try:
            inside = (self.path / source).resolve()
            return inside if _inside(inside, self.path.resolve()) and inside.is_dir() else None
        except (OSError, ValueError):  # a NUL byte, a name too long, a loop of links
            return None

    def read_generator_record(self) -> dict[str, Any] | None:
        """The space's recorded generator as stored (``generator.json``, a JSON object), or None when none is recorded.

        The record is untrusted data: :mod:`embedspace.generator.recorded` checks it before use.

        Raises:
            SpaceError: the file is unreadable or not a JSON object.
        """
        path = self.path / GENERATOR_RECORD
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise SpaceError(f"{path}: unreadable ({_first_line(error)}); record the generator again with `embedspace generator set {self.path} NAME|DIR`") from None
        if not isinstance(record, dict):
            raise SpaceError(f"{path}: not a JSON object; record the generator again with `embedspace generator set {self.path} NAME|DIR`")
        return record

    def write_generator_record(self, record: dict[str, Any] | None) -> None:
        """Durably replace the recorded generator with ``record`` (a JSON object), or forget it (None); call while holding :meth:`lock`."""
        path = self.path / GENERATOR_RECORD
        if record is None:
            path.unlink(missing_ok=True)
        else:
            write_bytes_atomic(path, json.dumps(record, indent=2).encode())

    # -- the lock and crash cleanup ------------------------------------------------------------

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the space's write lock (across processes and threads), with a clear error when the folder cannot be written.

        The lock is an OS file lock (``flock`` through ``filelock``) on ``.lock``: a writer that
        dies releases it. It is not re-entrant: do not take it again while holding it.

        Raises:
            SpaceError: the folder is read-only, full or not ours (nothing was changed).
        """
        try:
            with FileLock(self.path / LOCK, fallback_to_soft=False):
                yield
        except PermissionError as error:
            raise SpaceError(f"cannot write to space {self.path}: {error.strerror} ({error.filename}); check the folder's permissions") from None
        except OSError as error:
            if error.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES):
                raise SpaceError(f"cannot write to space {self.path}: {error.strerror}; nothing was changed") from None
            raise

    def sweep(self, manifest: dict[str, Any]) -> list[Path]:
        """Delete what crashed writes left behind; call only while holding :meth:`lock`.

        Removed: parts and tombstone files that neither this manifest nor its retired list names,
        temporary files of dead processes, and thumbnails/media of ids that a pending write
        reserved but never committed (so a later item never inherits them). Returns what was deleted.
        """
        folder = self.path
        keep = segment_files(manifest) | retired_files(manifest)
        running = tuple(f"{SEGMENTS}/ingest-{key}-" for key, record in manifest.get("ingests", {}).items() if not record["finished"])
        deleted: list[Path] = []

        def drop(path: Path) -> None:
            path.unlink(missing_ok=True)
            deleted.append(path)

        entries = list(os.scandir(folder))
        if (folder / SEGMENTS).is_dir():
            entries += list(os.scandir(folder / SEGMENTS))
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                continue
            relative = Path(entry.path).relative_to(folder).as_posix()
            owner = temporary_owner(entry.name)
            if owner is not None:
                if not process_alive(owner):
                    drop(Path(entry.path))
            elif relative.startswith(f"{SEGMENTS}/") and relative.endswith((".npy", ".parquet")) and relative not in keep and not (running and relative.startswith(running)):
                drop(Path(entry.path))
            elif re.fullmatch(r"removed-\d{8}\.npy", relative) and relative not in keep:
                drop(Path(entry.path))
        pending = folder / PENDING
        if pending.is_file():
            try:
                reserved = json.loads(pending.read_text())["ids"]
                start, end = max(int(reserved[0]), int(manifest["next_id"])), int(reserved[1])
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                start, end = int(manifest["next_id"]), None
            for sub in (THUMBNAILS, MEDIA):
                if not (folder / sub).is_dir():
                    continue
                for entry in os.scandir(folder / sub):
                    stem = entry.name.lstrip(".").split(".")[0]
                    if stem.isdigit() and int(stem) >= start and (end is None or int(stem) < end):
                        drop(Path(entry.path))
            drop(pending)
        if deleted:
            logger.info("swept %d file(s) left by an interrupted write in %s", len(deleted), folder)
        return deleted

    def leftovers(self) -> list[str]:
        """Temporary files and the pending-write marker (what the next :meth:`sweep` deletes), without deleting anything."""
        names = []
        for sub in (self.path, self.path / SEGMENTS, self.path / THUMBNAILS, self.path / MEDIA):
            if sub.is_dir():
                names += [Path(entry.path).relative_to(self.path).as_posix() for entry in os.scandir(sub) if temporary_owner(entry.name) is not None]
        if (self.path / PENDING).is_file():
            names.append(PENDING)
        return sorted(names)

    def set_aside(self, part: str) -> None:
        """Move a damaged part's files into ``quarantine/`` (nothing is deleted); call while holding :meth:`lock`."""
        quarantine = self.path / QUARANTINE
        quarantine.mkdir(exist_ok=True)
        for suffix in (".parquet", ".npy"):
            source = self.path / f"{part}{suffix}"
            if source.exists():
                source.replace(quarantine / source.name)

    # -- the derived index ---------------------------------------------------------------------

    def index_stamp(self) -> dict[str, Any] | None:
        """The saved index's stamp, or None when no index is saved.

        The stamp (``index.json``) records the space's ``uid``, the ``revision`` and ``factory``
        it was saved at, ``covered`` (the ids below which every live item is in the index),
        ``removed`` (how many tombstones it has applied), ``trained_on`` (training-sample size)
        and the index file's ``bytes`` and ``sha256``.

        Raises:
            ValueError: ``index.json`` is unreadable or not a JSON object.
        """
        path = self.path / INDEX_STAMP
        try:
            stamp = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: unreadable ({_first_line(error)})") from None
        if not isinstance(stamp, dict):
            raise ValueError(f"{path}: not a JSON object")
        return stamp

    def read_index(self, manifest: dict[str, Any]) -> tuple[VectorIndex, dict[str, Any]]:
        """The saved index and its stamp, checked against ``manifest``.

        Raises:
            ValueError: no index saved, or one that is unreadable, damaged (checksum), of
                another space (uid) or dimension, or newer than the manifest (one line naming why).
        """
        stamp = self.index_stamp()
        path = self.path / INDEX_FILE
        if stamp is None or not path.exists():
            raise ValueError(f"{self.path} has no saved index")
        keys = {"uid": str, "factory": str, "revision": int, "covered": list, "removed": int, "trained_on": int, "bytes": int, "sha256": str}
        ranges_ok = isinstance(stamp.get("covered"), list) and all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(value, int) for value in pair) for pair in stamp["covered"]
        )
        if any(not isinstance(stamp.get(key), kind) for key, kind in keys.items()) or not ranges_ok:
            raise ValueError(f"{self.path / INDEX_STAMP}: not an index stamp this embedspace writes")
        if stamp["uid"] != manifest.get("uid", ""):
            raise ValueError(f"{path} belongs to another space (uid {stamp['uid'][:8]}…, this space is {manifest.get('uid', '')[:8]}…); "
                             f"`embedspace index build {self.path}` builds this space's own")
        if stamp["revision"] > manifest["revision"] or any(end > manifest["next_id"] for _, end in stamp["covered"]):
            raise ValueError(f"{path} claims revision {stamp['revision']}, newer than the space's {manifest['revision']}")
        data = path.read_bytes()
        if len(data) != stamp["bytes"] or hashlib.sha256(data).hexdigest() != stamp["sha256"]:
            raise ValueError(f"{path} does not match its stamp (damaged or replaced)")
        index = VectorIndex.deserialize(data, int(manifest["model"]["embed_dim"]), stamp["factory"])
        return index, stamp

    def write_index(self, index: VectorIndex, stamp: dict[str, Any]) -> dict[str, Any]:
        """Save ``index`` with ``stamp`` (see :meth:`index_stamp`; ``bytes`` and ``sha256`` are filled in here).

        Call while holding :meth:`lock`. Returns the stamp as written.
        """
        data = index.serialize()
        write_bytes_atomic(self.path / INDEX_FILE, data)
        stamp = dict(stamp, factory=index.factory, bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        write_bytes_atomic(self.path / INDEX_STAMP, json.dumps(stamp).encode())
        return stamp

    def drop_index(self) -> list[str]:
        """Delete the saved index (rebuilt from the vectors on the next search); returns the names deleted."""
        dropped = []
        for name in (INDEX_STAMP, INDEX_FILE):
            if (self.path / name).exists():
                (self.path / name).unlink()
                dropped.append(name)
        return dropped

    # -- stored maps ---------------------------------------------------------------------------

    def map_folder(self, n_components: int, aligned: bool = False) -> Path:
        """Where the ``n_components``-d map is stored (``projections/umap-{n}d``, ``-aligned`` for the modality-aligned view)."""
        return projection_folder(self.path, n_components, aligned)

    def read_map(self, n_components: int, revision: int | None = None, load_model: bool = True, aligned: bool = False) -> SpaceProjection | None:
        """The stored ``n_components``-d map stamped ``revision`` (None: any), or None (see :func:`embedspace.store_maps.read_map`)."""
        return read_map(self.map_folder(n_components, aligned), n_components, revision, load_model)

    def write_map(self, stored: SpaceProjection) -> Path:
        """Durably store a map (with its fitted projection) as the current one of its dimension; returns its folder."""
        return write_map(self.map_folder(stored.n_components, stored.aligned), stored)
