"""The dashboard's maps: loaded or computed on the app's job runner, never in a request.

A :class:`SpaceMaps` keeps the latest 2-D and 3-D map of one space. A page asks
:meth:`SpaceMaps.status` and polls until the map is ready: the first ask (and the first
after the space changed) queues a :class:`MapJob` on the runner's
:data:`~dashboard.runner.MAPS` lane, which loads the stored map (coordinates first, in
milliseconds) or computes it with :func:`embedspace.maps.compute_space_projection`
(reporting progress), then loads the projection model so queries can be placed on it.
What is stored, and when a stored map is stale, is the library's business
(:mod:`embedspace.maps`); this module only schedules it and serves the results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dashboard.access import SpaceAccess
from dashboard.density import DENSITY_POINTS, LOD_POINTS, LOD_THRESHOLD, CellIndex, View, density_image, sample_priority, shape_mask, view_sample
from dashboard.figures import DensityLayer, MapPoints
from dashboard.runner import MAPS, JobRunner
from embedspace import SpaceError
from embedspace.maps import compute_space_projection, load_space_projection
from embedspace.projection import Projection
from embedspace.store_maps import SpaceProjection

logger = logging.getLogger(__name__)

#: Maps with at most this many points carry their labels for inline hover text.
INLINE_HOVER_LIMIT = 20_000
#: Map views and their number of components; "aligned" is the 2-D modality-aligned view (see embedspace.maps).
DIMS = {"2d": 2, "3d": 3, "aligned": 2}
ALIGNED_VIEWS = frozenset({"aligned"})


#: Samples (one per view) kept per large map for tracing events back to items.
SAMPLES_KEPT = 64


class LevelOfDetail:
    """How a large map is drawn for one colouring: a density-biased sample per view plus a density image.

    Built once per map revision and colour-by column (see :mod:`dashboard.density`); a
    view's sample is kept (the last :data:`SAMPLES_KEPT` views) so that click, hover and
    selection events on the drawn sample can be traced back to items.
    """

    def __init__(self, points: MapPoints, limit: int = LOD_POINTS, seed: int = 0):
        self.points = points
        self.limit = limit
        self.order = sample_priority(points.coordinates[:, :2], seed=seed)
        self.ordered = np.ascontiguousarray(points.coordinates[self.order, :2])
        self.full = View.around(points.coordinates[:, :2])
        self.seed = seed
        self._samples: dict[View | None, tuple[MapPoints, int]] = {}
        self._lock = threading.Lock()

    @cached_property
    def cells(self) -> CellIndex:
        """Every point by grid cell (built on the first density image: a 3-D map never needs it)."""
        return CellIndex.build(self.points.coordinates[:, :2])

    @cached_property
    def counted(self) -> CellIndex:
        """The points density images count in views holding more than :data:`DENSITY_POINTS`: a fixed uniform subset."""
        count = len(self.points.ids)
        if count <= DENSITY_POINTS:
            return self.cells
        subset = np.sort(np.random.default_rng(self.seed).choice(count, DENSITY_POINTS, replace=False))
        return CellIndex.build(self.points.coordinates[:, :2], subset)

    def sample(self, view: View | None) -> tuple[MapPoints, int]:
        """The points drawn for ``view`` (None: the whole map) and how many points the view holds."""
        with self._lock:
            if view in self._samples:
                return self._samples[view]
        rows, in_view = view_sample(self.ordered, self.order, view, self.limit)
        drawn = (self.points.subset(rows), in_view)
        with self._lock:
            if len(self._samples) >= SAMPLES_KEPT:
                self._samples.pop(next(iter(self._samples)))
            self._samples[view] = drawn
        return drawn

    def layer(self, view: View) -> tuple[MapPoints, DensityLayer]:
        """The sample for ``view`` and the density image of every point in it (2-D maps)."""
        points = self.points
        index = self.counted if self.cells.count(view) > DENSITY_POINTS else self.cells
        rows, coordinates = index.gather(view)  # only the points near the view are counted
        codes = None if points.codes is None else points.codes[rows]
        values = None if points.groups is not None else np.asarray(points.colour_values)[rows].astype(np.float32)
        source = density_image(coordinates, view, codes=codes, colours=points.colours(), values=values, limits=points.limits)
        sample, in_view = self.sample(view)
        return sample, DensityLayer(source, view, in_view, len(points.ids))


@dataclass(frozen=True)
class MapStatus:
    """Where a map stands: ``state`` is "ready", "computing" or "error".

    ``progress`` is a fraction in [0, 1]; ``message`` says what is happening (or what
    went wrong); ``revision`` is the ready map's space revision (None otherwise);
    ``placeable`` says whether queries can be placed on it yet (its projection model is
    loaded in the background after the coordinates).
    """

    state: str
    progress: float
    message: str
    revision: int | None = None
    placeable: bool = False


class MapJob:
    """Loading or computing one map: its view, the revision it is for, progress, message and error."""

    def __init__(self, dims: str, revision: int):
        self.dims = dims
        self.revision = revision
        self.progress = 0.0
        self.message = "starting"
        self.error: str | None = None
        self.started = time.monotonic()
        self.done = threading.Event()

    def report(self, fraction: float, message: str) -> None:
        """Progress callback of :func:`embedspace.maps.compute_space_projection`."""
        self.progress, self.message = float(fraction), message

    @property
    def running(self) -> bool:
        return not self.done.is_set()


class SpaceMaps:
    """The 2-D and 3-D maps of one space for the dashboard (thread-safe).

    Args:
        access: the app's space access (the space's revision and items).
        runner: the app's job runner (map jobs run on its :data:`~dashboard.runner.MAPS` lane).
        projection_factory: ``n_components -> Projection`` for new maps (default
            ``Projection(n_components)``).
        inline_hover_limit: maps up to this size carry labels for hover text.
        lod_threshold: maps with more points are drawn as a density image under a
            sample of the points in view (2-D) or as a sample (3-D); see :mod:`dashboard.density`.
        lod_points: most points in that sample.
    """

    def __init__(
        self,
        access: SpaceAccess,
        runner: JobRunner,
        projection_factory: Callable[[int], Projection] | None = None,
        inline_hover_limit: int = INLINE_HOVER_LIMIT,
        lod_threshold: int = LOD_THRESHOLD,
        lod_points: int = LOD_POINTS,
    ):
        self.access = access
        self.lod_threshold = lod_threshold
        self.lod_points = lod_points
        self._lod_cache: dict[tuple, LevelOfDetail] = {}
        self.runner = runner
        self.projection_factory = projection_factory or (lambda n_components: Projection(n_components=n_components))
        self.inline_hover_limit = inline_hover_limit
        self._lock = threading.RLock()  # maps and jobs
        self._transform_lock = threading.Lock()  # placing queries (UMAP's transform)
        self._maps: dict[str, SpaceProjection] = {}
        self._jobs: dict[str, MapJob] = {}
        self._placeable: dict[str, threading.Event] = {dims: threading.Event() for dims in DIMS}
        self._points_cache: dict[tuple, MapPoints] = {}

    # -- status and jobs -------------------------------------------------------------------------

    def status(self, dims: str) -> MapStatus:
        """Whether the ``dims`` ("2d", "3d" or "aligned") map is ready; queues loading or computing it when needed.

        Raises:
            SpaceError: ``dims`` is not a map view.
        """
        if dims not in DIMS:
            raise SpaceError(f"unknown map view {dims!r}; use {', '.join(DIMS)}")
        revision = self.access.revision()
        with self._lock:
            current = self._maps.get(dims)
            if current is not None and current.revision >= revision:
                detail = f" · density of all, {min(self.lod_points, len(current.ids)):,} drawn from the view" if len(current.ids) > self.lod_threshold else ""
                return MapStatus("ready", 1.0, f"{len(current.ids):,} points{detail}", current.revision, current.projection is not None)
            job = self._jobs.get(dims)
            if job is not None and job.running:
                seconds = time.monotonic() - job.started
                return MapStatus("computing", job.progress, f"{job.message} ({seconds:.0f} s)")
            if job is not None and job.error is not None and job.revision == revision:
                return MapStatus("error", 0.0, job.error)
            job = MapJob(dims, revision)
            self._jobs[dims] = job
            self._placeable[dims].clear()
        self.runner.submit(MAPS, lambda: self._run(job), name=f"map {dims}")
        return MapStatus("computing", 0.0, "starting")

    def _run(self, job: MapJob) -> None:
        """Load (or compute) the map, show it, then load its model so queries can be placed."""
        n_components = DIMS[job.dims]
        aligned = job.dims in ALIGNED_VIEWS
        try:
            space = self.access.open_copy()
            job.revision = space.revision
            stored = load_space_projection(space, n_components, load_model=False, aligned=aligned)  # coordinates only: fast
            if stored is None:
                job.report(0.0, "computing map")
                with self._lock:
                    older = self._maps.get(job.dims)
                stored = compute_space_projection(
                    space,
                    n_components,
                    projection=self.projection_factory(n_components),
                    progress=job.report,
                    previous=older if older is not None and older.projection is not None else None,
                    aligned=aligned,
                )
            if len(stored.ids) > self.lod_threshold and n_components == 2:
                job.report(0.9, "preparing the density view")
                density_image(stored.coordinates[:64], View.around(stored.coordinates[:64]))  # compiles datashader now, not on the first page
            with self._lock:
                self._maps[job.dims] = stored  # the page can draw the map from here on
            job.report(0.97, "loading the projection model to place queries")
            stored = stored.with_model()
            stored.transform(space.vectors_of(stored.ids[:1]))  # compiles UMAP's transform now, not on the first search
            with self._lock:
                if self._maps.get(job.dims) is not None and self._maps[job.dims].revision == stored.revision:
                    self._maps[job.dims] = stored
            job.report(1.0, "map ready")
        except ValueError as error:
            job.error = str(error)
            logger.warning("map %s of %s failed: %s", job.dims, self.access.path, error)
        except Exception as error:  # keep serving; the page shows the message
            job.error = f"computing the map failed: {error}"
            logger.exception("map %s of %s failed", job.dims, self.access.path)
        finally:
            self._placeable[job.dims].set()
            job.done.set()

    def wait_for_map(self, dims: str, timeout: float = 600.0) -> MapStatus:
        """Block until the ``dims`` map is ready and placeable, or failed (for scripts and tests; pages poll instead)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(dims)
            if status.state == "error" or (status.state == "ready" and status.placeable) or time.monotonic() > deadline:
                return status
            with self._lock:
                job = self._jobs.get(dims)
            if job is not None and job.running:
                job.done.wait(max(0.0, min(1.0, deadline - time.monotonic())))
            else:
                self._placeable[dims].wait(max(0.0, min(0.05, deadline - time.monotonic())))

    # -- what the page draws -----------------------------------------------------------------------

    def _map(self, dims: str) -> SpaceProjection | None:
        with self._lock:
            return self._maps.get(dims)

    def points(self, dims: str, colour_by: str) -> MapPoints | None:
        """The points of the latest ``dims`` map with colours from column ``colour_by`` (None before the first map)."""
        stored = self._map(dims)
        if stored is None:
            return None
        items, revision = self.access.items_table()
        key = (dims, stored.revision, colour_by, revision)
        with self._lock:
            if key in self._points_cache:
                return self._points_cache[key]
        item_ids = items["id"].to_numpy()
        rows = np.clip(np.searchsorted(item_ids, stored.ids), 0, max(len(item_ids) - 1, 0))
        known = item_ids[rows] == stored.ids if len(item_ids) else np.zeros(len(stored.ids), bool)
        column = colour_by if colour_by in items.columns else "modality"
        values = items[column].to_numpy()[rows]
        if not known.all():
            values = values.astype(object)
            values[~known] = None
        labels = None
        if len(stored.ids) <= self.inline_hover_limit:
            labels = np.where(known, items["label"].to_numpy()[rows], "")
        points = MapPoints(stored.ids, stored.coordinates, values, column, labels, stored.revision, stored.cluster_info)
        with self._lock:
            self._points_cache = {key: points}
        return points

    def large(self, dims: str) -> bool:
        """Whether the ``dims`` map has more points than the level-of-detail threshold."""
        stored = self._map(dims)
        return stored is not None and len(stored.ids) > self.lod_threshold

    def level_of_detail(self, dims: str, colour_by: str) -> LevelOfDetail | None:
        """The :class:`LevelOfDetail` of a large map for a colouring (built once), or None for a map drawn whole."""
        points = self.points(dims, colour_by)
        if points is None or len(points.ids) <= self.lod_threshold:
            return None
        key = (dims, points.revision, points.colour_name, id(points))
        with self._lock:
            if key in self._lod_cache:
                return self._lod_cache[key]
        lod = LevelOfDetail(points, self.lod_points)
        with self._lock:
            self._lod_cache = {cached: value for cached, value in self._lod_cache.items() if cached[0] != dims}
            self._lod_cache[key] = lod
        return lod

    def drawn(self, dims: str, colour_by: str, view: View | None = None) -> tuple[MapPoints | None, DensityLayer | None]:
        """What the page draws of the ``dims`` map: its points and no layer for a map drawn whole; for a large
        2-D map the sample for ``view`` (default: the whole map) and its density layer; for a large 3-D map a sample."""
        lod = self.level_of_detail(dims, colour_by)
        if lod is None:
            return self.points(dims, colour_by), None
        if DIMS[dims] != 2:
            return lod.sample(None)[0], None
        return lod.layer(view or lod.full)

    def drawn_points(self, dims: str, colour_by: str, view: View | None = None) -> MapPoints | None:
        """The points :meth:`drawn` gives for a view, without rendering an image (to read events)."""
        lod = self.level_of_detail(dims, colour_by)
        if lod is None:
            return self.points(dims, colour_by)
        return lod.sample(None if DIMS[dims] != 2 else view or lod.full)[0]

    def select(self, dims: str, shape: dict | None = None, cluster: int | None = None) -> tuple[np.ndarray, int | None]:
        """Item ids of **all** points of the ``dims`` map inside a box or lasso (plotly ``selectedData``
        with ``range`` or ``lassoPoints``) or in a named cluster, in map order, and the map's revision.

        Returns an empty array (and None) before the map exists or without a shape or cluster.
        """
        stored = self._map(dims)
        if stored is None:
            return np.zeros(0, np.int64), None
        if cluster is not None:
            if stored.clusters is None:
                return np.zeros(0, np.int64), stored.revision
            return stored.ids[stored.clusters == int(cluster)], stored.revision
        mask = shape_mask(stored.coordinates[:, :2], shape) if DIMS[dims] == 2 else None
        if mask is None:
            return np.zeros(0, np.int64), stored.revision
        return stored.ids[mask], stored.revision

    def clusters(self, dims: str) -> list[tuple[int, str, int]]:
        """``(cluster, name, size)`` of the ``dims`` map's named clusters, largest first (empty before the map or without clusters)."""
        stored = self._map(dims)
        if stored is None or stored.clusters is None:
            return []
        return [(cluster.cluster, cluster.name, cluster.size) for cluster in stored.cluster_info]

    def coordinates_of(self, dims: str, ids: list[int]) -> np.ndarray:
        """``(K, C)`` float32 map coordinates of items (NaN rows for items not in the map)."""
        stored = self._map(dims)
        if stored is None:
            return np.full((len(ids), DIMS[dims]), np.nan, np.float32)
        rows = stored.positions(np.asarray(ids, dtype=np.int64))
        coordinates = stored.coordinates[np.maximum(rows, 0)].copy()
        coordinates[rows < 0] = np.nan
        return coordinates

    def place(self, dims: str, vector: np.ndarray, wait: float = 120.0) -> np.ndarray | None:
        """``(C,)`` float32 position of a ``(D,)`` query vector in the ``dims`` map (the projection's ``transform``).

        None before the map exists, or if its model could not be loaded within ``wait`` seconds
        (right after start the model may still be loading in the background).
        """
        stored = self._map(dims)
        if stored is None:
            return None
        if stored.projection is None:
            self._placeable[dims].wait(wait)
            stored = self._map(dims)
            if stored is None or stored.projection is None:
                return None
        with self._transform_lock:
            return stored.transform(np.asarray(vector, dtype=np.float32)[None, :])[0]

    def place_many(self, dims: str, vectors: np.ndarray) -> np.ndarray:
        """``(K, C)`` float32 positions of ``(K, D)`` vectors in the ``dims`` map (NaN rows until it can place them).

        Never waits: before the projection model is loaded every row is NaN (the map is redrawn when it is).
        """
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        stored = self._map(dims)
        if stored is None or stored.projection is None or len(vectors) == 0:
            return np.full((len(vectors), DIMS[dims]), np.nan, np.float32)
        with self._transform_lock:
            return np.asarray(stored.transform(vectors), dtype=np.float32)
