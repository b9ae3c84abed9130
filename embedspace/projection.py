"""Projection: a UMAP map of embedding vectors to 2-D or 3-D, and a space's stored map.

:class:`Projection` wraps UMAP (McInnes, Healy & Melville, "UMAP: Uniform Manifold
Approximation and Projection for Dimension Reduction", 2018) with the scikit-learn
contract: the constructor only stores arguments, :meth:`Projection.fit` validates them
and learns, learned state ends in ``_``, and :meth:`Projection.transform` places new
vectors in a fitted map.

Two rules keep it usable on any space:

- **Tiny inputs** (fewer than ``n_neighbors + 2`` vectors) cannot hold a meaningful
  neighbour graph, so the map is the PCA of the vectors instead (exact, deterministic,
  instant); ``method_`` says which one was used. ``transform`` follows the same method.
- **Large inputs** (more than ``sample_size`` vectors) fit UMAP on a seeded random
  sample and place the remaining vectors with ``transform``
  (:meth:`Projection.fit_transform` does both, in chunks, reporting progress).

A space's map is derived data stored in the space folder, one folder per dimension::

    SPACE/projections/umap-2d/
      current.json          {"revision": 12, "folder": "r00000012", "count": N, "method": "umap"}
      r00000012/            written whole under a temporary name, then renamed
        config.json         the Projection's arguments and what it learned (method, sizes)
        state.npz           its arrays (fit embedding, sample rows, PCA axes)
        umap.pkl            the fitted UMAP model (method "umap" only), for transform
        ids.npy             (N,) int64 item ids
        coordinates.npy     (N, C) float32 coordinates, row-aligned with ids.npy

A stored map is *stale* when its revision differs from ``space.revision``; it is then
updated: new items are placed with ``transform`` and removed ones dropped, or the map is
refitted when the space has grown by more than ``REFIT_GROWTH`` since the fit.

``umap.pkl`` is a pickle (UMAP's own way of saving a model): loading runs code from that
file, so only open projections of spaces you trust; deleting ``projections/`` is always
safe (the map is recomputed).
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedspace.durable import fsync_folder, write_atomic, write_bytes_atomic

logger = logging.getLogger(__name__)

#: Metrics accepted by :class:`Projection` (a subset of UMAP's that suits embeddings).
METRICS = ("cosine", "euclidean", "correlation", "manhattan")
#: Sample size for fitting UMAP on large inputs; the rest is placed with ``transform``.
DEFAULT_SAMPLE_SIZE = 20_000
#: Rows per ``transform`` call when placing the rest of a large input (progress granularity).
TRANSFORM_CHUNK = 5_000
#: A stale stored map is refitted, not extended, once the items outside its fit exceed this fraction of it.
REFIT_GROWTH = 0.25
PROJECTIONS = "projections"
CURRENT = "current.json"
FORMAT_VERSION = 1

#: ``progress(fraction in [0, 1], message)``, called from the thread that computes.
ProgressCallback = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """Default progress callback: log at debug level."""
    logger.debug("projection %.0f%%: %s", 100 * fraction, message)


def _as_vectors(vectors: np.ndarray, name: str = "vectors", dim: int | None = None) -> np.ndarray:
    """Check ``vectors`` is a finite ``(N, D)`` array; return it as C-contiguous float32."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1 and dim is not None:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (N, D); got shape {tuple(array.shape)}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} have {array.shape[1]} dimensions; this projection was fitted on {dim}-dimensional vectors")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contain NaN or infinite values")
    return np.ascontiguousarray(array)


