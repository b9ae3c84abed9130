"""Projection: a UMAP map of embedding vectors to 2-D or 3-D (the estimator only).

:class:`Projection` wraps UMAP (McInnes, Healy & Melville, "UMAP: Uniform Manifold
Approximation and Projection for Dimension Reduction", 2018) with the scikit-learn
contract: the constructor only stores arguments, :meth:`Projection.fit` validates them
and learns, learned state ends in ``_``, and :meth:`Projection.transform` places new
vectors in a fitted map.

Two rules keep it usable on any space:

- **Tiny inputs** (fewer than ``n_neighbors + 2`` vectors) cannot hold a meaningful
  neighbour graph, so the map is the PCA of the vectors instead (scikit-learn's
  :class:`~sklearn.decomposition.PCA`, full SVD: exact, deterministic, instant; its
  centre and axes are kept as arrays); ``method_`` says which one was used.
  ``transform`` follows the same method.
- **Large inputs** (more than ``sample_size`` vectors, default 200,000) fit UMAP (or
  PCA) on a seeded random sample (:meth:`Projection.choose_sample`, stratified by a
  label such as the modality when one is given) and place the remaining vectors with
  ``transform`` (:meth:`Projection.fit_transform` does both, in chunks, reporting
  progress; :mod:`embedspace.maps` does it for a space in batches, on an engine, without
  loading every vector at once).

**How new vectors are placed, and why not with UMAP's own ``transform``.** UMAP's
``transform`` needs the fitted ``umap.UMAP`` object (its nearest-neighbour index and
graph), which can only be saved as a pickle, and loading a pickle runs whatever code it
names. A space folder is shared and untrusted, so a fitted map keeps arrays only: the
fitted sample's vectors ``fit_vectors_`` and their map positions ``embedding_``.
:meth:`Projection.transform` places a new vector at the weighted average of the map
positions of its ``n_neighbors`` nearest fitted vectors (brute force, in ``metric``),
weighted by UMAP's fuzzy membership strength ``exp(-d / sigma)`` with ``sigma`` chosen
per point so the weights sum to ``log2(n_neighbors)``; a vector equal to a fitted one
lands on it. This is exactly the starting position UMAP's ``transform`` computes
(``init_graph_transform``), without the 30-100 optimisation epochs it runs afterwards:
new points land among their neighbours as with UMAP, slightly smoother (never pushed
apart by UMAP's repulsion). It is deterministic, identical before and after a reload.

The neighbour search is exact (``n_samples_fit_ * D`` multiply-adds per point) up to
:data:`EXACT_TRANSFORM_MAX` fitted vectors; above that (or when ``n_lists`` says so) it
is an inverted-file search (FAISS ``IndexIVFFlat``, Jégou, Douze & Schmid, "Product
quantization for nearest neighbor search", 2011): the fitted vectors are grouped by
k-means into ``n_lists_`` lists (about 4·sqrt(M), as the FAISS guidelines advise) and a
query scans its ``n_probe`` nearest lists, so placing 800,000 points among 200,000 fitted
ones takes minutes instead of hours. The centroids and each fitted vector's list are
learned state (arrays), so the index is rebuilt identically after a reload or on a worker.

A fitted projection saves to a folder as ``config.json`` and ``state.npz`` (arrays only,
read with ``allow_pickle=False`` and checked before use; :meth:`Projection.save` /
:meth:`Projection.load`); in memory the same pair is :meth:`Projection.state` /
:meth:`Projection.from_state`, which is how a fitted map travels to batch workers. Where a space keeps its maps is :mod:`embedspace.store_maps`;
when a stored map is stale and how it is updated is :mod:`embedspace.maps`.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from embedspace.durable import write_atomic, write_bytes_atomic
from embedspace.vectors import as_matrix

logger = logging.getLogger(__name__)

#: Metrics accepted by :class:`Projection` (a subset of UMAP's that suits embeddings).
METRICS = ("cosine", "euclidean", "correlation", "manhattan")
#: Sample size for fitting UMAP on large inputs; the rest is placed with ``transform``.
DEFAULT_SAMPLE_SIZE = 200_000
#: Rows per ``transform`` call when placing the rest of a large input (progress granularity).
TRANSFORM_CHUNK = 50_000
#: Up to this many fitted vectors ``transform`` searches neighbours exactly; above, with inverted lists.
EXACT_TRANSFORM_MAX = 10_000
#: Lists an inverted-file query scans by default (``n_probe``).
DEFAULT_PROBES = 16
#: Query rows per neighbour-search block on the inverted-file path (bounds its memory).
_INDEX_BLOCK = 2_048
#: Version 2: arrays and JSON only (version 1 also held a pickled ``umap.pkl``, never loaded now).
FORMAT_VERSION = 2
#: The file format 1 kept the fitted UMAP in; its presence marks a map that is never loaded.
LEGACY_PICKLE = "umap.pkl"
#: Distance-matrix cells per block when searching neighbours (bounds transform's memory).
_BLOCK_CELLS = 1 << 22

#: ``progress(fraction in [0, 1], message)``, called from the thread that computes.
ProgressCallback = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """Default progress callback: log at debug level."""
    logger.debug("projection %.0f%%: %s", 100 * fraction, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _membership_average(distances: np.ndarray, neighbours: np.ndarray, embedding: np.ndarray) -> np.ndarray:
    """UMAP's transform initialisation: membership-weighted mean of the neighbours' map positions.

    Args:
        distances: ``(N, k)`` distances to each row's k nearest fitted vectors, ascending.
        neighbours: ``(N, k)`` int64 rows of ``embedding`` they belong to.
        embedding: ``(M, C)`` float32 map positions of the fitted vectors.

    Returns:
        ``(N, C)`` float32 positions. As in UMAP's ``smooth_knn_dist`` (with the local
        connectivity of a new point, 0) ``sigma`` is found by bisection so that
        ``sum_{j>=1} exp(-d_j / sigma) = log2(k)``, floored at 1e-3 times the mean distance;
        a row at distance 0 from a fitted vector takes that vector's position.
    """
    distances = distances.astype(np.float64)
    count, k = distances.shape
    target = math.log2(k) if k > 1 else 1.0
    low = np.zeros(count)
    high = np.full(count, np.inf)
    sigma = np.ones(count)
    for _ in range(64):
        total = np.exp(-distances[:, 1:] / sigma[:, None]).sum(axis=1)
        too_big = total > target
        high = np.where(too_big, sigma, high)
        low = np.where(too_big, low, sigma)
        sigma = np.where(np.isinf(high), sigma * 2.0, (low + high) / 2.0)
    sigma = np.maximum(sigma, 1e-3 * distances.mean())
    sigma = np.where(sigma > 0, sigma, 1.0)
    weights = np.exp(-distances / sigma[:, None])  # (N, k)
    positions = np.einsum("nk,nkc->nc", weights, embedding[neighbours].astype(np.float64)) / weights.sum(axis=1, keepdims=True)
    exact = distances[:, 0] <= 0.0
    positions[exact] = embedding[neighbours[exact, 0]]
    return positions.astype(np.float32)


class Projection:
    """UMAP map from ``D``-dimensional vectors to ``n_components`` coordinates.

    Args:
        n_components: output dimensions, 2 or 3 (default 2).
        n_neighbors: neighbourhood size of UMAP's graph, an integer >= 2 (default 15).
            Small values keep local detail, large values (50+) favour global layout.
            Inputs with fewer than ``n_neighbors + 2`` vectors are mapped with PCA.
            Also the number of fitted neighbours :meth:`transform` averages.
        min_dist: how tightly UMAP packs neighbours, a float in [0, 1] (default 0.1);
            0 gives dense clumps, 1 spreads points evenly.
        metric: distance in the input space, one of :data:`METRICS` (default
            ``"cosine"``, the metric of embedding spaces).
        random_state: seed for sampling and UMAP (default 0, reproducible but
            single-threaded); ``None`` lets UMAP use all cores, not reproducibly.
        sample_size: most vectors UMAP is fitted on (default 200,000; ``None``: all);
            :meth:`fit_transform` places the others with :meth:`transform`. UMAP's fit
            takes minutes per 100,000 vectors on one core (it is single-threaded when
            seeded), so lower it for a faster, coarser map.
        n_lists: inverted lists of the neighbour search :meth:`transform` runs: ``None``
            (default) picks exact search up to :data:`EXACT_TRANSFORM_MAX` fitted vectors
            and about 4·sqrt(M) lists above; 0 always searches exactly; a positive
            integer uses that many lists (capped at M / 39, FAISS's least points per list).
        n_probe: lists scanned per query when searching with lists, an integer >= 1
            (default 16); more is slower and closer to the exact neighbours.

    Attributes (after :meth:`fit`):
        method_: ``"umap"`` or ``"pca"`` (tiny inputs).
        n_features_in_: input dimension D.
        n_samples_fit_: number of vectors the map was fitted on.
        sample_indices_: ``(n_samples_fit_,)`` int64 rows of the input used for the fit.
        embedding_: ``(n_samples_fit_, n_components)`` float32 coordinates of those rows.
        fit_vectors_: ``(n_samples_fit_, D)`` float32 the fitted rows themselves (method
            "umap"), which :meth:`transform` searches for neighbours.
        mean_, components_: PCA centre ``(D,)`` and axes ``(n_components, D)`` (method "pca").
        n_lists_: inverted lists of the transform's neighbour search (0: exact search).
        centroids_: ``(n_lists_, D)`` float32 list centres (k-means of the prepared fit
            vectors) and ``lists_``: ``(n_samples_fit_,)`` int64 list of each fit vector,
            when ``n_lists_ > 0``.
    """

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        metric: str = "cosine",
        random_state: int | None = 0,
        sample_size: int | None = DEFAULT_SAMPLE_SIZE,
        n_lists: int | None = None,
        n_probe: int = DEFAULT_PROBES,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.sample_size = sample_size
        self.n_lists = n_lists
        self.n_probe = n_probe

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as given."""
        return {
            "n_components": self.n_components,
            "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist,
            "metric": self.metric,
            "random_state": self.random_state,
            "sample_size": self.sample_size,
            "n_lists": self.n_lists,
            "n_probe": self.n_probe,
        }

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_params().items())
        return f"Projection({arguments})"

    # -- validation ----------------------------------------------------------------------------

    def _validate_params(self) -> None:
        if not _is_int(self.n_components) or self.n_components not in (2, 3):
            raise ValueError(f"n_components must be 2 or 3, got {self.n_components!r}")
        if not _is_int(self.n_neighbors) or self.n_neighbors < 2:
            raise ValueError(f"n_neighbors must be an integer >= 2, got {self.n_neighbors!r}")
        if not isinstance(self.min_dist, numbers.Real) or isinstance(self.min_dist, bool) or not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"min_dist must be a number in [0, 1], got {self.min_dist!r}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        if self.random_state is not None and not _is_int(self.random_state):
            raise ValueError(f"random_state must be an integer or None, got {self.random_state!r}")
        if self.sample_size is not None and (not _is_int(self.sample_size) or self.sample_size < self.n_neighbors + 2):
            raise ValueError(f"sample_size must be None or an integer >= n_neighbors + 2 ({self.n_neighbors + 2}), got {self.sample_size!r}")
        if self.n_lists is not None and (not _is_int(self.n_lists) or self.n_lists < 0):
            raise ValueError(f"n_lists must be None (automatic), 0 (exact search) or a positive integer, got {self.n_lists!r}")
        if not _is_int(self.n_probe) or self.n_probe < 1:
            raise ValueError(f"n_probe must be an integer >= 1, got {self.n_probe!r}")

    def _check_fitted(self) -> None:
        if not hasattr(self, "method_"):
            raise ValueError("this Projection is not fitted yet; call fit(vectors) or Projection.load(folder) first")

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        """Rows as PCA and the cosine/correlation distances see them: unit length for angular metrics."""
        if self.metric in ("cosine", "correlation"):
            if self.metric == "correlation":
                vectors = vectors - vectors.mean(axis=1, keepdims=True)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms == 0, 1.0, norms)
        return vectors

    # -- fitting -------------------------------------------------------------------------------

    def choose_sample(self, count: int, strata: np.ndarray | None = None) -> np.ndarray:
        """The ``(S,)`` int64 ascending rows of an ``count``-row input that a fit uses (all when ``count <= sample_size``).

        Drawn without replacement from ``numpy.random.default_rng(random_state)``, so the
        same seed gives the same rows. With ``strata`` (``(count,)`` labels, e.g. each
        item's modality) every label keeps its share of the sample (proportional
        allocation, remainders to the largest fractions, labels in sorted order).
        """
        self._validate_params()
        if self.sample_size is None or count <= self.sample_size:
            return np.arange(count, dtype=np.int64)
        rng = np.random.default_rng(self.random_state)
        if strata is None:
            return np.sort(rng.choice(count, size=self.sample_size, replace=False)).astype(np.int64)
        strata = np.asarray(strata)
        if strata.shape != (count,):
            raise ValueError(f"strata must hold one label per row, shape ({count},), got {list(strata.shape)}")
        labels, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
        shares = sizes * (self.sample_size / count)
        quotas = np.floor(shares).astype(np.int64)
        remainder = self.sample_size - int(quotas.sum())
        quotas[np.argsort(-(shares - quotas), kind="stable")[:remainder]] += 1
        chosen = []
        for label in range(len(labels)):
            rows = np.flatnonzero(inverse == label)
            chosen.append(rows[rng.choice(len(rows), size=int(quotas[label]), replace=False)])
        return np.sort(np.concatenate(chosen)).astype(np.int64)

    def fit(self, vectors: np.ndarray) -> "Projection":
        """Learn the map from ``(N, D)`` vectors (float32; any finite values).

        Fits UMAP on all rows, or on a seeded sample of ``sample_size`` rows when N is
        larger; uses PCA when N < ``n_neighbors + 2``.

        Raises:
            ValueError: an argument is out of range (the message names the allowed
                values), or ``vectors`` is empty, not 2-D, or not finite.
        """
        self._validate_params()
        vectors = as_matrix(vectors)
        count = len(vectors)
        if count == 0:
            raise ValueError("cannot fit a projection on zero vectors; add items to the space first")
        sample = self.choose_sample(count)
        fit_vectors = vectors[sample]
        for name in ("fit_vectors_", "mean_", "components_", "centroids_", "lists_", "_fit_prepared", "_index"):
            self.__dict__.pop(name, None)
        self.n_lists_ = 0
        if len(fit_vectors) < self.n_neighbors + 2:
            logger.info("projecting %d vectors with PCA (UMAP needs at least n_neighbors + 2 = %d)", len(fit_vectors), self.n_neighbors + 2)
            self.method_ = "pca"
            self._fit_pca(fit_vectors)
            embedding = self._transform_pca(fit_vectors)
        else:
            self.method_ = "umap"
            logger.info("fitting UMAP (%d-d) on %d of %d vectors", self.n_components, len(fit_vectors), count)
            embedding = self._new_umap().fit_transform(fit_vectors)
            self.fit_vectors_ = np.ascontiguousarray(fit_vectors, dtype=np.float32)
            self._fit_lists()
        self.n_features_in_ = int(vectors.shape[1])
        self.n_samples_fit_ = int(len(sample))
        self.sample_indices_ = sample
        self.embedding_ = np.ascontiguousarray(embedding, dtype=np.float32)
        return self

    def _fit_lists(self) -> None:
        """Group the fit vectors into ``n_lists_`` inverted lists for :meth:`transform` (none below the exact-search size)."""
        count = len(self.fit_vectors_)
        lists = self.n_lists
        if lists is None:
            lists = 0 if count <= EXACT_TRANSFORM_MAX else int(round(4 * math.sqrt(count)))
        lists = min(lists, count // 39)
        if lists < 2:
            return
        import faiss  # imported on first use, as umap is

        prepared = np.ascontiguousarray(self._prepare(self.fit_vectors_), dtype=np.float32)
        seed = 0 if self.random_state is None else int(self.random_state) % (2**31)
        logger.info("grouping %d fitted vectors into %d lists for transform's neighbour search", count, lists)
        kmeans = faiss.Kmeans(prepared.shape[1], lists, niter=10, seed=seed, max_points_per_centroid=64, spherical=self.metric in ("cosine", "correlation"))
        kmeans.train(prepared)
        centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        quantizer = faiss.IndexFlat(prepared.shape[1], self._faiss_metric())
        quantizer.add(centroids)
        self.centroids_ = centroids
        self.lists_ = quantizer.search(prepared, 1)[1][:, 0].astype(np.int64)
        self.n_lists_ = lists

    def _faiss_metric(self) -> int:
        import faiss

        if self.metric in ("cosine", "correlation"):
            return faiss.METRIC_INNER_PRODUCT
        return faiss.METRIC_L2 if self.metric == "euclidean" else faiss.METRIC_L1

    def _new_umap(self) -> Any:
        import umap  # imported on first fit: it takes seconds (numba)

        return umap.UMAP(
            n_components=self.n_components,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            n_jobs=1 if self.random_state is not None else -1,
            low_memory=True,
        )

    def _fit_pca(self, vectors: np.ndarray) -> None:
        """Fit scikit-learn's PCA (full SVD) and keep its centre ``mean_`` and axes ``components_`` as arrays.

        Fewer vectors than axes give fewer axes; the missing ones are zero rows, so
        ``components_`` is always ``(n_components, D)``. scikit-learn fixes the signs (the
        largest loading of every axis is positive), so a fit is deterministic.
        """
        from sklearn.decomposition import PCA  # imported on first fit, as umap is

        prepared = self._prepare(vectors).astype(np.float64)
        rank = min(len(prepared), prepared.shape[1], self.n_components)
        with np.errstate(divide="ignore", invalid="ignore"):  # variance ratios of one point are 0/0; they are not used
            pca = PCA(n_components=rank, svd_solver="full").fit(prepared)
        components = np.zeros((self.n_components, vectors.shape[1]), dtype=np.float64)
        components[:rank] = pca.components_
        self.mean_ = pca.mean_.astype(np.float32)
        self.components_ = components.astype(np.float32)

    def _transform_pca(self, vectors: np.ndarray) -> np.ndarray:
        """``(x - mean_) @ components_.T`` of the prepared rows: what ``PCA.transform`` computes, from the stored arrays."""
        return ((self._prepare(vectors) - self.mean_) @ self.components_.T).astype(np.float32)

    # -- placing new vectors ---------------------------------------------------------------------

    def _distances(self, queries: np.ndarray) -> np.ndarray:
        """``(Q, n_samples_fit_)`` float32 distances in ``metric`` from prepared queries to the fitted vectors."""
        fitted = self.__dict__.get("_fit_prepared")
        if fitted is None:
            fitted = np.ascontiguousarray(self._prepare(self.fit_vectors_), dtype=np.float32)
            self._fit_prepared = fitted
        if self.metric in ("cosine", "correlation"):
            return np.maximum(1.0 - queries @ fitted.T, 0.0)
        if self.metric == "euclidean":
            squared = (queries * queries).sum(axis=1)[:, None] + (fitted * fitted).sum(axis=1)[None, :] - 2.0 * (queries @ fitted.T)
            return np.sqrt(np.maximum(squared, 0.0))
        from scipy.spatial.distance import cdist  # manhattan

        return cdist(queries, fitted, metric="cityblock").astype(np.float32)

    def _index_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Inverted-file search: ``(B, k)`` float32 distances in ``metric`` and int64 fitted rows (-1: not found)."""
        index = self.__dict__.get("_index")
        if index is None:
            import faiss

            fitted = self.__dict__.get("_fit_prepared")
            if fitted is None:
                fitted = self._fit_prepared = np.ascontiguousarray(self._prepare(self.fit_vectors_), dtype=np.float32)
            quantizer = faiss.IndexFlat(self.n_features_in_, self._faiss_metric())
            quantizer.add(self.centroids_)
            index = faiss.IndexIVFFlat(quantizer, self.n_features_in_, self.n_lists_, self._faiss_metric())
            index.is_trained = True
            lists = np.ascontiguousarray(self.lists_, dtype=np.int64)
            index.add_core(len(fitted), faiss.swig_ptr(fitted), None, faiss.swig_ptr(lists))  # the stored lists: no re-assignment
            self._index = index
        index.nprobe = min(self.n_probe, self.n_lists_)
        found, rows = index.search(queries, k)
        if self.metric in ("cosine", "correlation"):
            found = np.maximum(1.0 - found, 0.0)
        elif self.metric == "euclidean":
            found = np.sqrt(np.maximum(found, 0.0))
        return found.astype(np.float32), rows.astype(np.int64)

    def _exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force search: ``(B, k)`` float32 distances in ``metric`` and int64 fitted rows (unordered)."""
        distances = self._distances(queries)  # (B, M)
        if k < distances.shape[1]:
            nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]  # (B, k)
        else:
            nearest = np.tile(np.arange(distances.shape[1]), (len(distances), 1))
        return np.take_along_axis(distances, nearest, axis=1), nearest

    def _transform_neighbours(self, vectors: np.ndarray) -> np.ndarray:
        """UMAP method: place rows by their nearest fitted vectors (see the module docstring)."""
        k = min(self.n_neighbors, self.n_samples_fit_)
        if self.n_lists_ > 0:
            block = _INDEX_BLOCK
        else:
            block = max(1, min(_BLOCK_CELLS // self.n_samples_fit_, _BLOCK_CELLS // (k * self.n_features_in_)))
        queries = np.ascontiguousarray(self._prepare(vectors), dtype=np.float32)
        positions = np.empty((len(vectors), self.n_components), dtype=np.float32)
        for start in range(0, len(queries), block):
            batch = queries[start : start + block]
            if self.n_lists_ > 0:
                near_distances, nearest = self._index_search(batch, k)
                short = (nearest < 0).any(axis=1)  # the probed lists held fewer than k vectors: search those rows exactly
                if short.any():
                    near_distances[short], nearest[short] = self._exact_search(batch[short], k)
            else:
                near_distances, nearest = self._exact_search(batch, k)
            # the matrix form rounds a duplicate's distance to ~1e-7 instead of 0: make it exact
            near_distances[(batch[:, None, :] == self._fit_prepared[nearest]).all(axis=2)] = 0.0
            order = np.argsort(near_distances, axis=1, kind="stable")
            nearest = np.take_along_axis(nearest, order, axis=1)
            near_distances = np.take_along_axis(near_distances, order, axis=1)
            positions[start : start + len(batch)] = _membership_average(near_distances, nearest, self.embedding_)
        return positions

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """Coordinates ``(N, n_components)`` float32 of new ``(N, D)`` (or ``(D,)``) vectors in the fitted map.

        PCA maps project onto the stored axes; UMAP maps place each vector among its
        ``n_neighbors`` nearest fitted vectors (UMAP's transform initialisation; see
        the module docstring).
        """
        self._check_fitted()
        vectors = as_matrix(vectors, self.n_features_in_, hint="this projection was fitted on vectors of that dimension")
        if len(vectors) == 0:
            return np.zeros((0, self.n_components), dtype=np.float32)
        if self.method_ == "pca":
            return self._transform_pca(vectors)
        return self._transform_neighbours(vectors)

    def fit_transform(self, vectors: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """Fit (on a sample if large) and return coordinates ``(N, n_components)`` float32 of every row.

        Rows outside the fit sample are placed with :meth:`transform` in chunks of
        :data:`TRANSFORM_CHUNK`; ``progress(fraction, message)`` reports each step.
        """
        progress = progress or _no_progress
        vectors = as_matrix(vectors)
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

    # -- state (plain arrays) and persistence ------------------------------------------------------

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted projection as plain data: a JSON-able config and its arrays.

        What :meth:`save` writes (``config.json``, ``state.npz``) and what batch workers
        receive (through an engine's object store); :meth:`from_state` rebuilds it.
        """
        self._check_fitted()
        arrays = {"embedding": self.embedding_, "sample_indices": self.sample_indices_}
        if self.method_ == "pca":
            arrays.update(mean=self.mean_, components=self.components_)
        else:
            arrays["fit_vectors"] = self.fit_vectors_
            if self.n_lists_ > 0:
                arrays.update(centroids=self.centroids_, lists=self.lists_)
        config = {
            "class": "Projection",
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "method": self.method_,
            "n_features_in": self.n_features_in_,
            "n_samples_fit": self.n_samples_fit_,
            "n_lists": self.n_lists_,
        }
        return config, arrays

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray], source: str = "projection state") -> "Projection":
        """Rebuild a fitted projection from :meth:`state`'s config and arrays, checking every field and array.

        Raises:
            ValueError: a field or an array is missing, of the wrong shape or type, or not
                finite, or a list number is out of range; the message starts with ``source``.
        """
        config = check_projection_config(config, source)
        expected = expected_state(config)
        for name, (shape, kind) in expected.items():
            array = arrays.get(name)
            if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype.kind not in (("i", "u") if kind == "i" else ("f",)):
                raise ValueError(f"{source}: array {name!r} is missing or has the wrong size or type (expected {list(shape)}); delete the folder and compute the map again")
            if kind == "f" and not np.isfinite(array).all():
                raise ValueError(f"{source}: array {name!r} is damaged (NaN values); delete the folder and compute the map again")
        n_lists = config.get("n_lists", 0)
        if n_lists > 0 and (len(arrays["lists"]) and (arrays["lists"].min() < 0 or arrays["lists"].max() >= n_lists)):
            raise ValueError(f"{source}: array 'lists' names lists outside [0, {n_lists}); delete the folder and compute the map again")
        projection = cls(**config["params"])  # checked by check_projection_config
        projection.embedding_ = np.ascontiguousarray(arrays["embedding"], dtype=np.float32)
        projection.sample_indices_ = arrays["sample_indices"].astype(np.int64)
        projection.n_lists_ = n_lists
        if config["method"] == "pca":
            projection.mean_ = arrays["mean"].astype(np.float32)
            projection.components_ = arrays["components"].astype(np.float32)
        else:
            projection.fit_vectors_ = np.ascontiguousarray(arrays["fit_vectors"], dtype=np.float32)
            if n_lists > 0:
                projection.centroids_ = np.ascontiguousarray(arrays["centroids"], dtype=np.float32)
                projection.lists_ = arrays["lists"].astype(np.int64)
        projection.method_ = config["method"]
        projection.n_features_in_ = config["n_features_in"]
        projection.n_samples_fit_ = config["n_samples_fit"]
        return projection

    def save(self, folder: str | Path) -> None:
        """Write the fitted projection to ``folder`` (created): config.json and state.npz (no pickle)."""
        config, arrays = self.state()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / "state.npz", lambda handle: np.savez(handle, **arrays))
        write_bytes_atomic(folder / "config.json", json.dumps(config, indent=2).encode())

    @classmethod
    def load(cls, folder: str | Path) -> "Projection":
        """Read a projection written by :meth:`save`, checking every field and array.

        Only JSON and ``.npz`` arrays (``allow_pickle=False``) are read, so a crafted
        folder cannot run code.

        Raises:
            ValueError: ``folder`` holds no projection, one in another format (such as
                format 1 with a pickled ``umap.pkl``, which is never loaded), or a damaged
                one; the message names the file.
        """
        folder = Path(folder)
        try:
            config = read_projection_config(folder)
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None
        expected = expected_state(config)
        path = folder / "state.npz"
        check_state_file(path, expected)  # shapes and dtypes from the headers, before any data is read
        try:
            with np.load(path, allow_pickle=False) as state:
                arrays = {name: state[name] for name in expected}
        except FileNotFoundError:
            raise
        except (KeyError, ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} is not a readable projection state ({error}); delete the folder and compute the map again") from None
        return cls.from_state(config, arrays, source=str(path))


def read_projection_config(folder: str | Path) -> dict[str, Any]:
    """The checked ``config.json`` of a projection folder written by :meth:`Projection.save`.

    Raises:
        FileNotFoundError: there is no config.json (a concurrent writer may have removed it).
        ValueError: it is not a format-:data:`FORMAT_VERSION` projection config (e.g. an old
            map holding a pickled ``umap.pkl``, which is never loaded), naming the file.
    """
    folder = Path(folder)
    path = folder / "config.json"
    legacy = folder / LEGACY_PICKLE
    if legacy.exists() or legacy.is_symlink():
        raise ValueError(f"{legacy} is a map stored by an older version as a pickle, which can run code and is never loaded; the map will be recomputed")
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no projection (no config.json); fit one and save it there")
    try:
        config = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete the folder and compute the map again") from None
    return check_projection_config(config, str(path))


def check_projection_config(config: Any, source: str) -> dict[str, Any]:
    """``config`` (as :meth:`Projection.state` makes it) if it is a well-formed format-:data:`FORMAT_VERSION` config.

    Raises:
        ValueError: a field is missing, of the wrong type or out of range; the message starts with ``source``.
    """
    path = source
    if not isinstance(config, dict) or config.get("class") != "Projection":
        raise ValueError(f"{path} is not a Projection config; delete the folder and compute the map again")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is a format-{config.get('format_version')!r} map, not format {FORMAT_VERSION}; the map will be recomputed")
    params, method = config.get("params"), config.get("method")
    dim, count, lists = config.get("n_features_in"), config.get("n_samples_fit"), config.get("n_lists", 0)
    if not isinstance(params, dict) or method not in ("umap", "pca") or not _is_int(dim) or not _is_int(count) or dim < 1 or count < 1:
        raise ValueError(f"{path} has missing or wrongly typed fields (params, method, n_features_in, n_samples_fit); delete the folder and compute the map again")
    if not _is_int(lists) or lists < 0 or (lists > 0 and (method != "umap" or lists > count)):
        raise ValueError(f"{path}: n_lists must be an integer in [0, n_samples_fit] (0 for a PCA map), got {lists!r}; delete the folder and compute the map again")
    try:
        Projection(**params)._validate_params()
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: bad params ({error}); delete the folder and compute the map again") from None
    return config


def expected_state(config: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """``name -> (shape, dtype kind)`` of the arrays in ``state.npz`` for a checked projection config."""
    components, dim, count = config["params"]["n_components"], config["n_features_in"], config["n_samples_fit"]
    expected = {"embedding": ((count, components), "f"), "sample_indices": ((count,), "i")}
    if config["method"] == "pca":
        expected.update(mean=((dim,), "f"), components=((components, dim), "f"))
    else:
        expected["fit_vectors"] = ((count, dim), "f")
        lists = config.get("n_lists", 0)
        if lists > 0:
            expected.update(centroids=((lists, dim), "f"), lists=((count,), "i"))
    return expected


def check_state_file(path: Path, expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Check the array headers in ``path`` (a ``state.npz``) against ``expected`` without reading any data.

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: it is not an uncompressed-or-deflated npz of exactly those arrays (shape
            and dtype kind), naming the file and the first array that differs.
    """
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    found: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version not in readers:
                        raise ValueError(f"array format {version}")
                    shape, _fortran, dtype = readers[version](member)
                found[info.filename.removesuffix(".npy")] = (shape, dtype)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable projection state ({error}); delete the folder and compute the map again") from None
    for name, (shape, kind) in expected.items():
        if name not in found:
            raise ValueError(f"{path} lacks array {name!r}; delete the folder and compute the map again")
        if found[name][0] != shape or found[name][1].kind not in (("i", "u") if kind == "i" else ("f",)):
            raise ValueError(
                f"{path}: array {name!r} is {found[name][1]}{list(found[name][0])}, expected "
                f"{'integers' if kind == 'i' else 'floats'} of shape {list(shape)}; delete the folder and compute the map again"
            )
