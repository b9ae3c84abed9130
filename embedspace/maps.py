"""A space's map: the stored one while fresh; when stale, extended with ``transform`` or refitted.

A stored map (see :mod:`embedspace.store_maps`) is *stale* when its revision differs from
``space.revision``; it is then updated: new items are placed with
:meth:`~embedspace.projection.Projection.transform` and removed ones dropped, or the map is
refitted when the space has grown by more than :data:`REFIT_GROWTH` since the fit. Maps
are read and written through the space's store (:attr:`embedspace.Space.store`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from embedspace.projection import Projection, ProgressCallback
from embedspace.store_maps import SpaceProjection
from embedspace.vectors import as_matrix

if TYPE_CHECKING:
    from embedspace.space import Space

logger = logging.getLogger(__name__)

#: A stale stored map is refitted, not extended, once the items outside its fit exceed this fraction of it.
REFIT_GROWTH = 0.25


def _no_progress(fraction: float, message: str) -> None:
    """Default progress callback: log at debug level."""
    logger.debug("map %.0f%%: %s", 100 * fraction, message)


def load_space_projection(space: Space, n_components: int = 2, allow_stale: bool = False, load_model: bool = True) -> SpaceProjection | None:
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
    """
    return space.store.read_map(n_components, revision=None if allow_stale else space.revision, load_model=load_model)


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
    vectors = as_matrix(vectors)
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
    space: Space,
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
        space: the space; not refreshed concurrently while this runs.
        n_components: 2 or 3.
        projection: an unfitted :class:`Projection` to use (default: ``Projection(n_components)``).
        progress: ``progress(fraction, message)`` callback.
        refit: ignore any stored map and fit afresh.
        previous: an older map of this space already in memory, to extend instead of
            the stored one (saves reading its model).

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
    folder = space.store.write_map(stored)
    progress(1.0, "map ready")
    return SpaceProjection(stored.ids, stored.coordinates, stored.revision, stored.projection, folder)


def space_projection(space: Space, n_components: int = 2, progress: ProgressCallback | None = None) -> SpaceProjection:
    """The current map of ``space``: the stored one if fresh, else computed and stored."""
    stored = load_space_projection(space, n_components)
    if stored is not None:
        return stored
    return compute_space_projection(space, n_components, progress=progress)
