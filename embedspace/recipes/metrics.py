"""Retrieval metrics of the evaluation recipes: the rank of the right answer and recall@k.

One definition for every report (encoder evaluation, encoder validation during training,
tokenizer fidelity, the generator's report): a query's rank is the number of candidates
strictly more similar than its right one (0 = best; a tie does not push the right one
down), and it is a hit at ``k`` when that rank is below ``k``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def ranks(similarity: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Rank (0 = best) of the right candidate of each query.

    Args:
        similarity: (Q, C) float similarities of Q queries to C candidates.
        correct: (Q,) int, the column of each query's right candidate.

    Returns:
        (Q,) int64: how many candidates are strictly more similar than the right one.
    """
    similarity = np.asarray(similarity)
    correct = np.asarray(correct, dtype=np.int64)
    if similarity.ndim != 2 or correct.shape != (similarity.shape[0],):
        raise ValueError(f"need similarity (Q, C) and correct (Q,); got {similarity.shape} and {correct.shape}")
    right = similarity[np.arange(len(correct)), correct][:, None]  # (Q, 1)
    return (similarity > right).sum(axis=1).astype(np.int64)


def recall_at_k(similarity: np.ndarray, correct: np.ndarray, k: int) -> float:
    """Share of queries whose right candidate is among the ``k`` most similar (see :func:`ranks`)."""
    if k < 1:
        raise ValueError(f"k={k} must be at least 1")
    return float((ranks(similarity, correct) < k).mean())


def recall_at(similarity: np.ndarray, correct: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """Recall at each ``k`` of ``ks``, keyed ``"R@k"`` (e.g. ``{"R@1": 0.4, "R@5": 0.8}``)."""
    rank = ranks(similarity, correct)
    return {f"R@{k}": float((rank < k).mean()) for k in ks}
