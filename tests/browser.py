"""Shared helpers for the dashboard tests: a tiny space, a server thread or ``embedspace serve`` process, headless Chromium.

Browser tests drive Debian's ``/usr/bin/chromium`` through Playwright for Python
(``executable_path``), never a browser Playwright downloads; ``tests/install_browser.sh``
installs it with apt-get when missing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from embedspace.projection import Projection

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_SCRIPT = Path(__file__).with_name("install_browser.sh")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]

TEXTS = [
    ("cat", "animals"),
    ("kitten", "animals"),
    ("dog", "animals"),
    ("puppy", "animals"),
    ("ocean", "sea"),
    ("fish", "sea"),
    ("car", "vehicles"),
    ("truck", "vehicles"),
    ("<b>bold</b> <script>alert(1)</script>", "markup"),
]
IMAGES = [("red circle", "ellipse", (220, 30, 30)), ("blue square", "rectangle", (30, 60, 220)), ("green triangle", "polygon", (30, 170, 60))]
SOUNDS = [("low hum", 220.0), ("high beep", 1760.0)]


def draw_image(shape: str, colour: tuple[int, int, int], size: int = 64) -> Image.Image:
    """A simple RGB picture: one coloured shape on white."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    box = (8, 8, size - 8, size - 8)
    if shape == "polygon":
        draw.polygon([(size // 2, 6), (size - 6, size - 6), (6, size - 6)], fill=colour)
    else:
        getattr(draw, shape)(box, fill=colour)
    return image


def write_tone(path: Path, frequency: float, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A sine tone as a 16-bit WAV file."""
    import soundfile

    time = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * math.pi * frequency * time), rate, subtype="PCM_16")
    return path


def build_space(folder: Path, model: object = None) -> Path:
    """A 14-item space at ``folder / "space"``: 9 texts, 3 PNG images, 2 WAV sounds (files under ``folder / "files"``).

    ``model`` optionally shares an already loaded default model.
    """
    from embedspace import Space

    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    space = Space.create(folder / "space", **({"model": model} if model is not None else {}))
    space.add_texts([text for text, _ in TEXTS], metadata=[{"group": group} for _, group in TEXTS])
    image_paths = []
    for label, shape, colour in IMAGES:
        path = files / f"{label.replace(' ', '-')}.png"
        draw_image(shape, colour).save(path)
        image_paths.append(path)
    space.add_images(image_paths, labels=[label for label, _, _ in IMAGES], metadata={"group": "pictures"})
    sound_paths = [write_tone(files / f"{label.replace(' ', '-')}.wav", frequency) for label, frequency in SOUNDS]
    space.add_audio(sound_paths, labels=[label for label, _ in SOUNDS], metadata={"group": "sounds"})
    return folder / "space"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running(app: object, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve a Dash ``app`` from a background thread; yields its base URL, stops it after."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server(host, free_port(), app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@contextlib.contextmanager
def cli_server(space: str, cwd: Path, timeout: float = 300.0) -> Iterator[tuple[str, Path]]:
    """Run ``embedspace serve SPACE --port <free> --generator none`` from ``cwd``, as the README does.

    ``space`` may be relative to ``cwd`` (``make demo`` serves ``data/spaces/emoji``). Yields
    the server's base URL and its log file (stdout and stderr); stops the server after.

    Raises:
        RuntimeError: the server exited or did not answer ``/`` within ``timeout`` seconds (with its log).
    """
    port = free_port()
    log = cwd / f"serve-{port}.log"
    command = [str(Path(sys.executable).with_name("embedspace")), "serve", space, "--port", str(port), "--generator", "none"]
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"embedspace serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedspace serve did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ensure_chromium() -> str | None:
    """Path of Chromium, installing it with ``install_browser.sh`` if missing; None if that is impossible."""
    if CHROMIUM.exists():
        return str(CHROMIUM)
    if shutil.which("apt-get") and INSTALL_SCRIPT.exists():
        subprocess.run(["bash", str(INSTALL_SCRIPT)], check=False, timeout=900)
    return str(CHROMIUM) if CHROMIUM.exists() else None


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright ``Browser``) with the project's flags and a fresh profile."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    if executable is None:
        raise RuntimeError("Chromium is missing and could not be installed; run tests/install_browser.sh as root")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


#: Page positions and labels of the 2-D map's base points, most isolated first (so a click hits one alone).
SPREAD_POINTS_JS = """
() => {
    const gd = document.querySelector('.js-plotly-plot');
    const L = gd._fullLayout, box = gd.getBoundingClientRect();
    const points = [];
    gd._fullData.filter(t => t.showlegend !== false).forEach(t => {
        for (let i = 0; i < t._length; i++) {
            points.push({x: box.left + L._size.l + L.xaxis.l2p(t.x[i]), y: box.top + L._size.t + L.yaxis.l2p(t.y[i]), label: t.hovertext[i]});
        }
    });
    points.forEach(p => { p.gap = Math.min(...points.filter(q => q !== p).map(q => Math.hypot(p.x - q.x, p.y - q.y))); });
    return points.sort((p, q) => q.gap - p.gap);
}
"""


class GatedProjection(Projection):
    """A projection whose fit waits until the test opens its gate (so a test sees the map mid-computation, without timing)."""

    gate = threading.Event()

    def fit(self, vectors: np.ndarray) -> "GatedProjection":
        if not self.gate.wait(120):
            raise TimeoutError("the test never opened the gate")
        return super().fit(vectors)
