"""Exact search speed: the space's path beside FAISS ``IndexFlatIP`` and a numpy matrix product, single queries and batches.

All run in this process over the same 384-d unit vectors. The space's exact path streams
its memory-mapped parts block by block (:func:`embedspace.exact.search_blocks`: ``sgemv``
for one query, ``sgemm`` for a batch); FAISS and numpy search a copy held in RAM. Each
line gives queries/s, the gigabytes of vectors read per second (rows × D × 4 bytes per
query, once per batch), and the ratio to FAISS. The memory-bandwidth bound is measured
too (a streaming read of the same vectors), so "at the bound" is a number. Usage::

    .venv/bin/python bench/search.py [--sizes 100000 1000000] [--queries 200] [--batch 200] [-k 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from embedspace import Space
from embedspace.exact import search_blocks
from embedspace.models import EmbeddingModel

DIM = 384


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def best_seconds(function: Callable[[], object], repeats: int = 3) -> float:
    function()  # warm-up (and page-in of memory-mapped parts)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def read_bandwidth(vectors: np.ndarray) -> float:
    """Bytes/s of a plain streaming read of ``vectors`` (a sum over rows: one pass, little arithmetic per byte)."""
    seconds = best_seconds(lambda: np.add.reduce(vectors, axis=0))
    return vectors.nbytes / seconds


def bench(size: int, queries: np.ndarray, singles: int, batch: int, k: int, model: EmbeddingModel, folder: Path) -> None:
    vectors = unit_rows(size, seed=size)
    space = Space.create(folder / f"space-{size}", model=model, factory="Flat")
    for start in range(0, size, 250_000):
        space.add_vectors(vectors[start : start + 250_000], [f"item {i}" for i in range(start, min(size, start + 250_000))])
    space = Space.open(space.path, model=model)  # a fresh open: parts memory-mapped, nothing loaded
    blocks = space._rows.blocks
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)

    def numpy_product(block: np.ndarray) -> np.ndarray:
        scores = block @ vectors.T if block.ndim == 2 else vectors @ block
        return np.argpartition(-scores, k, axis=-1)[..., :k]

    single: dict[str, Callable[[np.ndarray], object]] = {
        "space.search (DataFrame)": lambda query: space.search(query, k=k),
        "exact blocks (mmap)": lambda query: search_blocks(blocks, query[None], k),
        "faiss IndexFlatIP": lambda query: flat.search(query[None], k),
        "numpy product": numpy_product,
    }
    batched: dict[str, Callable[[np.ndarray], object]] = {
        "exact blocks (mmap)": lambda rows: search_blocks(blocks, rows, k),
        "faiss IndexFlatIP": lambda rows: flat.search(rows, k),
        "numpy product": numpy_product,
    }
    bound = read_bandwidth(vectors)
    print(f"\n{size:,} vectors x {DIM}-d float32 ({vectors.nbytes / 1e9:.2f} GB), k={k}; streaming read {bound / 1e9:.1f} GB/s")
    # correctness: all agree on the best matches of the first queries
    ours = search_blocks(blocks, queries[:5], k)[1]
    theirs = flat.search(queries[:5], k)[1]
    assert (ours[:, 0] == theirs[:, 0]).all(), "exact paths disagree on the best match"

    print(f"  single queries ({singles}, one per call)")
    rates = {name: singles / best_seconds(lambda run=run: [run(query) for query in queries[:singles]], repeats=2) for name, run in single.items()}
    for name, rate in rates.items():
        gbps = rate * vectors.nbytes / 1e9
        print(f"    {name:<26} {rate:9.1f} q/s  {gbps:6.1f} GB/s ({gbps * 1e9 / bound:4.2f} of the bound)  {rate / rates['faiss IndexFlatIP']:5.2f}x faiss")
    rows = queries[:batch]
    print(f"  one batch of {len(rows)} queries")
    rates = {name: len(rows) / best_seconds(lambda run=run: run(rows), repeats=2) for name, run in batched.items()}
    for name, rate in rates.items():
        print(f"    {name:<26} {rate:9.1f} q/s  {rate / rates['faiss IndexFlatIP']:5.2f}x faiss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50, help="single queries timed per method")
    parser.add_argument("--batch", type=int, default=200, help="queries in the batched run")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, faiss {faiss.__version__}, {faiss.omp_get_max_threads()} FAISS threads")
    model = EmbeddingModel.load("emoji-mini")
    queries = unit_rows(max(args.queries, args.batch), seed=1)
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            bench(size, queries, args.queries, args.batch, args.k, model, Path(folder))


if __name__ == "__main__":
    main()
