"""Exact inner-product search over vectors held in several row blocks (memory-mapped parts).

A space's vectors live in parts on disk, memory-mapped; exact search streams them once
per query batch. One query is a matrix-vector product per block (BLAS ``sgemv``, bound
by memory bandwidth); a batch is a matrix product per block (``sgemm``), so every stored
vector is read once per batch, not once per query. Each block keeps its best ``k`` per
query (``argpartition``) and the blocks' candidates are merged, so memory stays at
:data:`SCORE_BYTES` of scores whatever the number of vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Fewest rows scored at once.
CHUNK_ROWS = 65_536
#: Most bytes of the temporary ``(Q, rows)`` float32 score matrix: few queries score long chunks (one BLAS call
#: over a whole part for a single query, which keeps it at the memory-bandwidth bound), many queries short ones.
SCORE_BYTES = 64 * 1024**2


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``(Q, N)`` float32 ``scores``, best first: ``(values, columns)``, both ``(Q, min(k, N))``."""
    k = min(k, scores.shape[1])
    if k == 0:
        return np.zeros((len(scores), 0), np.float32), np.zeros((len(scores), 0), np.int64)
    if k < scores.shape[1]:
        columns = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(scores, columns, axis=1)
    else:
        columns = np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
        values = scores
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(columns, order, axis=1).astype(np.int64)


def search_blocks(
    blocks: Sequence[np.ndarray],
    queries: np.ndarray,
    k: int,
    allowed: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows with the largest inner product with each query, over blocks read in order.

    Args:
        blocks: ``(n_b, D)`` float32 or float16 arrays (memory-mapped is fine); row positions
            count across blocks in order.
        queries: ``(Q, D)`` float32.
        k: results per query.
        allowed: per block, a ``(n_b,)`` boolean mask of rows that may be returned, or None (all).

    Returns:
        ``(scores, positions)``, both ``(Q, k)``: float32 scores best first and int64 row
        positions, ``-1`` where fewer than ``k`` rows are allowed. A non-finite score (a
        damaged part) is never returned.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    count = len(queries)
    best_scores = np.full((count, 0), -np.inf, np.float32)
    best_positions = np.zeros((count, 0), np.int64)
    offset = 0
    rows = max(CHUNK_ROWS, SCORE_BYTES // (4 * max(count, 1)))
    for number, block in enumerate(blocks):
        mask = None if allowed is None else allowed[number]
        step = rows if block.dtype == np.float32 else CHUNK_ROWS  # float16 rows are converted: a copy per chunk
        for start in range(0, len(block), step):
            chunk = block[start : start + step]
            chunk_mask = None if mask is None else mask[start : start + step]
            if chunk_mask is not None and not chunk_mask.any():
                continue
            if chunk.dtype != np.float32:
                chunk = chunk.astype(np.float32)
            scores = (chunk @ queries[0])[None, :] if count == 1 else queries @ chunk.T  # (Q, n)
            bad = ~np.isfinite(scores)
            if chunk_mask is not None:
                bad |= ~chunk_mask[None, :]
            if bad.any():
                scores = np.where(bad, -np.inf, scores)
            values, columns = top_k(scores, k)
            best_scores = np.concatenate([best_scores, values], axis=1)
            best_positions = np.concatenate([best_positions, columns + offset + start], axis=1)
            if best_scores.shape[1] > k:
                best_scores, keep = top_k(best_scores, k)
                best_positions = np.take_along_axis(best_positions, keep, axis=1)
        offset += len(block)
    missing = ~np.isfinite(best_scores)
    best_positions[missing] = -1
    if best_scores.shape[1] < k:
        pad = k - best_scores.shape[1]
        best_scores = np.concatenate([best_scores, np.full((count, pad), -np.inf, np.float32)], axis=1)
        best_positions = np.concatenate([best_positions, np.full((count, pad), -1, np.int64)], axis=1)
    return best_scores, best_positions


def gather_rows(blocks: Sequence[np.ndarray], offsets: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Rows at global ``positions`` (``(n,)`` int64, any order) from ``blocks`` as ``(n, D)`` float32.

    ``offsets`` is ``(len(blocks) + 1,)``: the first row position of each block, then the total.
    Only the pages holding those rows are read from memory-mapped blocks.
    """
    positions = np.asarray(positions, dtype=np.int64)
    dim = blocks[0].shape[1] if blocks else 0
    out = np.empty((len(positions), dim), np.float32)
    which = np.searchsorted(offsets, positions, side="right") - 1
    for number in np.unique(which):
        rows = np.flatnonzero(which == number)
        out[rows] = blocks[number][positions[rows] - offsets[number]]
    return out
