"""The one vector check: (N, D) float32 C-contiguous, finite, unit rows; every boundary refuses a bad
input with the same one-line message naming the input and the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedspace import Projection, SpaceError, VectorIndex, arithmetic, interpolate
from embedspace.generator import GenerationRequest
from embedspace.vectors import as_matrix, unit_rows, unit_vector


def test_as_matrix_returns_c_contiguous_float32_rows_from_arrays_lists_and_tensors() -> None:
    fortran = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4))
    for given in (fortran, fortran.tolist(), torch.tensor(fortran), torch.tensor(fortran, dtype=torch.bfloat16)):
        matrix = as_matrix(given, 4)
        assert matrix.shape == (3, 4) and matrix.dtype == np.float32 and matrix.flags.c_contiguous
        np.testing.assert_allclose(matrix, fortran, rtol=1e-2)
    assert as_matrix(np.ones(4), 4).shape == (1, 4)  # one (D,) vector is one row
    assert as_matrix(np.zeros((0, 4)), 4).shape == (0, 4)
    same = np.ones((2, 4), np.float32)
    assert as_matrix(same) is same  # already right: no copy


@pytest.mark.parametrize(
    ("given", "dim", "message"),
    [
        (np.ones((2, 5)), 4, r"^vectors: got shape \(2, 5\); expected 4-dimensional vectors, shape \(N, 4\) or \(4,\)$"),
        (np.ones((2, 2, 4)), 4, r"got shape \(2, 2, 4\)"),
        (np.ones(4), None, r"got shape \(4,\); expected a 2-D array \(N, D\)"),
        (np.array([[1.0, np.nan], [1.0, 1.0], [np.inf, 0.0]]), None, r"^vectors: NaN or infinite values in rows \[0, 2\]; give finite numbers$"),
        (np.array([["a", "b"]]), None, "got <U1 values; give real numbers"),
        (np.array([[True, False]]), None, "got bool values"),
        ([[1.0, 2.0], [3.0]], None, "not an array of numbers"),
        ({"a": 1}, None, "not an array of numbers"),
    ],
)
def test_as_matrix_refuses_bad_input_naming_the_problem(given: object, dim: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_matrix(given, dim)


def test_unit_rows_normalises_refuses_zero_rows_and_leaves_unit_rows_unchanged() -> None:
    rows = unit_rows(np.array([[3.0, 4.0], [0.0, 2.0]]), 2, "queries")
    np.testing.assert_allclose(rows, [[0.6, 0.8], [0.0, 1.0]], atol=1e-7)
    again = unit_rows(rows)
    assert np.array_equal(again, rows)  # normalising twice never moves a vector's bits
    with pytest.raises(ValueError, match=r"^queries: rows \[1\] are all zeros, which have no direction; give non-zero vectors$"):
        unit_rows(np.array([[1.0, 0.0], [0.0, 0.0]]), 2, "queries")
    many = np.zeros((15, 2))
    with pytest.raises(ValueError, match=r"rows \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.\]"):
        unit_rows(many)


def test_unit_vector_takes_exactly_one_vector_and_returns_a_copy() -> None:
    given = np.array([0.6, 0.8], np.float32)
    vector = unit_vector(given)
    assert vector.shape == (2,) and vector.dtype == np.float32 and not np.shares_memory(vector, given)
    assert unit_vector(np.array([[3.0, 4.0]])).tolist() == pytest.approx([0.6, 0.8])
    for bad, message in [
        (np.ones((2, 2)), r"^a: got shape \(2, 2\); give one vector of shape \(2,\)$"),
        (np.ones(3), r"^a: got shape \(3,\); expected 2-dimensional"),
        (np.zeros(0), r"^a: empty \(shape \(0,\)\); give one vector of shape \(2,\)$"),
        (np.array([np.nan, 1.0]), r"^a: NaN or infinite values; give finite numbers$"),
        (np.zeros(2), r"^a: all zeros, which has no direction; give a non-zero vector$"),
    ]:
        with pytest.raises(ValueError, match=message):
            unit_vector(bad, 2, "a")


def test_every_boundary_gives_the_same_messages() -> None:
    nan = np.full((1, 4), np.nan, np.float32)
    index = VectorIndex(4)
    fitted = Projection().fit(np.eye(4, dtype=np.float32))
    for check, name in [
        (lambda: index.add(nan, np.zeros(1, np.int64)), "vectors"),
        (lambda: index.search(nan, 1), "queries"),
        (lambda: Projection().fit(nan), "vectors"),
        (lambda: fitted.transform(nan), "vectors"),
        (lambda: GenerationRequest(nan), "condition vectors"),
    ]:
        with pytest.raises(ValueError, match=rf"^{name}: NaN or infinite values in rows \[0\]; give finite numbers"):
            check()
    with pytest.raises(ValueError, match=r"^vectors: got shape \(1, 5\); expected 4-dimensional vectors"):
        fitted.transform(np.ones((1, 5), np.float32))
    with pytest.raises(ValueError, match=r"^queries: got shape \(1, 5\); expected 4-dimensional vectors"):
        index.search(np.ones((1, 5), np.float32), 1)
    with pytest.raises(ValueError, match=r"^b: all zeros"):
        interpolate(np.ones(4), np.zeros(4), 3)
    with pytest.raises(ValueError, match=r"^c: NaN or infinite values"):
        arithmetic(np.ones(4), np.eye(4)[0], np.full(4, np.inf))


def test_the_space_refuses_bad_vectors_with_the_same_words(space) -> None:
    count = len(space)
    with pytest.raises(SpaceError, match=r"^the query vector: got shape \(512,\); expected 384-dimensional"):
        space.search(np.ones(512, np.float32))
    with pytest.raises(SpaceError, match=r"^the query vector: all zeros"):
        space.search(np.zeros(384, np.float32))
    with pytest.raises(SpaceError, match=r"^the query vector: got shape \(2, 384\); give one vector"):
        space.search(np.ones((2, 384), np.float32))
    with pytest.raises(SpaceError, match=r"^vectors: rows \[1\] are all zeros"):
        space.add_vectors(np.stack([np.ones(384), np.zeros(384)]).astype(np.float32), ["one", "zero"])
    with pytest.raises(SpaceError, match=r"^vectors: NaN or infinite values in rows \[0\]"):
        space.add_vectors(np.full((1, 384), np.nan, np.float32), ["nan"])
    assert len(space) == count
    ids = space.add_vectors(np.full((2, 384), 3.0, np.float32), ["a", "b"])
    np.testing.assert_allclose(np.linalg.norm(space.vectors[-2:], axis=1), 1.0, atol=1e-6)
    assert space.search(np.full(384, 2.0, np.float32), k=1)["id"].item() in ids


def test_the_dashboard_refuses_a_bad_point_before_queueing_a_job() -> None:
    from dashboard.jobs import Settings, point_request

    with pytest.raises(ValueError, match=r"^the point to generate from: all zeros"):
        point_request(np.zeros(8, np.float32), "nothing", Settings())
    with pytest.raises(ValueError, match=r"^the point to generate from: NaN or infinite values"):
        point_request(np.full(8, np.nan, np.float32), "nothing", Settings())


def test_huge_and_tiny_vectors_normalise_without_overflow_or_underflow():
    from embedspace.vectors import unit_rows, unit_vector

    for scale in (1e38, 1e-30):
        rows = unit_rows(np.full((2, 4), scale, np.float32), 4)
        assert np.allclose(np.linalg.norm(rows, axis=1), 1.0) and np.isfinite(rows).all()
        assert np.isclose(np.linalg.norm(unit_vector(np.full(4, scale, np.float32), 4)), 1.0)
