"""Large spaces: the approximate index, adds, ingest on Ray and the map at size, each beside its baseline.

Prints, in one run, with the command and the machine:

- **index**: a space of ``--size`` clustered 384-d vectors (``--clusters`` centres in a
  64-d subspace plus noise, as real embeddings are: their intrinsic dimension is far below
  384), its index built by size (``space.build_index()``), then recall@10 of held-out
  queries against exact search, queries/s of both, and the resident bytes per vector of a
  fresh process that opens the space and searches once (aims: recall >= 0.95 at >= 10x
  exact; <= 1,000 B per vector);
- **add**: adding ``--add`` vectors (write, then the first search, which puts them into
  the trained index) to that space against adding them to an empty one (aim <= 1.5x);
- **ingest**: ``--texts`` texts from a CSV encoded by the real default model, the plain
  local loop (1 torch thread, and all threads) against Ray Data with 1 and 2 workers
  (aims: Ray at 1 worker <= 1.15x slower than the loop, 2 workers >= 1.6x faster than 1);
- **umap**: the map of the big space fitted on a ``--umap-sample`` sample with the rest
  placed by ``transform``: wall time, and 10-NN preservation (the share of each point's 10
  nearest neighbours in the space that are among its 10 nearest on the map, 5,000 random
  points) against the full UMAP fit of the sample itself (aim >= 0.9 of it).

Usage (the figures in the README come from the first line)::

    .venv/bin/python bench/scale.py
    .venv/bin/python bench/scale.py --size 200000 --add 20000 --texts 2000 --umap-sample 20000   # minutes, not an hour
    .venv/bin/python bench/scale.py --sections ingest
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384
SECTIONS = ("index", "add", "ingest", "umap")


def clustered(count: int, clusters: int, seed: int, latent: int = 64) -> np.ndarray:
    """``(count, 384)`` unit vectors around ``clusters`` centres of a ``latent``-d subspace, plus a little isotropic noise."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1).normal(size=(latent, DIM)).astype(np.float32) / np.sqrt(latent)
    centres = np.random.default_rng(2).normal(size=(clusters, latent)).astype(np.float32)
    out = np.empty((count, DIM), np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        points = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, latent)).astype(np.float32)
        rows = points @ basis + 0.02 * rng.normal(size=(n, DIM)).astype(np.float32)
        out[start : start + n] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def say(line: str) -> None:
    print(line, flush=True)


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def fill(space, vectors: np.ndarray, first: int = 0, chunk: int = 250_000) -> None:
    for start in range(0, len(vectors), chunk):
        rows = vectors[start : start + chunk]
        space.add_vectors(rows, [f"v{first + start + i}" for i in range(len(rows))])


