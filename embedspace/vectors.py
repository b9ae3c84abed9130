"""The one check of vectors at the library's boundaries: ``(N, D)`` float32, finite, unit rows.

Every module that takes vectors from a caller (the index, the projection, the space,
the generator's sampling and moves, the dashboard) checks them here, so a bad input
gets the same one-line ``ValueError`` wherever it enters: the message starts with the
input's ``name`` and says what was wrong (shape, dimension, NaN or infinite values,
all-zero rows) and what was expected.

numpy arrays, lists and torch tensors (any device) are accepted; torch is never
imported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Rows whose L2 norm is within this of 1 are already unit rows and are returned unchanged, so
#: normalising twice (the model, then the space, then the generator) never moves a vector's bits.
UNIT_TOLERANCE = 1e-6
#: At most this many bad row numbers are named in a message.
_ROWS_NAMED = 10


def _array(vectors: Any, name: str) -> np.ndarray:
    """``vectors`` as a numpy array of real numbers (not yet float32)."""
    if hasattr(vectors, "detach") and hasattr(vectors, "cpu"):  # a torch tensor: bring it to the host
        tensor = vectors.detach().cpu()
        try:
            vectors = tensor.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            vectors = tensor.float().numpy()
    try:
        array = np.asarray(vectors)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: not an array of numbers; give an (N, D) array of float32") from None
    if array.dtype == object:
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: not an array of numbers; give an (N, D) array of float32") from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)) or array.dtype == np.bool_:
        raise ValueError(f"{name}: got {array.dtype} values; give real numbers (float32)")
    return array


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask).tolist()
    return str(rows[:_ROWS_NAMED])[:-1] + (", ...]" if len(rows) > _ROWS_NAMED else "]")


def as_matrix(vectors: Any, dim: int | None = None, name: str = "vectors", hint: str = "") -> np.ndarray:
    """Check vectors and return them as a C-contiguous float32 ``(N, D)`` array.

    Args:
        vectors: an ``(N, D)`` array (numpy, list of rows, torch tensor); with ``dim``
            given, a ``(D,)`` vector too, returned as ``(1, D)``. ``N`` may be 0.
        dim: the dimension D the vectors must have, or None (any, but then only 2-D
            input is accepted: a 1-D array could be one vector or D scalars).
        name: what the vectors are, to start the error message ("condition vectors").
        hint: appended to a message about shape or dimension (what to do instead).

    Raises:
        ValueError: not numbers, wrong shape or dimension, NaN or infinite values.
    """
    array = _array(vectors, name)
    shape = tuple(array.shape)
    if array.ndim == 1 and dim is not None:
        array = array[None, :]
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        expected = f"{dim}-dimensional vectors, shape (N, {dim}) or ({dim},)" if dim is not None else "a 2-D array (N, D)"
        raise ValueError(f"{name}: got shape {shape}; expected {expected}" + (f"; {hint}" if hint else ""))
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array)
    if not finite.all():
        raise ValueError(f"{name}: NaN or infinite values in rows {_rows(~finite.all(axis=1))}; give finite numbers")
    return array


def unit_rows(vectors: Any, dim: int | None = None, name: str = "vectors", hint: str = "") -> np.ndarray:
    """:func:`as_matrix`, then each row divided by its L2 norm: ``(N, D)`` float32 unit rows.

    Rows already of unit length (within :data:`UNIT_TOLERANCE`) are kept as they are.

    Raises:
        ValueError: as :func:`as_matrix`, or a row is all zeros (it has no direction).
    """
    matrix = as_matrix(vectors, dim, name, hint)
    # (N, 1) float64: float32 squares overflow near 1e19 and underflow near 1e-23
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any():
        raise ValueError(f"{name}: rows {_rows(zero)} are all zeros, which have no direction; give non-zero vectors")
    unit = (matrix / norms).astype(np.float32)
    return np.where(np.abs(norms - 1) <= UNIT_TOLERANCE, matrix, unit)


def unit_vector(vector: Any, dim: int | None = None, name: str = "vector") -> np.ndarray:
    """One vector, ``(D,)`` or ``(1, D)``, checked and L2-normalised: ``(D,)`` float32.

    Raises:
        ValueError: not exactly one vector, wrong dimension, not finite, or all zeros.
    """
    array = _array(vector, name)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    expected = f"({dim},)" if dim is not None else "(D,)"
    if array.size == 0:
        raise ValueError(f"{name}: empty (shape {tuple(array.shape)}); give one vector of shape {expected}")
    if array.ndim != 1:
        raise ValueError(f"{name}: got shape {tuple(array.shape)}; give one vector of shape {expected}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: NaN or infinite values; give finite numbers")
    matrix = as_matrix(array if dim is not None else array[None, :], dim, name)
    norm = float(np.linalg.norm(matrix[0].astype(np.float64)))  # float64: no overflow or underflow of the squares
    if norm == 0.0:
        raise ValueError(f"{name}: all zeros, which has no direction; give a non-zero vector")
    return matrix[0].copy() if abs(norm - 1) <= UNIT_TOLERANCE else (matrix[0] / norm).astype(np.float32)
