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


def ensure_map(path: Path) -> str:
    """Compute and store the 2-D map if missing; returns how long that took (or that it was cached)."""
    from embedspace import Space
    from embedspace.maps import compute_space_projection, load_space_projection

    space = Space.open(path)
    if load_space_projection(space, 2) is not None:
        return "cached"
    started = time.perf_counter()
    last = [0.0]

    def progress(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.1 or fraction >= 1.0:
            last[0] = fraction
            logger.info("map %3.0f%% %s (%.0f s)", 100 * fraction, message, time.perf_counter() - started)

    stored = compute_space_projection(space, 2, progress=progress)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--space", type=Path, default=None, help="space folder (default data/cache/bench-dashboard-<points>)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one page to draw")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    import browser  # tests/browser.py
    from dashboard import create_app
    from embedspace import Space
    from embedspace.maps import load_space_projection

    path = args.space or ROOT / "data" / "cache" / f"bench-dashboard-{args.points}"
    if not (path / "manifest.json").exists():
        build_space(path, args.points)
    map_time = ensure_map(path)
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