def resident(path: Path) -> dict[str, float]:
    """RSS growth of a fresh process that opens the space at ``path`` and runs one vector search (kB from /proc).

    The libraries are imported before the first reading: their code is a fixed cost, not a per-vector one.
    """
    code = (
        "import json, sys, numpy as np, faiss, pandas, pyarrow.parquet\n"
        "from embedspace import Space\n"
        "import embedspace.space_index, embedspace.exact\n"
        "def rss():\n"
        "    fields = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "    return {key: int(fields[key].split()[0]) for key in ('VmRSS', 'RssAnon', 'RssFile')}\n"
        "before = rss()\n"
        f"space = Space.open({str(path)!r})\n"
        "space.search(np.ones(space.dim, np.float32) / space.dim ** 0.5, k=10)\n"
        "after = rss()\n"
        "print(json.dumps({key: after[key] - before[key] for key in after} | {'items': len(space)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def section_index(args, folder: Path, model) -> None:
    from embedspace import Space

    path = folder / "big"
    vectors = clustered(args.size, args.clusters, seed=0)
    space = Space.create(path, model=model)
    _, seconds = timed(lambda: fill(space, vectors))
    say(f"\n[index] {args.size:,} x {DIM}-d clustered vectors written in {seconds:.1f} s ({len(space.store.read_manifest()['segments'])} parts)")
    factory, seconds = timed(space.build_index)
    say(f"  build_index() chose {factory}; trained and filled in {seconds:.1f} s")
    held_out = clustered(args.queries, args.clusters, seed=7)
    evaluation = space.evaluate_index(held_out, k=10)
    ratio = evaluation.index_queries_per_second / evaluation.exact_queries_per_second
    say(f"  {args.queries} held-out queries, k=10: recall@10 {evaluation.recall:.3f} against exact; "
        f"{evaluation.index_queries_per_second:,.0f} q/s against exact {evaluation.exact_queries_per_second:,.1f} q/s = {ratio:.1f}x")
    say(f"  aim recall >= 0.95 at >= 10x exact: {'met' if evaluation.recall >= 0.95 and ratio >= 10 else 'MISSED'}")
    own = space.evaluate_index(200, k=10)
    say(f"  (stored vectors as queries, as `embedspace index eval` runs: recall@10 {own.recall:.3f}, {own.index_queries_per_second / own.exact_queries_per_second:.1f}x exact)")
    space.close()
    grown = resident(path)
    per_vector = grown["VmRSS"] * 1024 / grown["items"]
    say(f"  fresh open + one search: resident +{grown['VmRSS'] / 1024:.0f} MiB = {per_vector:.0f} B per vector "
        f"(anonymous {grown['RssAnon'] * 1024 / grown['items']:.0f} B, file pages {grown['RssFile'] * 1024 / grown['items']:.0f} B); "
        f"index {evaluation.index_bytes_per_vector:.0f} B per vector; vectors on disk {DIM * 4} B per vector")
    say(f"  aim <= 1,000 B per vector: {'met' if per_vector <= 1000 else 'MISSED'}")


def section_add(args, folder: Path, model) -> None:
    from embedspace import Space

    path = folder / "big"
    if not path.exists():
        say("\n[add] skipped: needs the space of the index section")
        return
    extra = clustered(args.add, args.clusters, seed=3)
    query = extra[0]
    big = Space.open(path, model=model)
    big.search(query, k=10)  # index loaded and current before the clock starts
    _, write_big = timed(lambda: fill(big, extra, first=10**9))
    _, search_big = timed(lambda: big.search(query, k=10))
    empty = Space.create(folder / "empty", model=model)
    _, write_empty = timed(lambda: fill(empty, extra))
    _, search_empty = timed(lambda: empty.search(query, k=10))
    total_big, total_empty = write_big + search_big, write_empty + search_empty
    say(f"\n[add] {args.add:,} vectors into the {len(big) - args.add:,}-item space: write {write_big:.2f} s + first search (into the trained index) {search_big:.2f} s = {total_big:.2f} s")
    say(f"  into an empty space: write {write_empty:.2f} s + first search {search_empty:.2f} s = {total_empty:.2f} s")
    say(f"  ratio {total_big / total_empty:.2f}x (writes alone {write_big / write_empty:.2f}x); aim <= 1.5x: {'met' if total_big / total_empty <= 1.5 else 'MISSED'}")
    big.close()


def section_ingest(args, folder: Path, model) -> None:
    import pandas as pd
    import ray
    import torch

    from embedspace import Space
    from embedspace.ingest import ingest

    words = ["red", "blue", "green", "happy", "sad", "cat", "dog", "fish", "car", "tree", "moon", "sun", "rain", "music", "food", "heart"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=int(rng.integers(2, 7)))) + f" {number}" for number in range(args.texts)]
    table = folder / "texts.csv"
    pd.DataFrame({"text": texts}).to_csv(table, index=False)
    block_rows = max(64, args.texts // 32)
    say(f"\n[ingest] {args.texts:,} texts from a CSV, model {model.model_id}, blocks of {block_rows} rows")
    results: dict[str, float] = {}
    threads = torch.get_num_threads()
    for name, count in (("local loop, 1 thread", 1), (f"local loop, {threads} threads", threads)):
        torch.set_num_threads(count)
        space = Space.create(folder / f"ingest-local-{count}", model=model)
        _, seconds = timed(lambda space=space: ingest(space, table, block_rows=block_rows, progress=False))
        results[name] = args.texts / seconds
        say(f"  {name:<24} {results[name]:8.0f} items/s ({seconds:.1f} s)")
    torch.set_num_threads(threads)
    reference = Space.open(folder / "ingest-local-1", model=model)
    for workers in (1, 2):
        _, startup = timed(lambda workers=workers: ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False))
        space = Space.create(folder / f"ingest-ray-{workers}", model=model)
        _, seconds = timed(lambda space=space, workers=workers: ingest(space, table, engine="ray", workers=workers, block_rows=block_rows, progress=False))
        ray.shutdown()
        results[f"ray {workers}"] = args.texts / seconds
        same = np.allclose(space.vectors_of(space.items["id"]), reference.vectors_of(reference.items["id"]), atol=1e-5)
        say(f"  Ray Data, {workers} worker(s)        {results[f'ray {workers}']:8.0f} items/s ({seconds:.1f} s; Ray started beforehand in {startup:.1f} s; vectors equal the loop's: {same})")
    one = results["local loop, 1 thread"] / results["ray 1"]
    two = results["ray 2"] / results["ray 1"]
    say(f"  Ray 1 worker is {one:.2f}x slower than the 1-thread loop (aim <= 1.15x: {'met' if one <= 1.15 else 'MISSED'}); "
        f"2 workers {two:.2f}x faster than 1 (aim >= 1.6x: {'met' if two >= 1.6 else 'MISSED'})")