class Projection:
    """UMAP map from ``D``-dimensional vectors to ``n_components`` coordinates.

    Args:
        n_components: output dimensions, 2 or 3 (default 2).
        n_neighbors: neighbourhood size of UMAP's graph, an integer >= 2 (default 15).
            Small values keep local detail, large values (50+) favour global layout.
            Inputs with fewer than ``n_neighbors + 2`` vectors are mapped with PCA.
        min_dist: how tightly UMAP packs neighbours, a float in [0, 1] (default 0.1);
            0 gives dense clumps, 1 spreads points evenly.
        metric: distance in the input space, one of :data:`METRICS` (default
            ``"cosine"``, the metric of embedding spaces).
        random_state: seed for sampling and UMAP (default 0, reproducible but
            single-threaded); ``None`` lets UMAP use all cores, not reproducibly.
        sample_size: most vectors UMAP is fitted on (default 20,000; ``None``: all);
            :meth:`fit_transform` places the others with :meth:`transform`.

    Attributes (after :meth:`fit`):
        method_: ``"umap"`` or ``"pca"`` (tiny inputs).
        n_features_in_: input dimension D.
        n_samples_fit_: number of vectors the map was fitted on.
        sample_indices_: ``(n_samples_fit_,)`` int64 rows of the input used for the fit.
        embedding_: ``(n_samples_fit_, n_components)`` float32 coordinates of those rows.
        mean_, components_: PCA centre ``(D,)`` and axes ``(n_components, D)`` (method "pca").
        umap_: the fitted ``umap.UMAP`` (method "umap").
    """

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "cosine",
        random_state: int | None = 0,
        sample_size: int | None = DEFAULT_SAMPLE_SIZE,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.sample_size = sample_size

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as given."""
        return {
            "n_components": self.n_components,
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": self.metric,
            "random_state": self.random_state,
            "sample_size": self.sample_size,
        }

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"Projection({arguments})"

    # -- validation ----------------------------------------------------------------------------

    def _validate_params(self) -> None:
        def is_int(value: Any) -> bool:
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        if not is_int(self.n_components) or self.n_components not in (2, 3):
            raise ValueError(f"n_components must be 2 or 3, got {self.n_components!r}")
        if not is_int(self.n_neighbors) or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")
        if not isinstance(self.min_dist, numbers.Real) or isinstance(self.min_dist, bool) or not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"min_dist must be a number in [0, 1], got {self.min_dist!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.random_state is not None and not is_int(self.random_state):
            raise ValueError(f"random_state must be an integer or None, got {self.random_state!r}")
        if self.sample_size is not None and (not is_int(self.sample_size) or self.sample_size < self.n_neighbors + 2):
            raise ValueError(f"sample_size must be None or an integer >= n_neighbors + 2 ({self.n_neighbors + 2}), got {self.sample_size!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "method_"):
            raise ValueError("this Projection is not fitted yet; call fit(vectors) or Projection.load(folder) first")

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        """Rows as PCA sees them: unit length for angular metrics."""
        if self.metric in ("cosine", "correlation"):
            if self.metric == "correlation":
                vectors = vectors - vectors.mean(axis=1, keepdims=True)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1.0, norms)
        return vectors

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, vectors: np.ndarray) -> "Projection":
        """Learn the map from ``(N, D)`` vectors (float32; any finite values).

        Fits UMAP on all rows, or on a seeded sample of ``sample_size`` rows when N is
        larger; uses PCA when N < ``n_neighbors + 2``.

        Raises:
            ValueError: an argument is out of range (the message names the allowed
                values), or ``vectors`` is empty, not 2-D, or not finite.
        """
        self._validate_params()
        vectors = _as_vectors(vectors)
        count = len(vectors)
        if count == 0:
            raise ValueError("cannot fit a projection on zero vectors; add items to the space first")
        if self.sample_size is not None and count > self.sample_size:
            rng = np.random.default_rng(self.random_state)
            sample = np.sort(rng.choice(count, size=self.sample_size, replace=False)).astype(np.int64)
        else:
            sample = np.arange(count, dtype=np.int64)
        fit_vectors = vectors[sample]
        for name in ("umap_", "mean_", "components_"):
            self.__dict__.pop(name, None)
        if len(fit_vectors) < self.n_neighbors + 2:
            logger.info("projecting %d vectors with PCA (UMAP needs at least n_neighbors + 2 = %d)", len(fit_vectors), self.n_neighbors + 2)
            self.method_ = "pca"
            self._fit_pca(fit_vectors)
            embedding = self._transform_pca(fit_vectors)
        else:
            self.method_ = "umap"
            self.umap_ = self._new_umap()
            logger.info("fitting UMAP (%d-d) on %d of %d vectors", self.n_components, len(fit_vectors), count)
            embedding = self.umap_.fit_transform(fit_vectors)
        self.n_features_in_ = int(vectors.shape[1])
        self.n_samples_fit_ = int(len(sample))
        self.sample_indices_ = sample
        self.embedding_ = np.ascontiguousarray(embedding, dtype=np.float32)
        return self

    def _new_umap(self) -> Any:
        import umap  # imported on first fit: it takes seconds (numba)

        return umap.UMAP(
            n_components=self.n_components,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            transform_seed=self.random_state if self.random_state is not None else 42,
            n_jobs=1 if self.random_state is not None else -1,
            low_memory=True,
        )

    def _fit_pca(self, vectors: np.ndarray) -> None:
        prepared = self._prepare(vectors).astype(np.float64)
        self.mean_ = prepared.mean(axis=0).astype(np.float32)
        _, _, axes = np.linalg.svd(prepared - self.mean_, full_matrices=False)
        components = np.zeros((self.n_components, vectors.shape[1]), dtype=np.float64)
        rank = min(len(axes), self.n_components)
        components[:rank] = axes[:rank]
        # deterministic signs: the largest loading of every axis is positive
        signs = np.sign(components[np.arange(self.n_components), np.abs(components).argmax(axis=1)])
        components *= np.where(signs == 0, 1.0, signs)[:, None]
        self.components_ = components.astype(np.float32)

    def _transform_pca(self, vectors: np.ndarray) -> np.ndarray:
        return ((self._prepare(vectors) - self.mean_) @ self.components_.T).astype(np.float32)

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Coordinates ``(N, n_components)`` float32 of new ``(N, D)`` (or ``(D,)``) vectors in the fitted map."""
        self._check_fitted()
        vectors = _as_vectors(vectors, dim=self.n_features_in_)
        if len(vectors) == 0:
            return np.zeros((0, self.n_components), dtype=np.float32)
        if self.method_ == "pca":
            return self._transform_pca(vectors)
        return np.ascontiguousarray(self.umap_.transform(vectors), dtype=np.float32)

    def fit_transform(self, vectors: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """Fit (on a sample if large) and return coordinates ``(N, n_components)`` float32 of every row.

        Rows outside the fit sample are placed with :meth:`transform` in chunks of
        :data:`TRANSFORM_CHUNK`; ``progress(fraction, message)`` reports each step.
        """
        progress = progress or _no_progress
        vectors = _as_vectors(vectors)
        count = len(vectors)
        fit_count = count if self.sample_size is None else min(count, self.sample_size)
        progress(0.0, f"fitting the map on {fit_count:,} of {count:,} points")
        self.fit(vectors)
        coordinates = np.zeros((count, self.n_components), dtype=np.float32)
        coordinates[self.sample_indices_] = self.embedding_
        rest = np.setdiff1d(np.arange(count), self.sample_indices_)
        fit_share = 0.9 if len(rest) == 0 else 0.5
        progress(fit_share, "fitted" if len(rest) == 0 else f"placing {len(rest):,} more points")
        for start in range(0, len(rest), TRANSFORM_CHUNK):
            rows = rest[start : start + TRANSFORM_CHUNK]
            coordinates[rows] = self.transform(vectors[rows])
            done = start + len(rows)
            progress(fit_share + (0.9 - fit_share) * done / len(rest), f"placed {done:,} of {len(rest):,} more points")
        return coordinates

    # -- persistence ---------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write the fitted projection to ``folder`` (created): config.json, state.npz, umap.pkl."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"embedding": self.embedding_, "sample_indices": self.sample_indices_}
        if self.method_ == "pca":
            arrays.update(mean=self.mean_, components=self.components_)
        else:
            write_atomic(folder / "umap.pkl", lambda handle: pickle.dump(self.umap_, handle, protocol=pickle.HIGHEST_PROTOCOL))
        write_atomic(folder / "state.npz", lambda handle: np.savez(handle, **arrays))
        config = {
            "class": "Projection",
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "method": self.method_,
            "n_features_in": self.n_features_in_,
            "n_samples_fit": self.n_samples_fit_,
        }
        write_bytes_atomic(folder / "config.json", json.dumps(config, indent=2).encode())

    @classmethod
    def load(cls, folder: str | Path) -> "Projection":
        """Read a projection written by :meth:`save`.

        Raises:
            ValueError: ``folder`` holds no projection, or one in another format.
        """
        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
        except FileNotFoundError:
            raise ValueError(f"{folder} holds no projection (no config.json); fit one and save it there") from None
        if config.get("class") != "Projection" or config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / 'config.json'} is not a format-{FORMAT_VERSION} Projection")
        projection = cls(**config["params"])
        with np.load(folder / "state.npz") as state:
            projection.embedding_ = state["embedding"]
            projection.sample_indices_ = state["sample_indices"]
            if config["method"] == "pca":
                projection.mean_ = state["mean"]
                projection.components_ = state["components"]
        if config["method"] == "umap":
            with open(folder / "umap.pkl", "rb") as handle:
                projection.umap_ = pickle.load(handle)
        projection.method_ = config["method"]
        projection.n_features_in_ = int(config["n_features_in"])
        projection.n_samples_fit_ = int(config["n_samples_fit"])
        return projection


