"""A space's map: the stored one while fresh; when stale, extended with ``transform`` or refitted.

A stored map (see :mod:`embedspace.store_maps`) is *stale* when its revision differs from
``space.revision``; it is then updated: new items are placed with
:meth:`~embedspace.projection.Projection.transform` and removed ones dropped, or the map is
refitted when the space has grown by more than :data:`REFIT_GROWTH` since the fit. Maps
are read and written through the space's store (:attr:`embedspace.Space.store`).

**At scale** the map never holds every vector at once: the projection is fitted on a
sample (:meth:`~embedspace.projection.Projection.choose_sample`: at most ``sample_size``
items, 200,000 by default, seeded, stratified by modality) gathered by id, and every other
item is placed with ``transform`` in batches of :data:`TRANSFORM_BATCH` ids. A batch
worker (:class:`BatchPlacer`) gathers its batch's vectors from the space itself and
carries the fitted projection as plain arrays (:meth:`Projection.state`), so the batches
run in a plain loop or in parallel on Ray (:func:`embedspace.engine.map_batches`, local
or a cluster by address, whose workers see the space's folder), with progress reported
after every batch (or every wave of batches on Ray). Nothing is pickled to disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from embedspace.clusters import find_clusters, name_clusters
from embedspace.projection import Projection, ProgressCallback
from embedspace.store_maps import SpaceProjection
from embedspace.vectors import as_matrix

if TYPE_CHECKING:
    from embedspace.space import Space

logger = logging.getLogger(__name__)

#: A stale stored map is refitted, not extended, once the items outside its fit exceed this fraction of it.
REFIT_GROWTH = 0.25
#: Ids per ``transform`` batch (one engine task each; bounds a worker's memory to about 50,000 x D floats).
TRANSFORM_BATCH = 50_000

#: ``run_batches(function, batches) -> [function(batch) for batch in batches]``, in order (e.g. on an engine).
RunBatches = Callable[[Callable[[np.ndarray], np.ndarray], Sequence[np.ndarray]], list[np.ndarray]]


class VectorSource(Protocol):
    """Where a map reads vectors from: a :class:`~embedspace.Space`, :class:`SpaceVectors`, or a benchmark's generator."""

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """``(n, D)`` float32 vectors of ``(n,)`` int64 ids, row-aligned with them."""
        ...


class SpaceVectors:
    """A space's vectors by id, opened by path in whichever process reads them (what a Ray worker gets instead of the Space).

    The space's folder must be visible to the workers (the same machine, or a shared file
    system on a cluster), as it is for ingest.

    Args:
        path: the space's folder.
        space: the space already open in this process, if any (used here, never sent).
    """

    def __init__(self, path: str | Path, space: Any = None):
        self.path = str(path)
        self._space = space

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        """``(n, D)`` float32 vectors of ``(n,)`` int64 ids (the space is opened on first use)."""
        if self._space is None:
            from embedspace.space import Space

            self._space = Space.open(self.path)
        return self._space.vectors_of(ids)

    def __getstate__(self) -> dict[str, Any]:  # what travels to a worker: the path, never an open space
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._space = state["path"], None


class AlignedVectors:
    """Vectors of a source with their modality's mean removed: what the modality-aligned view projects.

    Args:
        source: where the vectors come from (a Space, :class:`SpaceVectors`, ...).
        ids: ``(N,)`` int64 ids of every item the map holds, ascending.
        modalities: ``(N,)`` modality of each of them.
        means: modality -> ``(D,)`` mean vector.
    """

    def __init__(self, source: VectorSource, ids: np.ndarray, modalities: np.ndarray, means: dict[str, np.ndarray]):
        self.source = source
        self.ids = np.asarray(ids, dtype=np.int64)
        names = list(means)
        self.means = np.stack([means[name] for name in names]).astype(np.float32)
        self.codes = np.array([names.index(value) for value in modalities], dtype=np.int16) if len(modalities) else np.zeros(0, np.int16)

    def vectors_of(self, ids: np.ndarray) -> np.ndarray:
        rows = np.searchsorted(self.ids, np.asarray(ids, dtype=np.int64))
        return self.source.vectors_of(ids) - self.means[self.codes[rows]]


