"""One recall@k for every report: the shared function gives the numbers of the four definitions it replaced.

The four old definitions are copied here verbatim (encoder validation, the encoder's
held-out report, tokenizer fidelity, the generator's report), so the shipped evaluation
numbers provably stay what they were.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedspace.recipes.encoder_training import similarities
from embedspace.recipes.metrics import ranks, recall_at, recall_at_k


# -- the replaced definitions, as they were ------------------------------------------------------


def old_encoder_training_recall_at_5(vectors: torch.Tensor, candidates: torch.Tensor, correct: torch.Tensor) -> float:
    similarity = F.normalize(vectors, dim=-1) @ candidates.T
    right = similarity.gather(1, correct[:, None])
    return float(((similarity > right).sum(dim=1) < 5).float().mean())


def old_encoder_evaluation_recall_at(similarity: np.ndarray, correct: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    right = similarity[np.arange(len(correct)), correct][:, None]
    rank = (similarity > right).sum(axis=1)
    return {f"R@{k}": float((rank < k).mean()) for k in ks}


def old_generator_evaluation_caption_recall(image_vectors: np.ndarray, caption_vectors: np.ndarray, k: int = 5) -> float:
    similarity = torch.as_tensor(image_vectors) @ torch.as_tensor(caption_vectors).T
    own = similarity.diagonal().unsqueeze(1)
    rank = (similarity > own).sum(dim=1)
    return float((rank < k).float().mean())


def old_generator_report_recall(vectors: np.ndarray, caption_vectors: np.ndarray, correct: np.ndarray, k: int = 5) -> float:
    similarity = vectors @ caption_vectors.T
    own = similarity[np.arange(len(correct)), correct][:, None]
    return float(((similarity > own).sum(axis=1) < k).mean())


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    rows = rng.standard_normal((count, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(6))
def test_shared_recall_gives_the_numbers_of_every_replaced_definition(seed):
    rng = np.random.default_rng(seed)
    queries, candidates = unit_rows(rng, 97, 24), unit_rows(rng, 211, 24)
    # distinct answers: a repeated candidate would make equal columns below, and whether two equal
    # products compare equal depends on the BLAS kernel of the CPU (numpy and torch differ on some)
    correct = rng.choice(211, size=97, replace=False)
    # a real share of queries must land in the top k, or every recall is 0 and the check is empty
    queries[::2] = candidates[correct[::2]] + 0.3 * unit_rows(rng, 49, 24)
    similarity = queries @ candidates.T

    assert recall_at(similarity, correct, (1, 5, 10)) == old_encoder_evaluation_recall_at(similarity, correct, (1, 5, 10))
    for k in (1, 5, 10):
        assert recall_at_k(similarity, correct, k) == old_generator_report_recall(queries, candidates, correct, k)
    assert 0.2 < recall_at_k(similarity, correct, 5) < 0.9

    # the torch definitions averaged in float32: the same count, rounded to float32
    raw = torch.from_numpy(queries * 3.0)  # tower outputs are normalised by the validation
    old = old_encoder_training_recall_at_5(raw, torch.from_numpy(candidates), torch.from_numpy(correct))
    assert np.float32(recall_at_k(similarities(raw, torch.from_numpy(candidates)), correct, 5)) == old
    paired = candidates[correct]  # row-aligned captions, as tokenizer fidelity has them
    for k in (1, 5):
        old = old_generator_evaluation_caption_recall(queries, paired, k)
        assert np.float32(recall_at_k(queries @ paired.T, np.arange(len(paired)), k)) == old


def test_a_tie_does_not_push_the_right_answer_down():
    similarity = np.array([[0.5, 0.5, 0.5], [0.9, 0.1, 0.9], [0.2, 0.3, 0.4]])
    correct = np.array([1, 1, 0])
    np.testing.assert_array_equal(ranks(similarity, correct), [0, 2, 2])
    assert recall_at(similarity, correct, (1, 3)) == {"R@1": 1 / 3, "R@3": 1.0}
    assert recall_at_k(similarity, correct, 1) == old_generator_report_recall(similarity, np.eye(3), correct, 1)


def test_recall_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match=r"similarity \(Q, C\) and correct \(Q,\)"):
        recall_at_k(np.zeros((3, 4)), np.zeros(2, dtype=int), 1)
    with pytest.raises(ValueError, match="k=0"):
        recall_at_k(np.zeros((3, 4)), np.zeros(3, dtype=int), 0)