# -- a space's stored map -------------------------------------------------------------------------


@dataclass(frozen=True)
class SpaceProjection:
    """A space's map at one revision.

    Attributes:
        ids: ``(N,)`` int64 item ids, ascending (the space's order).
        coordinates: ``(N, C)`` float32 coordinates, row-aligned with ``ids``.
        revision: the space revision the map was computed at.
        projection: the fitted :class:`Projection` (places new vectors), or None when
            loaded with ``load_model=False`` (see :func:`load_space_projection`).
        folder: where the map is stored (None until saved).
    """

    ids: np.ndarray
    coordinates: np.ndarray
    revision: int
    projection: Projection | None
    folder: Path | None = None

    @property
    def n_components(self) -> int:
        return int(self.coordinates.shape[1])

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Coordinates ``(N, C)`` float32 of ``(N, D)`` or ``(D,)`` vectors (e.g. a query) in this map.

        Raises:
            ValueError: the map was loaded without its model (``load_model=False``).
        """
        if self.projection is None:
            raise ValueError("this map was loaded without its projection model; use with_model() to place new vectors")
        return self.projection.transform(vectors)

    def with_model(self) -> "SpaceProjection":
        """This map with its :class:`Projection` loaded (unpickling UMAP takes seconds)."""
        if self.projection is not None:
            return self
        if self.folder is None:
            raise ValueError("this map has no stored projection model to load")
        return SpaceProjection(self.ids, self.coordinates, self.revision, Projection.load(self.folder), self.folder)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in :attr:`ids` (``(K,)`` int64), -1 where the map does not hold it."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(self.ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        rows = np.clip(np.searchsorted(self.ids, ids), 0, len(self.ids) - 1)
        return np.where(self.ids[rows] == ids, rows, -1).astype(np.int64)


def projection_folder(space_path: str | Path, n_components: int = 2) -> Path:
    """``SPACE/projections/umap-{n}d``: where a space's ``n``-dimensional map is stored."""
    return Path(space_path) / PROJECTIONS / f"umap-{n_components}d"