def modality_means(source: VectorSource, ids: np.ndarray, modalities: np.ndarray, batch_rows: int = 65_536) -> dict[str, np.ndarray]:
    """Each modality's mean vector over ``ids`` (read in batches, never all at once), modalities in text, image, audio order."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for start in range(0, len(ids), batch_rows):
        vectors = source.vectors_of(ids[start : start + batch_rows])
        labels = np.asarray(modalities[start : start + batch_rows])
        for name in np.unique(labels):
            chosen = vectors[labels == name]
            sums[name] = sums.get(name, 0) + chosen.sum(axis=0, dtype=np.float64)
            counts[name] = counts.get(name, 0) + len(chosen)
    order = [name for name in ("text", "image", "audio") if name in sums] + sorted(set(sums) - {"text", "image", "audio"})
    return {str(name): (sums[name] / counts[name]).astype(np.float32) for name in order}


class BatchPlacer:
    """Places one batch of ids in a fitted map: gathers their vectors from ``source`` and transforms them.

    Holds the fitted projection as its plain state (:meth:`Projection.state`: a JSON-able
    config and arrays), so it travels to engine workers without pickle files; a worker
    rebuilds the projection (and its neighbour index) once, on its first batch.

    Args:
        projection: a fitted :class:`Projection`.
        source: what reads the vectors (:class:`SpaceVectors` for workers in other processes).
    """

    def __init__(self, projection: Projection, source: VectorSource):
        self.config, self.arrays = projection.state()
        self.source = source
        self._projection: Projection | None = projection

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        """``(n, C)`` float32 map coordinates of the ``(n,)`` int64 ids."""
        if self._projection is None:
            self._projection = Projection.from_state(self.config, self.arrays)
        return self._projection.transform(self.source.vectors_of(ids))

    def __getstate__(self) -> dict[str, Any]:  # plain data only: the rebuilt projection (with its FAISS index) stays behind
        return {"config": self.config, "arrays": self.arrays, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config, self.arrays, self.source, self._projection = state["config"], state["arrays"], state["source"], None


def _plain_loop(function: Callable[[np.ndarray], np.ndarray], batches: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [function(batch) for batch in batches]


def place(
    ids: np.ndarray,
    placer: Callable[[np.ndarray], np.ndarray],
    progress: ProgressCallback,
    span: tuple[float, float] = (0.0, 1.0),
    run_batches: RunBatches | None = None,
    batch_rows: int = TRANSFORM_BATCH,
    wave: int = 1,
) -> np.ndarray:
    """Coordinates ``(n, C)`` float32 of ``(n,)`` ids, placed in batches of ``batch_rows`` ids.

    ``run_batches`` runs ``wave`` batches at a time (default: a plain loop); ``progress``
    moves across ``span`` after each wave.
    """
    _check_batch_rows(batch_rows)
    run_batches = run_batches or _plain_loop
    starts = list(range(0, len(ids), batch_rows))
    parts: list[np.ndarray] = []
    for first in range(0, len(starts), wave):
        batches = [ids[start : start + batch_rows] for start in starts[first : first + wave]]
        parts.extend(np.asarray(result, dtype=np.float32) for result in run_batches(placer, batches))
        done = min(len(ids), (first + wave) * batch_rows)
        progress(span[0] + (span[1] - span[0]) * done / len(ids), f"placed {done:,} of {len(ids):,} more points")
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def _no_progress(fraction: float, message: str) -> None:
    """Default progress callback: log at debug level."""
    logger.debug("map %.0f%%: %s", 100 * fraction, message)


def load_space_projection(
    space: Space, n_components: int = 2, allow_stale: bool = False, load_model: bool = True, aligned: bool = False
) -> SpaceProjection | None:
    """The stored map of ``space``, or None if missing, damaged or stale.

    A damaged or old-format map is logged as a warning naming the file and treated as
    missing, so callers recompute it (see :func:`embedspace.store_maps.read_map`).

    Args:
        space: the space (its store and ``revision`` are used).
        n_components: 2 or 3.
        allow_stale: also return a map stamped with another revision.
        load_model: also load the fitted projection (needed to place new vectors). Without
            it only the coordinates are read (milliseconds); :meth:`SpaceProjection.with_model`
            loads the model later.
        aligned: the modality-aligned view instead of the plain map.
    """
    return space.store.read_map(n_components, revision=None if allow_stale else space.revision, load_model=load_model, aligned=aligned)


def _check_batch_rows(batch_rows: Any) -> None:
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive integer, got {batch_rows!r}")


def project(
    ids: np.ndarray,
    source: VectorSource,
    revision: int,
    projection: Projection,
    previous: SpaceProjection | None = None,
    progress: ProgressCallback | None = None,
    strata: np.ndarray | None = None,
    run_batches: RunBatches | None = None,
    batch_rows: int = TRANSFORM_BATCH,
    wave: int = 1,
) -> SpaceProjection:
    """Map ``(N,)`` ids whose vectors ``source`` gives, reusing ``previous`` when it still fits.

    When ``previous`` (a stale map of the same items' space) holds most of the ids, its
    fitted projection is kept: surviving items keep their coordinates, new items are
    placed with ``transform``. Otherwise (no previous map, or the new items exceed
    :data:`REFIT_GROWTH` of its fit) ``projection`` is fitted afresh on a sample of the
    ids (``strata``, ``(N,)`` labels such as modalities, keep their shares of it) and the
    other ids are placed with ``transform``. Placing runs in batches of ``batch_rows`` ids
    through ``run_batches`` (see :func:`place`); vectors are read per batch, never all at once.
    """
    progress = progress or _no_progress
    _check_batch_rows(batch_rows)
    ids = np.asarray(ids, dtype=np.int64)
    if strata is not None and len(strata) != len(ids):
        raise ValueError(f"got {len(strata)} strata for {len(ids)} ids")
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        strata = None if strata is None else np.asarray(strata)[order]
    if previous is not None:
        previous = previous.with_model()
    if previous is not None and previous.projection.n_features_in_ == _dimension(source, ids):
        rows = previous.positions(ids)
        new = rows < 0
        if new.sum() <= REFIT_GROWTH * previous.projection.n_samples_fit_:
            progress(0.1, f"placing {int(new.sum()):,} new points in the existing map")
            coordinates = np.zeros((len(ids), previous.n_components), dtype=np.float32)
            coordinates[~new] = previous.coordinates[rows[~new]]
            if new.any():
                placer = BatchPlacer(previous.projection, source)
                coordinates[new] = place(ids[new], placer, progress, (0.1, 0.9), run_batches, batch_rows, wave)
            return SpaceProjection(ids, coordinates, revision, previous.projection)
        logger.info("space grew by %d items since its map was fitted on %d; refitting", int(new.sum()), previous.projection.n_samples_fit_)
    sample = projection.choose_sample(len(ids), strata)
    progress(0.0, f"fitting the map on {len(sample):,} of {len(ids):,} points")
    projection.fit(as_matrix(source.vectors_of(ids[sample])))
    projection.sample_indices_ = sample  # rows of ``ids`` (the fit saw exactly these, in this order)
    coordinates = np.zeros((len(ids), projection.n_components), dtype=np.float32)
    coordinates[sample] = projection.embedding_
    rest = np.delete(np.arange(len(ids)), sample)
    if len(rest):
        progress(0.5, f"placing {len(rest):,} more points")
        coordinates[rest] = place(ids[rest], BatchPlacer(projection, source), progress, (0.5, 0.9), run_batches, batch_rows, wave)
    return SpaceProjection(ids, coordinates, revision, projection)


def _dimension(source: VectorSource, ids: np.ndarray) -> int:
    """D of the vectors ``source`` gives (read from one id)."""
    return int(source.vectors_of(ids[:1]).shape[1]) if len(ids) else 0


def compute_space_projection(
    space: Space,
    n_components: int = 2,
    projection: Projection | None = None,
    progress: ProgressCallback | None = None,
    refit: bool = False,
    previous: SpaceProjection | None = None,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    run_batches: RunBatches | None = None,
    batch_rows: int = TRANSFORM_BATCH,
    aligned: bool = False,
) -> SpaceProjection:
    """Compute, store and return the map of ``space`` at its current revision.

    A stale stored map is extended (new items placed with ``transform``) unless
    ``refit`` is set or the space grew too much (see :func:`project`). The fit uses a
    sample of at most ``projection.sample_size`` items (stratified by modality); the
    others are placed in batches of :data:`TRANSFORM_BATCH` on ``engine``.

    Args:
        space: the space; not refreshed concurrently while this runs.
        n_components: 2 or 3.
        projection: an unfitted :class:`Projection` to use (default: ``Projection(n_components)``).
        progress: ``progress(fraction, message)`` callback.
        refit: ignore any stored map and fit afresh.
        previous: an older map of this space already in memory, to extend instead of
            the stored one (saves reading its model).
        engine: ``"local"`` (a plain loop, default) or ``"ray"`` (batches in parallel on Ray;
            workers read vectors from the space's folder).
        workers: Ray workers (default: one per CPU); ``address``: a Ray cluster to join.
        run_batches: runs the transform batches instead of ``engine`` (``run_batches(function,
            batches) -> results in order``).
        batch_rows: ids per transform batch (default :data:`TRANSFORM_BATCH`).
        aligned: compute the modality-aligned view instead (stored beside the plain map,
            ``projections/umap-{n}d-aligned``): each modality's mean vector is removed from
            its items' vectors before projecting, so an image lands next to its caption and
            a clip next to both instead of on a modality's own island. A view: the stored
            vectors and every search are unchanged.

    Raises:
        ValueError: the space is empty, or ``projection`` has invalid arguments.
        SpaceError: a bad engine, worker count or unreachable address (before any work).
    """
    progress = progress or _no_progress
    projection = projection if projection is not None else Projection(n_components=n_components)
    if projection.n_components != n_components:
        raise ValueError(f"projection has n_components={projection.n_components!r} but a {n_components}-d map was asked for")
    revision = space.revision
    items = space.items
    ids = items["id"].to_numpy().astype(np.int64)
    if len(ids) == 0:
        raise ValueError(f"space {space.path} is empty; add items before computing its map")
    if refit:
        previous = None
    elif previous is None or previous.n_components != n_components or previous.aligned != aligned:
        previous = load_space_projection(space, n_components, allow_stale=True, aligned=aligned)
    if previous is not None and previous.revision == revision:
        progress(1.0, "map is up to date")
        return previous
    strata = items["modality"].to_numpy() if "modality" in items else None
    session: Any = nullcontext()
    wave = 1
    source = SpaceVectors(space.path, space)
    if run_batches is None:
        from embedspace.engine import check_engine, map_batches, ray_session

        check_engine(engine, workers, address)

        def run_batches(function: Callable[[np.ndarray], np.ndarray], batches: Sequence[np.ndarray]) -> list[np.ndarray]:
            return map_batches(function, batches, engine=engine, workers=workers, address=address)

        if engine == "ray":
            session = ray_session(workers, address)  # one Ray for every wave of batches
            wave = 2 * (workers or os.cpu_count() or 1)
            source = SpaceVectors(space.path)  # workers open the space themselves
    means = None
    if aligned:
        modalities = items["modality"].to_numpy()
        means = previous.modality_means if previous is not None else modality_means(space, ids, modalities)
        source = AlignedVectors(source, ids, modalities, means)
    with session:
        stored = project(ids, source, revision, projection, previous, progress, strata, run_batches, batch_rows, wave)
    stored = replace(stored, modality_means=means)
    progress(0.92, "finding and naming clusters")
    stored = with_clusters(space, stored, items)
    progress(0.95, "saving the map")
    folder = space.store.write_map(stored)
    progress(1.0, "map ready")
    return replace(stored, folder=folder)


def with_clusters(space: Space, stored: SpaceProjection, items: Any = None) -> SpaceProjection:
    """``stored`` with its clusters found on the map and named from the space's nearest texts (see :mod:`embedspace.clusters`)."""
    items = space.items if items is None else items
    labels_by_id = items.set_index("id")["label"]
    has_texts = bool((items["modality"] == "text").any())
    clusters = find_clusters(stored.coordinates)

    def nearest_texts(centre: np.ndarray, count: int) -> list[str]:
        return [str(label) for label in space.search(centre, k=count, modality="text")["label"]]

    info = name_clusters(
        clusters,
        stored.coordinates,
        vectors_of=lambda rows: space.vectors_of(stored.ids[rows]),
        nearest_texts=nearest_texts if has_texts else None,
        names_of=lambda rows: [str(label) for label in labels_by_id.loc[stored.ids[rows]]],
    )
    logger.info("map of %s: %d clusters (%s)", space.path, len(info), "; ".join(cluster.name for cluster in info[:5]))
    return replace(stored, clusters=clusters, cluster_info=tuple(info))


def space_projection(space: Space, n_components: int = 2, progress: ProgressCallback | None = None) -> SpaceProjection:
    """The current map of ``space``: the stored one if fresh, else computed and stored."""
    stored = load_space_projection(space, n_components)
    if stored is not None:
        return stored
    return compute_space_projection(space, n_components, progress=progress)
