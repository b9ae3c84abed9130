"""SpaceIndex: a space's approximate index, kept in step with its items and searched with exact re-ranking.

Below :attr:`~embedspace.index.IndexSettings.ann_threshold` items (or with factory
``Flat``) a space has no approximate index and searches exactly. Above it the index is
loaded from ``index.faiss`` (never trusted: its stamp must name this space and match its
checksum, see :meth:`embedspace.store.SpaceStore.read_index`), *caught up* with what was
written since it was saved (items outside its covered id ranges are added, tombstones
removed), or built: trained on a sample, then filled in batches (on Ray workers as
shards merged into one when an engine is given). Candidates it returns are re-ranked
exactly from the stored vectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from embedspace.errors import SpaceError
from embedspace.exact import top_k
from embedspace.index import AUTO, SMALL_FACTORY, IndexSettings, VectorIndex, choose_factory, training_sample_size
from embedspace.rows import StoredRows
from embedspace.store import SpaceStore

logger = logging.getLogger(__name__)

#: Rows added to an index per batch while building.
BUILD_BATCH = 65_536
#: A caught-up index is saved again once it holds this fraction of rows it did not have when saved.
RESAVE_FRACTION = 0.05
#: Retraining is advised once the index holds this many times its training sample.
RETRAIN_GROWTH = 64


@dataclass(frozen=True)
class IndexEvaluation:
    """What ``embedspace index eval`` prints: recall of the index against exact search, speeds and size."""

    factory: str
    items: int
    queries: int
    k: int
    recall: float
    index_queries_per_second: float
    exact_queries_per_second: float
    index_bytes_per_vector: float

    def lines(self) -> list[str]:
        return [
            f"index {self.factory} over {self.items:,} items, {self.queries} queries, k={self.k}",
            f"recall@{self.k} against exact search: {self.recall:.3f}",
            f"queries/s: index {self.index_queries_per_second:,.0f}, exact {self.exact_queries_per_second:,.1f} "
            f"({self.index_queries_per_second / max(self.exact_queries_per_second, 1e-9):.1f}x)",
            f"index bytes per vector: {self.index_bytes_per_vector:,.1f} (the vectors themselves stay on disk, memory-mapped)",
        ]


def _ranges_of(rows: StoredRows) -> list[list[int]]:
    """The id ranges ``[first, last + 1)`` of the stored parts (what an index built from them covers)."""
    ranges: list[list[int]] = []
    for part in rows.parts:
        if len(part.items):
            ids = part.items["id"]
            ranges = _merge(ranges, [int(ids.iloc[0]), int(ids.iloc[-1]) + 1])
    return ranges


def _merge(ranges: list[list[int]], new: list[int]) -> list[list[int]]:
    """``ranges`` (sorted, disjoint ``[start, end)``) with ``new`` added, touching ranges joined."""
    merged = sorted(ranges + [list(new)])
    out: list[list[int]] = []
    for start, end in merged:
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


def _covered(ids: np.ndarray, ranges: list[list[int]]) -> np.ndarray:
    """``(n,)`` bool: whether each id lies in one of ``ranges``."""
    if not ranges:
        return np.zeros(len(ids), bool)
    starts = np.array([start for start, _ in ranges], np.int64)
    ends = np.array([end for _, end in ranges], np.int64)
    slot = np.searchsorted(starts, ids, side="right") - 1
    return (slot >= 0) & (ids < ends[np.maximum(slot, 0)])


class SpaceIndex:
    """The approximate index of one space (None of it below the threshold). Cheap to construct."""

    def __init__(self, store: SpaceStore, settings: IndexSettings | None = None):
        self.store = store
        self.settings = settings or IndexSettings.from_environment()
        self.index: VectorIndex | None = None
        self.stamp: dict[str, Any] | None = None
        self._added_since_save = 0

    @property
    def unsaved(self) -> int:
        """Rows added to the in-memory index since it was last saved."""
        return self._added_since_save

    def wanted(self, manifest: dict[str, Any], count: int) -> str | None:
        """The factory the space should search with at ``count`` items, or None for exact search."""
        factory = manifest["index"]["factory"]
        if factory == AUTO:
            factory = choose_factory(count, int(manifest["model"]["embed_dim"]), self.settings)
        return None if factory == SMALL_FACTORY else factory

    def current(self, manifest: dict[str, Any], rows: StoredRows) -> VectorIndex | None:
        """The index to search with now (loaded, caught up or built as needed), or None for exact search."""
        factory = self.wanted(manifest, rows.live_count)
        if factory is None:
            return None
        if self.index is not None and self._fits(manifest, factory):
            self._catch_up(manifest, rows)
            return self.index
        try:
            index, stamp = self.store.read_index(manifest)
            if not self._accepts(manifest, stamp["factory"]):
                raise ValueError(f"the saved index is {stamp['factory']!r}, the space asks for {factory!r}")
            self.index, self.stamp = index, stamp
            self._added_since_save = 0
            self._catch_up(manifest, rows)
            return self.index
        except ValueError as error:
            logger.info("%s; building the index of %s", error, self.store.path)
        self.build(manifest, rows, factory)
        return self.index

    def _accepts(self, manifest: dict[str, Any], factory: str) -> bool:
        asked = manifest["index"]["factory"]
        return factory != SMALL_FACTORY and (asked == AUTO or asked == factory)

    def _fits(self, manifest: dict[str, Any], factory: str) -> bool:
        return self.stamp is not None and self.stamp["uid"] == manifest.get("uid", "") and self._accepts(manifest, self.index.factory)

    def _catch_up(self, manifest: dict[str, Any], rows: StoredRows) -> None:
        """Add live rows outside the covered id ranges and drop tombstoned ids, so the index matches ``rows``."""
        stamp = self.stamp
        missing = rows.live & ~_covered(rows.ids, stamp["covered"])
        changed = False
        if missing.any():
            positions = np.flatnonzero(missing)
            for start in range(0, len(positions), BUILD_BATCH):
                chunk = positions[start : start + BUILD_BATCH]
                self.index.add(rows.gather(chunk), rows.ids[chunk])
            self._added_since_save += len(positions)
            changed = True
            logger.info("index of %s: added %d items written since it was saved", self.store.path, len(positions))
        if len(rows.removed) > stamp["removed"]:
            if not self.index.remove(rows.removed):  # graph indexes cannot remove in place
                logger.info("index %s cannot remove items; rebuilding it", self.index.factory)
                self.build(manifest, rows, self.index.factory, stamp["trained_on"])
                return
            changed = True
        if changed:
            self.stamp = dict(stamp, covered=_ranges_of(rows), removed=int(len(rows.removed)), revision=int(manifest["revision"]))
            if self._added_since_save > RESAVE_FRACTION * max(len(self.index), 1):
                self.save(manifest)
        if len(self.index) > RETRAIN_GROWTH * max(stamp["trained_on"], 1):
            logger.warning("index of %s holds %d items but was trained on %d; `embedspace index build %s` retrains it",
                           self.store.path, len(self.index), stamp["trained_on"], self.store.path)

    def save(self, manifest: dict[str, Any]) -> None:
        """Persist the index under the space's write lock; a read-only space keeps it in memory only."""
        if self.index is None or self.stamp is None:
            return
        try:
            with self.store.lock():
                if self.store.read_manifest()["revision"] != manifest["revision"]:
                    return  # a newer write landed: the next search catches the index up and saves it
                self.stamp = self.store.write_index(self.index, self.stamp)
            self._added_since_save = 0
        except (OSError, SpaceError) as error:  # a read-only or full folder: search still works from memory
            logger.info("could not save the index of %s (%s); it stays in memory", self.store.path, error)

    def build(
        self,
        manifest: dict[str, Any],
        rows: StoredRows,
        factory: str,
        train_sample: int | None = None,
        add_batches: Callable[[VectorIndex, StoredRows], VectorIndex] | None = None,
        seed: int = 0,
    ) -> VectorIndex:
        """Train ``factory`` on a sample of the live rows, add them all, save; returns the index.

        Args:
            train_sample: training-sample size (default :func:`~embedspace.index.training_sample_size`).
            add_batches: fills the trained empty index (default: batches in this process);
                :mod:`embedspace.engine` passes one that builds shards on workers and merges them.

        Raises:
            ValueError: an invalid factory, or too few items to train it (nothing is written).
        """
        index = VectorIndex(rows.dim, factory)
        live = rows.live_positions()
        started = time.perf_counter()
        sample = live[:0]
        if not index.is_trained:
            size = training_sample_size(factory, len(live)) if train_sample is None else min(int(train_sample), len(live))
            sample = np.sort(np.random.default_rng(seed).choice(live, size, replace=False)) if size < len(live) else live
            logger.info("training index %s on %d of %d items", factory, len(sample), len(live))
            index.train(rows.gather(sample))
        if add_batches is not None:
            index = add_batches(index, rows)
        else:
            with tqdm(total=len(live), desc="indexing", unit="item", disable=len(live) < BUILD_BATCH, leave=False) as bar:
                for ids, vectors in rows.iter_live(BUILD_BATCH):
                    index.add(vectors, ids)
                    bar.update(len(ids))
        logger.info("built index %s over %d items in %.1f s", factory, len(index), time.perf_counter() - started)
        self.index = index
        self.stamp = {"uid": manifest.get("uid", ""), "factory": factory, "revision": int(manifest["revision"]), "covered": _ranges_of(rows),
                      "removed": int(len(rows.removed)), "trained_on": int(len(sample))}
        self._added_since_save = len(index)
        self.save(manifest)
        return index

    def search(self, index: VectorIndex, rows: StoredRows, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ``(scores, positions)`` per query: ``refine × k`` candidates from ``index``, re-ranked exactly."""
        wanted = max(k * self.settings.refine, k)
        _, candidates = index.search(queries, wanted, allowed_ids, self.settings)
        scores = np.full((len(queries), k), -np.inf, np.float32)
        positions = np.full((len(queries), k), -1, np.int64)
        for row, query in enumerate(queries):
            found = rows.positions(candidates[row][candidates[row] >= 0])
            found = np.unique(found[found >= 0])
            if not len(found):
                continue
            exact = (rows.gather(found) @ query)[None, :]
            exact[~np.isfinite(exact)] = -np.inf
            values, columns = top_k(exact, k)
            scores[row, : values.shape[1]], positions[row, : values.shape[1]] = values[0], found[columns[0]]
        positions[~np.isfinite(scores)] = -1
        return scores, positions


def evaluate_index(space_index: SpaceIndex, index: VectorIndex, rows: StoredRows, queries: int | np.ndarray, k: int, seed: int = 0) -> IndexEvaluation:
    """Recall@k of ``index`` (with re-ranking) against exact search over ``rows``, one query at a time, and both speeds.

    ``queries`` is a count (the stored vectors of that many random live rows, each finding
    itself in both searches) or ``(Q, D)`` query vectors (e.g. held-out ones).
    """
    if isinstance(queries, np.ndarray):
        vectors = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, rows.dim)
    else:
        live = rows.live_positions()
        vectors = rows.gather(np.sort(np.random.default_rng(seed).choice(live, min(queries, len(live)), replace=False)))
    started = time.perf_counter()
    approximate = [space_index.search(index, rows, vector[None, :], k, None)[1][0] for vector in vectors]
    index_seconds = time.perf_counter() - started
    started = time.perf_counter()
    exact = [rows.exact(vector[None, :], k)[1][0] for vector in vectors]
    exact_seconds = time.perf_counter() - started
    hits = [len(set(found[found >= 0]) & set(truth[truth >= 0])) / max(1, int((truth >= 0).sum())) for found, truth in zip(approximate, exact)]
    return IndexEvaluation(
        factory=index.factory,
        items=rows.live_count,
        queries=len(vectors),
        k=k,
        recall=float(np.mean(hits)) if hits else 0.0,
        index_queries_per_second=len(vectors) / max(index_seconds, 1e-9),
        exact_queries_per_second=len(vectors) / max(exact_seconds, 1e-9),
        index_bytes_per_vector=index.memory_bytes() / max(rows.live_count, 1),
    )