def load_space_projection(space: Any, n_components: int = 2, allow_stale: bool = False, load_model: bool = True) -> SpaceProjection | None:
    """The stored map of ``space`` (a :class:`~embedspace.Space`), or None if missing, unreadable or stale.

    Args:
        space: the space (its ``path`` and ``revision`` are used).
        n_components: 2 or 3.
        allow_stale: also return a map stamped with another revision.
        load_model: also load the fitted projection (needed to place new vectors). Without
            it only the coordinates are read (milliseconds); :meth:`SpaceProjection.with_model`
            loads the model later.
    """
    folder = projection_folder(space.path, n_components)
    for _attempt in range(2):  # a concurrent writer may remove the folder we were pointed at
        try:
            current = json.loads((folder / CURRENT).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if not allow_stale and current.get("revision") != space.revision:
            return None
        data = folder / current["folder"]
        try:
            ids = np.load(data / "ids.npy")
            coordinates = np.load(data / "coordinates.npy")
            projection = Projection.load(data) if load_model else None
        except (FileNotFoundError, ValueError, OSError, pickle.UnpicklingError, EOFError) as error:
            logger.info("stored projection %s unreadable (%s)", data, error)
            continue
        return SpaceProjection(ids, coordinates, int(current["revision"]), projection, data)
    return None


def save_space_projection(space_path: str | Path, stored: SpaceProjection) -> Path:
    """Durably store ``stored`` (with its model) as the current map of the space at ``space_path``; returns its folder."""
    if stored.projection is None:
        raise ValueError("cannot save a map loaded without its projection model; load it with with_model() first")
    folder = projection_folder(space_path, stored.n_components)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"r{stored.revision:08d}"
    temporary = folder / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        stored.projection.save(temporary)
        write_atomic(temporary / "ids.npy", lambda handle: np.save(handle, stored.ids.astype(np.int64)))
        write_atomic(temporary / "coordinates.npy", lambda handle: np.save(handle, stored.coordinates.astype(np.float32)))
        if (folder / name).exists():  # another writer stored this revision first; theirs is as good
            shutil.rmtree(temporary)
        else:
            os.rename(temporary, folder / name)
            fsync_folder(folder)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)
    current = {"revision": stored.revision, "folder": name, "count": int(len(stored.ids)), "method": stored.projection.method_, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_bytes_atomic(folder / CURRENT, json.dumps(current, indent=2).encode())
    for old in folder.glob("r*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return folder / name


def project(
    ids: np.ndarray,
    vectors: np.ndarray,
    revision: int,
    projection: Projection,
    previous: SpaceProjection | None = None,
    progress: ProgressCallback | None = None,
) -> SpaceProjection:
    """Map ``(N,)`` ids with their ``(N, D)`` vectors, reusing ``previous`` when it still fits.

    When ``previous`` (a stale map of the same items' space) holds most of the ids, its
    fitted projection is kept: surviving items keep their coordinates, new items are
    placed with ``transform``. Otherwise (no previous map, or the new items exceed
    :data:`REFIT_GROWTH` of its fit) ``projection`` is fitted afresh.
    """
    progress = progress or _no_progress
    ids = np.asarray(ids, dtype=np.int64)
    vectors = _as_vectors(vectors)
    if len(ids) != len(vectors):
        raise ValueError(f"got {len(ids)} ids for {len(vectors)} vectors")
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        order = np.argsort(ids, kind="stable")
        ids, vectors = ids[order], vectors[order]
    if previous is not None:
        previous = previous.with_model()
    if previous is not None and previous.projection.n_features_in_ == vectors.shape[1]:
        rows = previous.positions(ids)
        new = rows < 0
        if new.sum() <= REFIT_GROWTH * previous.projection.n_samples_fit_:
            progress(0.1, f"placing {int(new.sum()):,} new points in the existing map")
            coordinates = np.zeros((len(ids), previous.n_components), dtype=np.float32)
            coordinates[~new] = previous.coordinates[rows[~new]]
            if new.any():
                coordinates[new] = previous.transform(vectors[new])
            return SpaceProjection(ids, coordinates, revision, previous.projection)
        logger.info("space grew by %d items since its map was fitted on %d; refitting", int(new.sum()), previous.projection.n_samples_fit_)
    coordinates = projection.fit_transform(vectors, progress)
    return SpaceProjection(ids, coordinates, revision, projection)


def compute_space_projection(
    space: Any,
    n_components: int = 2,
    projection: Projection | None = None,
    progress: ProgressCallback | None = None,
    refit: bool = False,
    previous: SpaceProjection | None = None,
) -> SpaceProjection:
    """Compute, store and return the map of ``space`` at its current revision.

    A stale stored map is extended (new items placed with ``transform``) unless
    ``refit`` is set or the space grew too much (see :func:`project`).

    Args:
        space: an :class:`~embedspace.Space`; not refreshed concurrently while this runs.
        n_components: 2 or 3.
        projection: an unfitted :class:`Projection` to use (default: ``Projection(n_components)``).
        progress: ``progress(fraction, message)`` callback.
        refit: ignore any stored map and fit afresh.
        previous: an older map of this space already in memory, to extend instead of
            the stored one (saves unpickling its model).

    Raises:
        ValueError: the space is empty, or ``projection`` has invalid arguments.
    """
    progress = progress or _no_progress
    projection = projection if projection is not None else Projection(n_components=n_components)
    if projection.n_components != n_components:
        raise ValueError(f"projection has n_components={projection.n_components!r} but a {n_components}-d map was asked for")
    revision = space.revision
    ids = space.items["id"].to_numpy().astype(np.int64)
    vectors = space.vectors
    if len(ids) == 0:
        raise ValueError(f"space {space.path} is empty; add items before computing its map")
    if refit:
        previous = None
    elif previous is None or previous.n_components != n_components:
        previous = load_space_projection(space, n_components, allow_stale=True)
    if previous is not None and previous.revision == revision:
        progress(1.0, "map is up to date")
        return previous
    stored = project(ids, vectors, revision, projection, previous, progress)
    progress(0.95, "saving the map")
    folder = save_space_projection(space.path, stored)
    progress(1.0, "map ready")
    return SpaceProjection(stored.ids, stored.coordinates, stored.revision, stored.projection, folder)


def space_projection(space: Any, n_components: int = 2, progress: ProgressCallback | None = None) -> SpaceProjection:
    """The current map of ``space``: the stored one if fresh, else computed and stored."""
    stored = load_space_projection(space, n_components)
    if stored is not None:
        return stored
    return compute_space_projection(space, n_components, progress=progress)
