"""Dashboard weight at scale: bytes per point and time to first render, against a bare Plotly page.

Builds (once, cached) a synthetic space of ``--points`` items with ``space.add_vectors``
(clustered random unit vectors, no encoding) and its 2-D map (UMAP fitted on a sample,
the rest placed with ``transform``). Then, in headless Chromium with the cache off, it
loads

- **ours**: the dashboard page for that space (map already computed), and
- **bare**: a static HTML page with plotly.js and one ``Scattergl`` of the same
  coordinates (float32 typed arrays, as ``plotly.io.write_html`` writes them),

and reports, as the median of ``--runs`` loads, the bytes the server sent until the
map was drawn (all of them, and without the JavaScript/CSS libraries: "data") and the
time from navigation start until every point was drawn, with ratios ours / bare.

    .venv/bin/python bench/dashboard.py                  # 100,000 points
    .venv/bin/python bench/dashboard.py --points 20000 --runs 5

**Large maps** (``--lod 1000000 10000000``): maps above the level-of-detail threshold are
drawn as a density image of every point under a sample of the points in view
(:mod:`dashboard.density`). These cases use synthetic 2-D coordinates (a mixture of 60
clusters with a colour category each, no space): for each size the figure the dashboard
sends for the whole map (built by the dashboard's own code: sample, datashader image,
cluster-free layout) is written into a static page beside plotly.js and loaded like the
pages above, against the bare 100,000-point page; bytes are what the server sends
compressed (gzip, as the dashboard's flask-compress does). Then the server time of a pan
or zoom (new sample, new density image, the patch serialised) over random views, from
one and from eight threads at once (eight sessions), as median and p95.

    .venv/bin/python bench/dashboard.py --lod 1000000 10000000

``--serve`` times ``embedspace serve`` itself on a real space of ``--points`` items (built as
above, map fitted on ``--fit-sample`` items): from start until it answers, until a fresh
page has drawn its map, and the bytes that page received.

    .venv/bin/python bench/dashboard.py --points 1000000 --fit-sample 50000 --serve
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's folder comes first on sys.path and its name would hide the
# `dashboard` package: drop it, and add the tests' Chromium launcher (tests/browser.py)
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))

logger = logging.getLogger("bench.dashboard")

#: Points drawn in the page's plotly graph (legend traces only: the dashboard's overlays have none).
DRAWN_JS = """
(expected) => {
    const gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullData || !gd.calcdata) return false;
    const drawn = gd._fullData.filter(t => t.showlegend !== false).reduce((n, t) => n + (t._length || 0), 0);
    return drawn >= expected ? performance.now() : false;
}
"""
STATIC_TYPES = ("javascript", "css", "font", "image")


def build_space(path: Path, points: int, seed: int = 0) -> None:
    """A space of ``points`` synthetic items: 60 clusters of unit vectors, mixed modalities, a group per cluster."""
    from embedspace import Space

    rng = np.random.default_rng(seed)
    space = Space.create(path)
    centres = rng.normal(size=(60, space.dim)).astype(np.float32)
    for start in range(0, points, 50_000):
        count = min(50_000, points - start)
        cluster = rng.integers(0, len(centres), size=count)
        vectors = centres[cluster] + 0.6 * rng.normal(size=(count, space.dim)).astype(np.float32)
        modalities = rng.choice(["text", "image", "audio"], size=count, p=[0.6, 0.3, 0.1])
        for modality in ("text", "image", "audio"):
            rows = np.flatnonzero(modalities == modality)
            labels = [f"{modality} {start + row} of cluster {cluster[row]}" for row in rows]
            metadata = [{"group": f"cluster {cluster[row] % 12}"} for row in rows]
            space.add_vectors(vectors[rows], labels, modality=modality, metadata=metadata)
    logger.info("built %s: %d items", path, len(space))


def ensure_map(path: Path, fit_sample: int | None = None) -> str:
    """Compute and store the 2-D map if missing (UMAP fitted on at most ``fit_sample`` items); returns how long that took (or that it was cached)."""
    from embedspace import Space
    from embedspace.maps import compute_space_projection, load_space_projection
    from embedspace.projection import Projection

    space = Space.open(path)
    if load_space_projection(space, 2) is not None:
        return "cached"
    started = time.perf_counter()
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction
            logger.info("map %3.0f%% %s (%.0f s)", 100 * fraction, message, time.perf_counter() - started)

    projection = Projection(2) if fit_sample is None else Projection(2, sample_size=fit_sample)
    stored = compute_space_projection(space, 2, projection=projection, progress=progress)
    return f"{time.perf_counter() - started:.0f} s ({stored.projection.method_}, fitted on {stored.projection.n_samples_fit_:,})"


def bare_page(folder: Path, coordinates: np.ndarray) -> Path:
    """A static page: plotly.js (beside it, as a file) and one Scattergl of ``(N, 2)`` coordinates."""
    import plotly.graph_objects as go

    figure = go.Figure(go.Scattergl(x=coordinates[:, 0], y=coordinates[:, 1], mode="markers", marker={"size": 2.5}))
    figure.update_layout(template="plotly_white", margin={"l": 10, "r": 10, "t": 30, "b": 10})
    page = folder / "index.html"
    figure.write_html(page, include_plotlyjs="directory", full_html=True)
    return page


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP from a thread (so both pages travel the same way)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def load_once(browser: object, url: str, points: int, timeout_ms: int) -> dict[str, float]:
    """Load ``url`` in a fresh context with the cache off; bytes received and ms until ``points`` are drawn."""
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    kinds: dict[str, str] = {}
    sizes: dict[str, float] = {}
    cdp.on("Network.responseReceived", lambda event: kinds.__setitem__(event["requestId"], event["response"].get("mimeType", "")))
    cdp.on("Network.loadingFinished", lambda event: sizes.__setitem__(event["requestId"], event["encodedDataLength"]))
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    page.goto(url, wait_until="commit")
    drawn_ms = page.wait_for_function(DRAWN_JS, arg=points, polling="raf", timeout=timeout_ms).json_value()
    received = dict(sizes)  # what arrived until the map was drawn
    context.close()
    total = sum(received.values())
    static = sum(size for request, size in received.items() if any(kind in kinds.get(request, "") for kind in STATIC_TYPES))
    return {"bytes": total, "data_bytes": total - static, "ms": float(drawn_ms)}


def measure(browser: object, url: str, points: int, runs: int, timeout_ms: int) -> dict[str, float]:
    """Median of ``runs`` loads, after one unmeasured warm-up load."""
    load_once(browser, url, points, timeout_ms)
    loads = [load_once(browser, url, points, timeout_ms) for _ in range(runs)]
    return {key: statistics.median(load[key] for load in loads) for key in loads[0]}


def synthetic_map(points: int, seed: int = 0) -> object:
    """``MapPoints`` of ``points`` synthetic 2-D coordinates: 60 Gaussian clusters, each one of 12 colour categories."""
    from dashboard.figures import MapPoints

    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(60, 2))
    scales = rng.uniform(0.3, 1.5, size=60)
    cluster = rng.integers(0, 60, size=points)
    coordinates = (centres[cluster] + rng.normal(size=(points, 2)) * scales[cluster, None]).astype(np.float32)
    names = tuple(f"group {number}" for number in range(12))
    codes = (cluster % 12).astype(np.int16)
    values = np.asarray(names, dtype=object)[codes]
    return MapPoints(np.arange(points, dtype=np.int64), coordinates, values, "group", fixed_groups=(names, codes))


def lod_page(folder: Path, figure: object) -> Path:
    """A static page drawing ``figure`` (plotly.js beside it, as a file)."""
    page = folder / "index.html"
    figure.write_html(page, include_plotlyjs="directory", full_html=True)
    return page


def lod_views(full: object, count: int, seed: int = 1) -> list[object]:
    """``count`` random views: zooms from the whole map to 1/64 of it, anywhere on the map."""
    from dashboard.density import View

    rng = np.random.default_rng(seed)
    views = []
    for _ in range(count):
        share = 2.0 ** -rng.uniform(0, 6)
        width, height = (full.x1 - full.x0) * share, (full.y1 - full.y0) * share
        x0 = rng.uniform(full.x0, full.x1 - width)
        y0 = rng.uniform(full.y0, full.y1 - height)
        views.append(View(x0, x0 + width, y0, y0 + height))
    return views


def pan_zoom_times(lod: object, views: list[object], threads: int) -> list[float]:
    """Server seconds per pan/zoom update (sample, density image, the patch as JSON), ``threads`` at once."""
    from concurrent.futures import ThreadPoolExecutor

    from plotly.io.json import to_json_plotly

    from dashboard.figures import LOD_MARKER_SIZE, base_traces, density_image_layout

    def update(view: object) -> float:
        started = time.perf_counter()
        sample, layer = lod.layer(view)
        patch = {"data": [trace.to_plotly_json() for trace in base_traces(sample, size=LOD_MARKER_SIZE)], "images": [density_image_layout(layer)]}
        to_json_plotly(patch)
        return time.perf_counter() - started

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(update, views))


def lod_cases(sizes: list[int], runs: int, timeout_ms: int) -> None:
    """The large-map cases (see module docs): first render and bytes against the bare 100k page, pan/zoom server time."""
    import gzip

    import browser  # tests/browser.py
    from dashboard.density import LOD_POINTS, density_image
    from dashboard.figures import map_figure
    from dashboard.maps import LevelOfDetail

    baseline = synthetic_map(100_000)
    rows = []
    with tempfile.TemporaryDirectory() as folder, browser.chromium() as chromium:
        bare_folder = Path(folder) / "bare"
        bare_folder.mkdir()
        bare_page(bare_folder, baseline.coordinates)
        bare_bytes = len(gzip.compress((bare_folder / "index.html").read_bytes()))
        with serve_folder(bare_folder) as url:
            bare = measure(chromium, url + "/index.html", 100_000, runs, timeout_ms)
        for size in sizes:
            started = time.perf_counter()
            points = synthetic_map(size)
            made = time.perf_counter() - started
            started = time.perf_counter()
            lod = LevelOfDetail(points, LOD_POINTS)
            density_image(points.coordinates[:64], lod.full)  # datashader compiles once per process
            prepared = time.perf_counter() - started
            started = time.perf_counter()
            sample, layer = lod.layer(lod.full)
            figure = map_figure(sample, density=layer)
            first_figure = time.perf_counter() - started
            page_folder = Path(folder) / f"lod-{size}"
            page_folder.mkdir()
            page = lod_page(page_folder, figure)
            figure_bytes = len(gzip.compress(figure.to_json().encode()))
            with serve_folder(page_folder) as url:
                ours = measure(chromium, url + "/" + page.name, len(sample.ids), runs, timeout_ms)
            views = lod_views(lod.full, 200)
            one = pan_zoom_times(lod, views, threads=1)
            eight = pan_zoom_times(lod, views, threads=8)
            rows.append((size, made, prepared, first_figure, figure_bytes, ours, one, eight, len(sample.ids)))
    print(f"large maps: density image + sample of {LOD_POINTS:,}, synthetic coordinates, median of {runs} loads against the bare 100,000-point page")
    print(f"bare 100k page: {bare['ms']:,.0f} ms to first render, map data {bare_bytes:,} bytes gzip")
    print(f"{'points':>12}{'prepare s':>11}{'figure s':>10}{'map data':>12}{'render ms':>11}{'ratio':>7}{'pan p50 ms':>12}{'p95':>7}{'8 at once p95':>15}")
    results = []
    for size, made, prepared, first_figure, figure_bytes, ours, one, eight, drawn in rows:
        p50, p95, p95_eight = (1000 * float(np.percentile(times, q)) for times, q in ((one, 50), (one, 95), (eight, 95)))
        print(f"{size:>12,}{prepared:>11.1f}{first_figure:>10.2f}{figure_bytes:>12,}{ours['ms']:>11,.0f}{ours['ms'] / bare['ms']:>7.2f}{p50:>12.0f}{p95:>7.0f}{p95_eight:>15.0f}")
        results.append({"points": size, "drawn": drawn, "prepare_s": prepared, "figure_s": first_figure, "map_bytes_gzip": figure_bytes, "render_ms": ours["ms"], "bare_render_ms": bare["ms"], "pan_p50_ms": p50, "pan_p95_ms": p95, "pan_p95_8_sessions_ms": p95_eight})
    print("prepare: sample priorities and datashader's compile; figure: the first figure (sample + density image); 8 at once: eight threads, as eight sessions would")
    print(json.dumps(results))


def serve_case(path: Path, points: int, timeout_ms: int) -> None:
    """``embedspace serve`` started as the README does, on the space at ``path``: seconds until it
    answers ``/``, then until a fresh page has drawn the map, and the bytes that page received."""
    import browser  # tests/browser.py
    from dashboard.density import LOD_POINTS, LOD_THRESHOLD

    expected = points if points <= LOD_THRESHOLD else LOD_POINTS
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, browser.cli_server(str(path.resolve()), Path(folder), timeout=600) as (url, _log):
        answered = time.perf_counter() - started
        with browser.chromium() as chromium:
            first = load_once(chromium, url + "/", expected, timeout_ms)
            drawn = time.perf_counter() - started
            again = load_once(chromium, url + "/", expected, timeout_ms)
    print(f"embedspace serve on {points:,} items: answers / after {answered:.1f} s; first page drew its map {drawn:.1f} s after start")
    print(f"  first page: {first['bytes']:,.0f} bytes ({first['data_bytes']:,.0f} without scripts and styles), drawn {first['ms'] / 1000:.1f} s after navigation")
    print(f"  a second page: {again['bytes']:,.0f} bytes ({again['data_bytes']:,.0f} without scripts and styles), drawn {again['ms'] / 1000:.1f} s after navigation")
    print(json.dumps({"points": points, "answered_s": answered, "drawn_s": drawn, "first": first, "second": again}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--space", type=Path, default=None, help="space folder (default data/cache/bench-dashboard-<points>)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one page to draw")
    parser.add_argument("--lod", type=int, nargs="+", default=None, metavar="POINTS", help="large-map cases with synthetic coordinates instead (e.g. 1000000 10000000)")
    parser.add_argument("--serve", action="store_true", help="instead: time `embedspace serve` on the space from start to its first drawn page")
    parser.add_argument("--fit-sample", type=int, default=None, metavar="N", help="fit the space's map on at most N items (default: the library's 200,000)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.lod:
        lod_cases(args.lod, args.runs, int(args.timeout * 1000))
        return

    import browser  # tests/browser.py
    from dashboard import create_app
    from embedspace import Space
    from embedspace.maps import load_space_projection

    path = args.space or ROOT / "data" / "cache" / f"bench-dashboard-{args.points}"
    if not (path / "manifest.json").exists():
        build_space(path, args.points)
    map_time = ensure_map(path, args.fit_sample)
    if args.serve:
        serve_case(path, len(Space.open(path)), int(args.timeout * 1000))
        return
    stored = load_space_projection(Space.open(path), 2)
    points = len(stored.ids)

    app = create_app(path, warm_up=False)  # the bench draws the map only: no model needed
    status = app.services.maps.wait_for_map("2d", timeout=600)
    if status.state != "ready":
        raise SystemExit(f"the dashboard's map is not ready: {status.message}")
    timeout_ms = int(args.timeout * 1000)
    with tempfile.TemporaryDirectory() as folder, browser.chromium() as chromium:
        bare_page(Path(folder), stored.coordinates)
        with serve_folder(Path(folder)) as bare_url:
            bare = measure(chromium, bare_url + "/index.html", points, args.runs, timeout_ms)
        with browser.running(app) as ours_url:
            ours = measure(chromium, ours_url + "/", points, args.runs, timeout_ms)

    rows = [
        ("bytes sent until drawn", ours["bytes"], bare["bytes"], "{:,.0f}"),
        ("  per point", ours["bytes"] / points, bare["bytes"] / points, "{:.2f}"),
        ("data bytes (no JS/CSS)", ours["data_bytes"], bare["data_bytes"], "{:,.0f}"),
        ("  per point", ours["data_bytes"] / points, bare["data_bytes"] / points, "{:.2f}"),
        ("time to first render, ms", ours["ms"], bare["ms"], "{:,.0f}"),
    ]
    print(f"dashboard bench: {points:,} points, map {map_time}, median of {args.runs} loads in headless Chromium")
    print(f"{'':28}{'ours':>14}{'bare plotly':>14}{'ratio':>8}")
    for name, mine, theirs, style in rows:
        print(f"{name:28}{style.format(mine):>14}{style.format(theirs):>14}{mine / theirs:>8.2f}")
    print(json.dumps({"points": points, "ours": ours, "bare": bare}))


if __name__ == "__main__":
    main()
