"""VectorIndex: a FAISS index described by one factory string, over int64 ids; and how a space picks one.

Vectors are float32 ``(N, D)`` and L2-normalised, so inner product is cosine
similarity (Johnson, Douze & Jégou, "Billion-scale similarity search with GPUs", 2017).

A space searches exactly (see :mod:`embedspace.exact`) below
:attr:`IndexSettings.ann_threshold` vectors. Above it, it uses an inverted-file index
with an HNSW coarse quantiser and product-quantised codes, as the FAISS guidelines
advise for 1M–10M vectors ("Guidelines to choose an index", FAISS wiki): ``K`` lists
with ``K`` about ``4·√N`` (a power of two), trained on ``30·K`` to ``256·K`` sampled vectors.
PQ codes alone rank neighbours coarsely, so the space asks the index for
``refine × k`` candidates and re-ranks them exactly from the stored vectors.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from embedspace.durable import write_bytes_atomic
from embedspace.vectors import as_matrix

logger = logging.getLogger(__name__)

#: The factory a space is created with unless told otherwise: chosen by size (see :func:`choose_factory`).
AUTO = "auto"
SMALL_FACTORY = "Flat"
#: Environment variable that overrides :attr:`IndexSettings.ann_threshold` (tests lower it).
THRESHOLD_VARIABLE = "EMBEDSPACE_ANN_THRESHOLD"


@dataclass(frozen=True)
class IndexSettings:
    """How a space searches.

    Attributes:
        ann_threshold: at or above this many items an ``auto`` space builds an approximate
            index; below it, search is exact. Default 100,000; ``EMBEDSPACE_ANN_THRESHOLD`` overrides it.
        refine: candidates fetched per wanted result and re-ranked exactly (``refine × k``).
        nprobe: inverted lists visited per query; None picks ``max(16, K // 64)``.
        ef_search: HNSW coarse-quantiser search depth.
    """

    ann_threshold: int = 100_000
    refine: int = 10
    nprobe: int | None = None
    ef_search: int = 64

    @classmethod
    def from_environment(cls) -> "IndexSettings":
        """Defaults, with ``EMBEDSPACE_ANN_THRESHOLD`` applied when set (a positive integer)."""
        value = os.environ.get(THRESHOLD_VARIABLE)
        if value is None:
            return cls()
        try:
            threshold = int(value)
            if threshold < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"{THRESHOLD_VARIABLE}={value!r} must be a positive integer (items above which search is approximate)") from None
        return replace(cls(), ann_threshold=threshold)


def choose_factory(count: int, dim: int, settings: IndexSettings | None = None) -> str:
    """The factory string for ``count`` vectors of dimension ``dim``: ``Flat`` below the threshold, else IVF-HNSW-PQ.

    ``K`` is the power of two nearest ``4·√count`` (at least 64); PQ uses ``dim / 8`` sub-quantisers
    of 8 bits (48 bytes a vector at D=384), or SQ8 when ``dim`` is not divisible by 8.
    """
    settings = settings or IndexSettings.from_environment()
    if count < settings.ann_threshold:
        return SMALL_FACTORY
    lists = max(64, 2 ** round(math.log2(4 * math.sqrt(max(count, 1)))))
    codes = f"PQ{dim // 8}" if dim % 8 == 0 else "SQ8"
    return f"IVF{lists}_HNSW32,{codes}"


def training_sample_size(factory: str, count: int) -> int:
    """How many vectors to train ``factory`` on: ``64·K`` for ``K`` lists (between FAISS's 30·K and 256·K), capped at ``count``."""
    lists = _lists(factory)
    return count if lists is None else min(count, max(64 * lists, 10_000))


def _lists(factory: str) -> int | None:
    """``K`` of an ``IVF{K}...`` factory string, else None."""
    for part in re.split(r"[,_]", factory):
        if part.startswith("IVF") and part[3:].isdigit():
            return int(part[3:])
    return None


def validate_factory(factory: str, dim: int) -> None:
    """Raise ValueError with one line when ``factory`` is not ``auto`` or a FAISS factory string for ``dim``."""
    if factory != AUTO:
        VectorIndex(dim, factory)


class VectorIndex:
    """A FAISS index with stable int64 ids, answering ``train / add / search / remove / merge_from / save / load``.

    Inverted-file indexes store their ids themselves; others (Flat, HNSW) are wrapped in an
    ``IndexIDMap2``.

    Args:
        dim: vector dimension D.
        factory: FAISS factory string, e.g. ``"Flat"`` (exact), ``"HNSW32"``, ``"IVF1024_HNSW32,PQ48"``.
    """

    def __init__(self, dim: int, factory: str = SMALL_FACTORY):
        self.dim = dim
        self.factory = factory
        try:
            inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as error:
            reason = str(error).splitlines()[-1].rsplit(": ", 1)[-1].strip()
            raise ValueError(f"invalid FAISS factory string {factory!r}: {reason}; see the FAISS wiki's index factory page") from None
        ivf = faiss.try_extract_index_ivf(inner)
        if ivf is not None and isinstance(faiss.downcast_index(ivf), faiss.IndexIVFPQ):
            faiss.downcast_index(ivf).do_polysemous_training = False  # minutes on a CPU, for a filter search never uses
        self._index = inner if ivf is not None else faiss.IndexIDMap2(inner)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def lists(self) -> int | None:
        """Number of inverted lists, or None for an index without them."""
        ivf = faiss.try_extract_index_ivf(self._index)
        return None if ivf is None else int(ivf.nlist)

    def memory_bytes(self) -> int:
        """Bytes the index takes when serialised (about what it takes in memory)."""
        return int(faiss.serialize_index(self._index).nbytes)

    def train(self, vectors: np.ndarray) -> None:
        """Train quantisers (IVF, PQ) on a sample ``(N, D)`` float32; a no-op for Flat and HNSW."""
        if not self.is_trained:
            matrix = as_matrix(vectors, self.dim)
            lists = self.lists
            if lists is not None and len(matrix) < lists:
                raise ValueError(f"cannot train a {self.factory!r} index on {len(matrix)} vectors: it needs at least {lists} (one per list)")
            try:
                self._index.train(matrix)
            except RuntimeError as error:  # e.g. fewer training vectors than PQ centroids
                raise ValueError(f"cannot train a {self.factory!r} index on {len(matrix)} vectors: {str(error).splitlines()[-1].strip()}") from None

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add ``(N, D)`` float32 vectors under ``(N,)`` int64 ids; trains first if needed."""
        vectors = as_matrix(vectors, self.dim)
        if not self.is_trained:
            self.train(vectors)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        settings: IndexSettings | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` best matches of each query.

        Args:
            queries: ``(Q, D)`` float32, L2-normalised.
            k: results per query.
            allowed: optional int64 ids; results are restricted to them.
            settings: ``nprobe`` and ``ef_search`` of inverted-file indexes.

        Returns:
            ``(scores, ids)``, both ``(Q, k)``: float32 inner products, best first, and
            int64 ids where ``-1`` means "no result" (fewer than k candidates).
        """
        queries = as_matrix(queries, self.dim, "queries")
        settings = settings or IndexSettings()
        selector = None if allowed is None else faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        lists = self.lists
        if lists is not None:
            params = faiss.SearchParametersIVF(sel=selector, nprobe=settings.nprobe or max(16, lists // 64))
            if isinstance(faiss.downcast_index(faiss.extract_index_ivf(self._index).quantizer), faiss.IndexHNSW):
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(settings.ef_search, params.nprobe))
        else:
            params = None if selector is None else faiss.SearchParameters(sel=selector)
        return self._index.search(queries, k, params=params)

    def remove(self, ids: np.ndarray) -> bool:
        """Remove ids; returns False when this index type cannot remove (the caller rebuilds)."""
        try:
            self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))
        except RuntimeError:
            return False
        return True

    def empty_copy(self) -> "VectorIndex":
        """A trained copy holding no vectors: what shard builders start from."""
        copy = VectorIndex.deserialize(self.serialize(), self.dim, self.factory)
        copy._index.reset()
        return copy

    def merge_from(self, other: "VectorIndex") -> None:
        """Move every vector of ``other`` (same factory and training) into this index; ``other`` is left empty."""
        if self.lists is None or other.lists != self.lists:
            raise ValueError(f"only inverted-file indexes of the same shape merge; got {self.factory!r} and {other.factory!r}")
        faiss.extract_index_ivf(self._index).merge_from(faiss.extract_index_ivf(other._index), 0)
        self._index.ntotal = faiss.extract_index_ivf(self._index).ntotal

    def serialize(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    @classmethod
    def deserialize(cls, data: bytes, dim: int, factory: str) -> "VectorIndex":
        """An index from :meth:`serialize` bytes, checked to have dimension ``dim``.

        Raises:
            ValueError: not a readable FAISS index, or of another dimension.
        """
        index = cls.__new__(cls)
        index.dim, index.factory = dim, factory
        try:
            index._index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as error:
            raise ValueError(f"not a readable FAISS index ({str(error).splitlines()[-1].strip()})") from None
        if index._index.d != dim:
            raise ValueError(f"index has dimension {index._index.d}, expected {dim}")
        return index

    def save(self, path: Path) -> None:
        """Write the index to ``path`` durably (temporary file, fsync, rename)."""
        write_bytes_atomic(Path(path), self.serialize())

    @classmethod
    def load(cls, path: Path, dim: int, factory: str) -> "VectorIndex":
        """Read an index written by :meth:`save`.

        Raises:
            ValueError: unreadable, or of another dimension (the message names the file).
        """
        try:
            return cls.deserialize(Path(path).read_bytes(), dim, factory)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, factory: str) -> "VectorIndex":
        """Build an index of ``factory`` type over ``(N, D)`` vectors and ``(N,)`` ids."""
        index = cls(vectors.shape[1], factory)
        if len(ids):
            index.add(vectors, ids)
        return index
