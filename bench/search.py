"""Queries/second of ``space.search`` (vector queries) against raw FAISS and numpy brute force.

All three run in this process over the same synthetic 384-d unit vectors; the script
prints their ratios. Usage::

    .venv/bin/python bench/search.py [--sizes 10000 100000] [--queries 200] [-k 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from embedspace import Space
from embedspace.models import EmbeddingModel

DIM = 384


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def queries_per_second(function: Callable[[np.ndarray], object], queries: np.ndarray, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over the queries, one query per call."""
    function(queries[0])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for query in queries:
            function(query)
        best = min(best, time.perf_counter() - start)
    return len(queries) / best


def bench(size: int, queries: np.ndarray, k: int, model: EmbeddingModel, folder: Path) -> dict[str, float]:
    space = Space.create(folder / f"space-{size}", model=model)
    vectors = unit_rows(size, seed=size)
    space.add_vectors(vectors, [f"item {i}" for i in range(size)])
    raw = space.index._index  # the very FAISS index space.search uses
    space.search(queries[0], k=k)  # builds the index

    def numpy_brute(query: np.ndarray) -> np.ndarray:
        scores = vectors @ query
        top = np.argpartition(-scores, k)[:k]
        return top[np.argsort(-scores[top])]

    rates = {
        "space.search": queries_per_second(lambda query: space.search(query, k=k), queries),
        "raw faiss": queries_per_second(lambda query: raw.search(query[None, :], k), queries),
        "numpy brute force": queries_per_second(numpy_brute, queries),
    }
    # correctness: all three agree on the best match of the first query
    assert space.search(queries[0], k=1)["id"].item() == int(raw.search(queries[:1], 1)[1][0, 0]) == int(numpy_brute(queries[0])[0])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    model = EmbeddingModel.load("emoji-mini")
    queries = unit_rows(args.queries, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            rates = bench(size, queries, args.k, model, Path(folder))
            base = rates["raw faiss"]
            print(f"\n{size:,} vectors, {DIM}-d, k={args.k}, {args.queries} single-vector queries (index Flat)")
            for name, rate in rates.items():
                print(f"  {name:<18} {rate:10.0f} queries/s   {rate / base:5.2f}x raw faiss")
            print(f"  space.search / numpy brute force: {rates['space.search'] / rates['numpy brute force']:.2f}x")


if __name__ == "__main__":
    main()