def preservation(high: np.ndarray, low: np.ndarray, chosen: np.ndarray, k: int = 10) -> float:
    """Mean share of each chosen point's ``k`` nearest neighbours in ``high`` (cosine) that are among its ``k`` nearest in ``low``."""
    from sklearn.neighbors import NearestNeighbors

    from embedspace.exact import search_blocks

    near_high = np.concatenate([search_blocks([high], high[chosen[start : start + 500]], k + 1)[1] for start in range(0, len(chosen), 500)])
    near_low = NearestNeighbors(n_neighbors=k + 1).fit(low).kneighbors(low[chosen], return_distance=False)
    shares = [len((set(a) - {point}) & (set(b) - {point})) / k for point, a, b in zip(chosen, near_high, near_low)]
    return float(np.mean(shares))


def section_umap(args, folder: Path, model) -> None:
    from embedspace import Space
    from embedspace.maps import compute_space_projection
    from embedspace.projection import Projection

    path = folder / "big"
    if not path.exists():
        say("\n[umap] skipped: needs the space of the index section")
        return
    space = Space.open(path, model=model)
    marks: list[tuple[float, str]] = []
    started = time.perf_counter()

    def progress(fraction: float, message: str) -> None:
        marks.append((time.perf_counter() - started, message))

    stored = compute_space_projection(space, 2, Projection(n_components=2, sample_size=args.umap_sample), refit=True, progress=progress, engine=args.umap_engine)
    total = time.perf_counter() - started
    fitted = next((seconds for seconds, message in marks if message.startswith("placing")), total)
    say(f"\n[umap] map of {len(stored.ids):,} items: UMAP fitted on {stored.projection.n_samples_fit_:,} in {fitted:.0f} s, "
        f"the rest placed by transform ({args.umap_engine}) in {total - fitted:.0f} s; {total:.0f} s in all")
    vectors = space.vectors_of(stored.ids)
    rng = np.random.default_rng(0)
    everyone = preservation(vectors, stored.coordinates, rng.choice(len(stored.ids), min(5000, len(stored.ids)), replace=False))
    sample = stored.projection.sample_indices_
    fit_only = preservation(vectors[sample], stored.coordinates[sample], rng.choice(len(sample), min(5000, len(sample)), replace=False))
    say(f"  10-NN preservation: sample + transform over all {len(stored.ids):,} items {everyone:.3f}; "
        f"the full fit of the {len(sample):,}-item sample {fit_only:.3f}; ratio {everyone / fit_only:.2f} (aim >= 0.9: {'met' if everyone / fit_only >= 0.9 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="vectors in the big space")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200, help="held-out queries for recall and speed")
    parser.add_argument("--add", type=int, default=100_000, help="vectors added to the big and to an empty space")
    parser.add_argument("--texts", type=int, default=20_000, help="texts ingested per engine")
    parser.add_argument("--umap-sample", type=int, default=200_000, help="UMAP fit sample")
    parser.add_argument("--umap-engine", choices=["local", "ray"], default="local")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--folder", type=Path, default=None, help="where spaces are written (default a temporary folder, deleted)")
    args = parser.parse_args()

    import faiss
    import torch

    from embedspace.models import EmbeddingModel

    say(f"$ {' '.join([Path(sys.executable).name] + sys.argv)}")
    say(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB; "
        f"faiss {faiss.__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    model = EmbeddingModel.load("emoji-mini")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        runs = {"index": section_index, "add": section_add, "ingest": section_ingest, "umap": section_umap}
        for name in SECTIONS:
            if name in args.sections:
                runs[name](args, folder, model)


if __name__ == "__main__":
    main()
