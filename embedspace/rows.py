"""StoredRows: one revision's items and vectors as the space reads them, without loading the vectors.

The vectors stay in their parts, memory-mapped (see :class:`embedspace.store.Part`);
rows are addressed by *position*: the row's place in the parts concatenated in id order,
so ids and positions map with one ``searchsorted``. Removed items (tombstones) keep
their positions and are masked out by :attr:`StoredRows.live`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np
import pandas as pd

from embedspace.exact import gather_rows, search_blocks
from embedspace.store import Snapshot, concat_items


class StoredRows:
    """The rows of one :class:`~embedspace.store.Snapshot`. Everything here is computed on first use and cached."""

    def __init__(self, snapshot: Snapshot):
        self.parts = snapshot.parts
        self.removed = snapshot.removed
        self.dim = int(snapshot.manifest["model"]["embed_dim"])

    @cached_property
    def items(self) -> pd.DataFrame:
        """All stored rows (live and removed), ids strictly increasing."""
        return concat_items(self.parts)

    @cached_property
    def ids(self) -> np.ndarray:
        """``(N,)`` int64 ids of all stored rows, increasing."""
        if not self.parts:
            return np.zeros(0, np.int64)
        return np.concatenate([part.items["id"].to_numpy(dtype=np.int64) for part in self.parts])

    @cached_property
    def offsets(self) -> np.ndarray:
        """``(P + 1,)`` int64: the first position of each part, then the row count."""
        return np.cumsum([0] + [len(part.vectors) for part in self.parts]).astype(np.int64)

    @property
    def blocks(self) -> list[np.ndarray]:
        """Each part's ``(n, D)`` vectors (memory-mapped, float32 or float16 as stored)."""
        return [part.vectors for part in self.parts]

    @cached_property
    def live(self) -> np.ndarray:
        """``(N,)`` bool: True where the row is not removed."""
        return ~np.isin(self.ids, self.removed) if len(self.removed) else np.ones(len(self.ids), bool)

    @cached_property
    def live_count(self) -> int:
        return int(self.live.sum())

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ``(n,)`` ids; ``-1`` where an id is not stored or removed."""
        ids = np.asarray(ids, dtype=np.int64)
        positions = np.searchsorted(self.ids, ids)
        found = positions < len(self.ids)
        found[found] = self.ids[positions[found]] == ids[found]
        found[found] = self.live[positions[found]]
        return np.where(found, positions, -1)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """``(n, D)`` float32 vectors at ``positions`` (reads only their pages)."""
        if len(positions) == 0:
            return np.zeros((0, self.dim), np.float32)
        return gather_rows(self.blocks, self.offsets, positions)

    def live_positions(self) -> np.ndarray:
        return np.flatnonzero(self.live)

    def iter_live(self, batch_rows: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Live rows in id order, ``batch_rows`` at a time: ``(ids (n,) int64, vectors (n, D) float32)``."""
        positions = self.live_positions()
        for start in range(0, len(positions), batch_rows):
            chunk = positions[start : start + batch_rows]
            yield self.ids[chunk], self.gather(chunk)

    def exact(self, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` positions over rows allowed by ``mask`` (``(N,)`` bool; default: live rows).

        Returns ``(scores, positions)``, both ``(Q, k)``, ``-1`` positions where fewer rows are allowed.
        """
        mask = self.live if mask is None else mask
        allowed = None if mask.all() else [mask[start:end] for start, end in zip(self.offsets[:-1], self.offsets[1:])]
        return search_blocks(self.blocks, queries, k, allowed)
