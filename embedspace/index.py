"""VectorIndex: a FAISS index described by one factory string, over int64 ids.

Vectors are float32 ``(N, D)`` and L2-normalised, so inner product is cosine
similarity (Johnson, Douze & Jégou, "Billion-scale similarity search with GPUs", 2017).
"""

from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from embedspace.durable import write_bytes_atomic
from embedspace.vectors import as_matrix

logger = logging.getLogger(__name__)

#: Spaces at or above this many vectors get :data:`LARGE_FACTORY` by default.
LARGE_SPACE = 200_000
SMALL_FACTORY = "Flat"
LARGE_FACTORY = "HNSW32"


def default_factory(count: int) -> str:
    """Exact search for small spaces, a graph index for large ones."""
    return SMALL_FACTORY if count < LARGE_SPACE else LARGE_FACTORY


class VectorIndex:
    """A FAISS index with stable int64 ids, answering ``train / add / search / remove / save / load``.

    Args:
        dim: vector dimension D.
        factory: FAISS factory string, e.g. ``"Flat"`` (exact), ``"HNSW32"``, ``"IVF1024,PQ32"``.
    """

    def __init__(self, dim: int, factory: str = SMALL_FACTORY):
        self.dim = dim
        self.factory = factory
        try:
            inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            raise ValueError(f"invalid FAISS factory string {factory!r}: {str(error).splitlines()[-1]}") from None
        self._index = faiss.IndexIDMap2(inner)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    def train(self, vectors: np.ndarray) -> None:
        """Train quantisers (IVF, PQ) on a sample ``(N, D)`` float32; a no-op for Flat and HNSW."""
        if not self.is_trained:
            matrix = as_matrix(vectors, self.dim)
            try:
                self._index.train(matrix)
            except RuntimeError as error:  # e.g. fewer training vectors than IVF lists
                raise ValueError(f"cannot train a {self.factory!r} index on {len(matrix)} vectors: {str(error).splitlines()[-1].strip()}") from None

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add ``(N, D)`` float32 vectors under ``(N,)`` int64 ids; trains first if needed."""
        vectors = as_matrix(vectors, self.dim)
        if not self.is_trained:
            self.train(vectors)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` best matches of each query.

        Args:
            queries: ``(Q, D)`` float32, L2-normalised.
            k: results per query.
            allowed: optional int64 ids; results are restricted to them.

        Returns:
            ``(scores, ids)``, both ``(Q, k)``: float32 inner products, best first, and
            int64 ids where ``-1`` means "no result" (fewer than k candidates).
        """
        queries = as_matrix(queries, self.dim, "queries")
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
        scores, ids = self._index.search(queries, k, params=params)
        return scores, ids

    def remove(self, ids: np.ndarray) -> bool:
        """Remove ids; returns False when this index type cannot remove (the caller rebuilds)."""
        try:
            self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
        except RuntimeError:
            return False
        return True

    def save(self, path: Path) -> None:
        """Write the index to ``path`` durably (temporary file, fsync, rename)."""
        write_bytes_atomic(Path(path), faiss.serialize_index(self._index).tobytes())

    @classmethod
    def load(cls, path: Path, dim: int, factory: str) -> "VectorIndex":
        index = cls.__new__(cls)
        index.dim, index.factory = dim, factory
        try:
            index._index = faiss.read_index(str(path))
        except RuntimeError as error:
            raise ValueError(f"{path}: not a readable FAISS index ({str(error).splitlines()[-1].strip()})") from None
        if index._index.d != dim:
            raise ValueError(f"{path}: index has dimension {index._index.d}, expected {dim}")
        return index

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, factory: str) -> "VectorIndex":
        """Build an index of ``factory`` type over ``(N, D)`` vectors and ``(N,)`` ids."""
        index = cls(vectors.shape[1], factory)
        if len(ids):
            index.add(vectors, ids)
        return index
