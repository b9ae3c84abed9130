"""Named clusters of a map: found on its 2-D (or 3-D) coordinates, named from the nearest texts in the full space.

Two steps, both pure functions of arrays plus one search callback:

1. :func:`find_clusters`: HDBSCAN (scikit-learn) on the map coordinates of at most
   :data:`CLUSTER_SAMPLE` points (seeded), the other points taking the cluster of their
   nearest sampled point (noise stays noise, ``-1``). Clusters are numbered by size,
   largest first.
2. :func:`name_clusters`: each cluster's centre in the *embedding* space (the normalised
   mean of up to :data:`NAME_MEMBERS` members' vectors) is searched among the space's
   **text** items, and the cluster is named by the nearest :data:`NAME_WORDS` distinct
   labels. So a cluster of images or sounds gets words too. A space without texts names
   each cluster by the labels of the members nearest its centre.

:mod:`embedspace.maps` runs both when it computes a map; the store keeps the result with
the map (``clusters.npy``, ``clusters.json``); ``space.clusters()`` lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

#: Most map points HDBSCAN sees; the rest join the cluster of their nearest sampled point.
CLUSTER_SAMPLE = 50_000
#: Members whose vectors make a cluster's centre in the embedding space.
NAME_MEMBERS = 2_000
#: Distinct labels in a cluster's name.
NAME_WORDS = 3


@dataclass(frozen=True)
class ClusterInfo:
    """One named cluster: its number (0 = largest), name, member count and centre on the map."""

    cluster: int
    name: str
    size: int
    centre: tuple[float, ...]

    def to_json(self) -> dict:
        return {"cluster": self.cluster, "name": self.name, "size": self.size, "centre": list(self.centre)}


def min_cluster_size(count: int) -> int:
    """HDBSCAN's smallest cluster for ``count`` sampled points: 0.5 % of them, at least 5."""
    return max(5, count // 200)


def find_clusters(coordinates: np.ndarray, sample: int = CLUSTER_SAMPLE, seed: int = 0) -> np.ndarray:
    """``(N,)`` int32 cluster of each map point, ``-1`` for noise; clusters numbered by size, largest first.

    Too few points for a cluster (fewer than twice the minimum size) gives all ``-1``.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.neighbors import NearestNeighbors

    coordinates = np.asarray(coordinates, dtype=np.float64)
    count = len(coordinates)
    chosen = np.sort(np.random.default_rng(seed).choice(count, sample, replace=False)) if count > sample else np.arange(count)
    smallest = min_cluster_size(len(chosen))
    labels = np.full(count, -1, np.int32)
    if len(chosen) < 2 * smallest:
        return labels
    found = HDBSCAN(min_cluster_size=smallest, min_samples=min(smallest, 10), copy=True).fit_predict(coordinates[chosen]).astype(np.int32)
    labels[chosen] = found
    rest = np.setdiff1d(np.arange(count), chosen, assume_unique=True)
    if len(rest):
        nearest = NearestNeighbors(n_neighbors=1).fit(coordinates[chosen]).kneighbors(coordinates[rest], return_distance=False)[:, 0]
        labels[rest] = found[nearest]
    clustered = labels[labels >= 0]
    if not len(clustered):
        return labels
    sizes = np.bincount(clustered)
    renumber = np.full(len(sizes), -1, np.int32)
    renumber[np.argsort(-sizes, kind="stable")] = np.arange(len(sizes), dtype=np.int32)
    return np.where(labels >= 0, renumber[np.maximum(labels, 0)], -1).astype(np.int32)


def name_clusters(
    labels: np.ndarray,
    coordinates: np.ndarray,
    vectors_of: Callable[[np.ndarray], np.ndarray],
    nearest_texts: Callable[[np.ndarray, int], list[str]] | None,
    names_of: Callable[[np.ndarray], list[str]],
    seed: int = 0,
) -> list[ClusterInfo]:
    """A name, size and map centre for every cluster of ``labels`` (clusters ``0..K-1``).

    Args:
        labels: ``(N,)`` cluster of each point (from :func:`find_clusters`).
        coordinates: ``(N, C)`` map coordinates, row-aligned.
        vectors_of: ``(n,)`` point rows -> ``(n, D)`` unit vectors of those items.
        nearest_texts: ``(D,)`` centre, count -> labels of the nearest text items, best
            first; None when the space holds no texts.
        names_of: ``(n,)`` point rows -> the labels of those items.
    """
    rng = np.random.default_rng(seed)
    clusters = []
    for cluster in range(int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0):
        members = np.flatnonzero(labels == cluster)
        picked = np.sort(rng.choice(members, NAME_MEMBERS, replace=False)) if len(members) > NAME_MEMBERS else members
        vectors = vectors_of(picked)
        centre = vectors.mean(axis=0)
        centre = centre / max(float(np.linalg.norm(centre)), 1e-12)
        if nearest_texts is not None:
            candidates = nearest_texts(centre.astype(np.float32), 4 * NAME_WORDS)
        else:
            order = np.argsort(-(vectors @ centre))[: 4 * NAME_WORDS]
            candidates = names_of(picked[order])
        words: list[str] = []
        for label in candidates:
            if label and label not in words:
                words.append(label)
        name = " · ".join(words[:NAME_WORDS]) or f"cluster {cluster}"
        middle = np.median(np.asarray(coordinates)[members], axis=0)
        clusters.append(ClusterInfo(cluster, name, int(len(members)), tuple(float(value) for value in middle)))
    return clusters
