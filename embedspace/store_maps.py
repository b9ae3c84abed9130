"""A space's stored maps: the ``projections/`` folder of a space, read and written.

Part of the space store (:mod:`embedspace.store`, the only code that reads or writes inside
a space folder; :class:`~embedspace.store.SpaceStore` calls these functions). A map is
derived data, one folder per dimension::

    SPACE/projections/umap-2d/
      current.json          {"revision": 12, "folder": "r00000012", "count": N, "method": "umap",
                             "fit_sample": S}  (S of the N items fitted, the rest placed by transform)
      r00000012/            written whole under a temporary name, then renamed
        config.json         the Projection's arguments and what it learned (method, sizes:
                            n_samples_fit is the fit sample, n_lists the transform's lists)
        state.npz           its arrays: fit embedding and sample rows, plus the fit
                            vectors (method "umap", with the neighbour search's list
                            centroids and lists when n_lists > 0) or the PCA centre and
                            axes (method "pca")
        ids.npy             (N,) int64 item ids
        coordinates.npy     (N, C) float32 coordinates, row-aligned with ids.npy
        clusters.npy        (N,) int32 cluster of each point, -1 for none (optional)
        clusters.json       [{"cluster", "name", "size", "centre"}] one per cluster, largest
                            first (see :mod:`embedspace.clusters`; optional)
        alignment.json      {"modalities": [...]} and modality_means.npy (M, D) float32: the
                            per-modality means removed before projecting (the aligned view only)

    The modality-aligned view (``projections/umap-{n}d-aligned``, see
    :func:`embedspace.maps.compute_space_projection`) is stored the same way.

Everything is JSON or ``.npy``/``.npz`` read with ``allow_pickle=False``, and every file
is checked (types, shapes, ``folder`` must be ``r`` + the zero-padded revision, a
folder directly inside ``umap-{n}d``) before use; a map that fails a check is logged as
a warning naming the file and treated as absent, so it is recomputed. Maps stored by
older versions (format 1, with a pickled ``umap.pkl``) are never unpickled: they are
treated as absent and recomputed. Temporary folders ``.tmp-r…-<pid>-…`` left by a
process killed while saving are removed when the next map is saved, once that pid is no
longer running. Deleting ``projections/`` is always safe (the map is recomputed).

When a stored map is stale and how it is brought up to date is :mod:`embedspace.maps`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from embedspace.clusters import ClusterInfo
from embedspace.durable import fsync_folder, process_alive, write_atomic, write_bytes_atomic
from embedspace.projection import FORMAT_VERSION, Projection, check_state_file, expected_state, read_projection_config

logger = logging.getLogger(__name__)

PROJECTIONS = "projections"
CURRENT = "current.json"
#: Name of a stored map's folder: ``r`` and the zero-padded revision.
MAP_FOLDER = re.compile(r"r\d{8,}")
#: Temporary files and folders a killed saver may leave, with the saver's pid.
_LEFTOVER = re.compile(r"\.(?:tmp-r\d{8,}|current\.json\.tmp)-(\d+)(?:-[0-9a-f]+)?")


@dataclass(frozen=True)
class SpaceProjection:
    """A space's map at one revision.

    Attributes:
        ids: ``(N,)`` int64 item ids, ascending (the space's order).
        coordinates: ``(N, C)`` float32 coordinates, row-aligned with ``ids``.
        revision: the space revision the map was computed at.
        projection: the fitted :class:`~embedspace.projection.Projection` (places new
            vectors), or None when loaded with ``load_model=False`` (see :func:`read_map`).
        folder: where the map is stored (None until saved).
        clusters: ``(N,)`` int32 cluster of each point (-1: none), or None when not computed.
        cluster_info: the named clusters, largest first (see :mod:`embedspace.clusters`).
        modality_means: for the modality-aligned view, each modality's mean vector, removed
            from its items' vectors before projecting; None for the plain map.
    """

    ids: np.ndarray
    coordinates: np.ndarray
    revision: int
    projection: Projection | None
    folder: Path | None = None
    clusters: np.ndarray | None = None
    cluster_info: tuple[ClusterInfo, ...] = ()
    modality_means: dict[str, np.ndarray] | None = None

    @property
    def n_components(self) -> int:
        return int(self.coordinates.shape[1])

    @property
    def aligned(self) -> bool:
        """Whether this is the modality-aligned view (each modality's mean removed before projecting)."""
        return self.modality_means is not None

    def transform(self, vectors: np.ndarray, modality: str | None = None) -> np.ndarray:
        """Coordinates ``(N, C)`` float32 of ``(N, D)`` or ``(D,)`` vectors (e.g. a query) in this map.

        On the aligned view the mean of ``modality`` is removed first; without ``modality``
        each vector is taken to be of the modality whose mean it is nearest.

        Raises:
            ValueError: the map was loaded without its model (``load_model=False``), or an unknown modality.
        """
        if self.projection is None:
            raise ValueError("this map was loaded without its projection model; use with_model() to place new vectors")
        if self.modality_means is not None:
            vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
            names = list(self.modality_means)
            means = np.stack([self.modality_means[name] for name in names])
            if modality is not None and modality not in self.modality_means:
                raise ValueError(f"this map has no {modality!r} items; its modalities are {', '.join(names)}")
            which = np.full(len(vectors), names.index(modality)) if modality is not None else np.argmax(vectors @ means.T, axis=1)
            vectors = vectors - means[which]
        return self.projection.transform(vectors)

    def with_model(self) -> "SpaceProjection":
        """This map with its :class:`Projection` loaded (reads the fit's arrays: the fit vectors are the bulk)."""
        if self.projection is not None:
            return self
        if self.folder is None:
            raise ValueError("this map has no stored projection model to load")
        return replace(self, projection=Projection.load(self.folder))

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in :attr:`ids` (``(K,)`` int64), -1 where the map does not hold it."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(self.ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        rows = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return np.where(self.ids[rows] == ids, rows, -1).astype(np.int64)


def projection_folder(space_path: str | Path, n_components: int = 2, aligned: bool = False) -> Path:
    """``SPACE/projections/umap-{n}d`` (``umap-{n}d-aligned`` for the modality-aligned view): where a space's ``n``-d map is stored."""
    return Path(space_path) / PROJECTIONS / (f"umap-{n_components}d" + ("-aligned" if aligned else ""))


def _map_folder_name(revision: int) -> str:
    return f"r{revision:08d}"


def _read_current(folder: Path) -> tuple[int, Path] | None:
    """``(revision, map folder)`` from ``folder/current.json``; None if absent.

    Raises:
        ValueError: current.json is damaged, or names a folder other than ``r`` + its
            zero-padded revision directly inside ``folder`` (a crafted path).
    """
    path = folder / CURRENT
    try:
        current = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (UnicodeDecodeError, json.JSONDecodeError, OSError) as error:
        raise ValueError(f"{path} is unreadable ({error}); the map will be recomputed") from None
    revision = current.get("revision") if isinstance(current, dict) else None
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
        raise ValueError(f"{path} has no integer 'revision'; the map will be recomputed")
    name = current.get("folder")
    if not isinstance(name, str) or not MAP_FOLDER.fullmatch(name) or name != _map_folder_name(revision):
        raise ValueError(f"{path} names folder {name!r}, not {_map_folder_name(revision)!r} inside {folder}; refused, the map will be recomputed")
    data = folder / name
    if data.is_symlink() or (data.exists() and data.resolve().parent != folder.resolve()):
        raise ValueError(f"{data} is a link out of {folder}; refused, the map will be recomputed")
    return revision, data


def _read_array(path: Path) -> np.ndarray:
    """A ``.npy`` file read without pickle; ValueError naming it when damaged (FileNotFoundError passes)."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, MemoryError) as error:  # MemoryError: a header declaring a huge array
        raise ValueError(f"{path} is not a readable array ({error})") from None


def _read_map(data: Path, revision: int, n_components: int, load_model: bool) -> SpaceProjection:
    """The map stored in ``data`` (checked); FileNotFoundError if a part is gone, ValueError if damaged."""
    config = read_projection_config(data)
    if config["params"].get("n_components") != n_components:
        raise ValueError(f"{data / 'config.json'} is not a {n_components}-d map")
    if not load_model:
        check_state_file(data / "state.npz", expected_state(config))  # so a damaged model is found now, not when placing queries
    ids = _read_array(data / "ids.npy")
    coordinates = _read_array(data / "coordinates.npy")
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or (len(ids) > 1 and not (np.diff(ids) > 0).all()):
        raise ValueError(f"{data / 'ids.npy'} must hold ascending integer ids, got {ids.dtype}{list(ids.shape)}")
    if coordinates.shape != (len(ids), n_components) or coordinates.dtype.kind != "f" or not np.isfinite(coordinates).all():
        raise ValueError(f"{data / 'coordinates.npy'} must hold finite floats of shape {[len(ids), n_components]}, got {coordinates.dtype}{list(coordinates.shape)}")
    projection = Projection.load(data) if load_model else None
    clusters, info = _read_clusters(data, len(ids), n_components)
    means = _read_alignment(data, projection.n_features_in_ if projection is not None else None)
    return SpaceProjection(ids.astype(np.int64), coordinates.astype(np.float32), revision, projection, data, clusters, info, means)


def _read_alignment(data: Path, dim: int | None) -> dict[str, np.ndarray] | None:
    """The modality means of an aligned map (checked), or None for a plain map; ValueError when damaged."""
    if not (data / "alignment.json").exists():
        return None
    try:
        modalities = json.loads((data / "alignment.json").read_text(encoding="utf-8"))["modalities"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{data / 'alignment.json'} is not readable ({error})") from None
    means = _read_array(data / "modality_means.npy")
    if (not isinstance(modalities, list) or not all(name in ("text", "image", "audio") for name in modalities) or len(set(modalities)) != len(modalities)
            or means.ndim != 2 or means.shape[0] != len(modalities) or means.dtype.kind != "f" or not np.isfinite(means).all()
            or (dim is not None and means.shape[1] != dim)):
        raise ValueError(f"{data / 'alignment.json'} and modality_means.npy must name distinct modalities with one finite mean each")
    return {name: means[row].astype(np.float32) for row, name in enumerate(modalities)}


def _read_clusters(data: Path, count: int, n_components: int) -> tuple[np.ndarray | None, tuple[ClusterInfo, ...]]:
    """The stored clusters of a map (checked), or ``(None, ())`` when the map has none; ValueError when damaged."""
    if not (data / "clusters.npy").exists():
        return None, ()
    labels = _read_array(data / "clusters.npy")
    try:
        table = json.loads((data / "clusters.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{data / 'clusters.json'} is not readable JSON ({error})") from None
    if labels.shape != (count,) or labels.dtype.kind != "i" or (count and (labels.min() < -1 or labels.max() >= len(table))):
        raise ValueError(f"{data / 'clusters.npy'} must hold {count} cluster numbers in -1..{len(table) - 1}")
    info = []
    for number, entry in enumerate(table if isinstance(table, list) else [None]):
        if not (isinstance(entry, dict) and entry.get("cluster") == number and isinstance(entry.get("name"), str)
                and isinstance(entry.get("size"), int) and isinstance(entry.get("centre"), list) and len(entry["centre"]) == n_components
                and all(isinstance(value, (int, float)) and np.isfinite(value) for value in entry["centre"])):
            raise ValueError(f"{data / 'clusters.json'} entry {number} is not a cluster (cluster, name, size, centre)")
        info.append(ClusterInfo(number, entry["name"][:200], entry["size"], tuple(float(value) for value in entry["centre"])))
    return labels.astype(np.int32), tuple(info)


def read_map(folder: Path, n_components: int, revision: int | None = None, load_model: bool = True) -> SpaceProjection | None:
    """The map stored in ``folder`` (``projections/umap-{n}d``), or None if missing, damaged or of another revision.

    Nothing stored is unpickled or followed outside the map's folder; a damaged or
    old-format map (format 1, with a pickled ``umap.pkl``) is logged as a warning
    naming the file and treated as missing, so callers recompute it.

    Args:
        folder: the map folder of one dimension (see :func:`projection_folder`).
        n_components: 2 or 3.
        revision: the space revision the map must be stamped with; None accepts any (a stale map).
        load_model: also load the fitted projection (needed to place new vectors). Without
            it only the coordinates are read (milliseconds); :meth:`SpaceProjection.with_model`
            loads the model later.
    """
    for _attempt in range(2):  # a concurrent writer may remove the folder we were pointed at
        try:
            current = _read_current(folder)
            if current is None:
                return None
            stored_revision, data = current
            if revision is not None and stored_revision != revision:
                return None
            return _read_map(data, stored_revision, n_components, load_model)
        except FileNotFoundError as error:
            logger.info("stored projection in %s changed while reading (%s)", folder, error)
        except ValueError as error:
            logger.warning("ignoring the stored map: %s", error)
            return None
    return None


def sweep_leftovers(folder: Path) -> list[Path]:
    """Remove the temporary map folders and files in ``folder`` left by savers that were killed.

    A leftover's name holds its writer's pid (``.tmp-r00000012-<pid>-<hex>``,
    ``.current.json.tmp-<pid>``); it is removed only when that process no longer runs
    and is not this one. Returns what was removed.
    """
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        match = _LEFTOVER.fullmatch(entry.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if process_alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        logger.info("removed %s, left by process %d that was stopped while saving a map", entry, pid)
        removed.append(entry)
    return removed


def _holds_map(data: Path, revision: int, n_components: int) -> bool:
    """Whether ``data`` is a readable map folder (not a link) in the current format (not, e.g., an old pickled one)."""
    if data.is_symlink():
        return False
    try:
        _read_map(data, revision, n_components, load_model=False)
    except (OSError, ValueError):
        return False
    return True


def write_map(folder: Path, stored: SpaceProjection) -> Path:
    """Durably store ``stored`` (with its model) as the current map in ``folder`` (``projections/umap-{n}d``); returns its folder.

    Also removes what killed savers left in the map folder (see :func:`sweep_leftovers`)
    and the folders of older maps.
    """
    if stored.projection is None:
        raise ValueError("cannot save a map loaded without its projection model; load it with with_model() first")
    folder.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(folder)
    name = _map_folder_name(stored.revision)
    target = folder / name
    temporary = folder / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        stored.projection.save(temporary)
        write_atomic(temporary / "ids.npy", lambda handle: np.save(handle, stored.ids.astype(np.int64)))
        write_atomic(temporary / "coordinates.npy", lambda handle: np.save(handle, stored.coordinates.astype(np.float32)))
        if stored.modality_means is not None:
            names = list(stored.modality_means)
            means = np.stack([stored.modality_means[name] for name in names]).astype(np.float32)
            write_atomic(temporary / "modality_means.npy", lambda handle: np.save(handle, means))
            write_atomic(temporary / "alignment.json", lambda handle: handle.write(json.dumps({"modalities": names}).encode()))
        if stored.clusters is not None:
            write_atomic(temporary / "clusters.npy", lambda handle: np.save(handle, stored.clusters.astype(np.int32)))
            table = json.dumps([cluster.to_json() for cluster in stored.cluster_info], ensure_ascii=False)
            write_atomic(temporary / "clusters.json", lambda handle: handle.write(table.encode("utf-8")))
        if (target.exists() or target.is_symlink()) and not _holds_map(target, stored.revision, stored.n_components):  # old-format or damaged
            logger.warning("replacing %s, which does not hold a format-%d map", target, FORMAT_VERSION)
            discarded = folder / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(target, discarded)
            except FileNotFoundError:  # another writer moved it first
                pass
            if discarded.is_dir() and not discarded.is_symlink():
                shutil.rmtree(discarded, ignore_errors=True)
            else:
                discarded.unlink(missing_ok=True)
        if target.exists():  # another writer stored this revision first; theirs is as good
            shutil.rmtree(temporary)
        else:
            os.rename(temporary, target)
            fsync_folder(folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    current = {
        "revision": stored.revision,
        "folder": name,
        "count": int(len(stored.ids)),
        "method": stored.projection.method_,
        "fit_sample": int(stored.projection.n_samples_fit_),  # the rest of ``count`` was placed with transform
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_bytes_atomic(folder / CURRENT, json.dumps(current, indent=2).encode())
    for old in folder.iterdir():
        if old.name != name and MAP_FOLDER.fullmatch(old.name) and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return target

