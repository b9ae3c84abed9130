#!/usr/bin/env python
"""Abuse campaign: hostile inputs, crafted spaces, SIGKILLs and concurrent readers against embedspace.

Every hostile file is generated here, in a temporary folder. Each case runs against a fresh
copy of a small base space (4 texts, 4 images, 2 audio, built once per run with the default
model) through the command line or the Python API, and gets one class:

    clear      refused in one line that names the input (CLI: exit 2 and ``embedspace: error: ...``;
               API: a ValueError such as SpaceError)
    unhelpful  refused in one line that names neither the input nor the part at fault
    ok         accepted, and the space is right afterwards
    refused    a valid input refused
    crash      a traceback, an exception that is not a ValueError, a signal, a dead worker
    hang       no answer within the time limit
    silent     accepted but wrong: a bad input taken, the wrong number of items, a poisoned space

and, whatever the class, these counts: items lost (base items missing afterwards), stale files
(new files in the space that its manifest neither names nor derives), changed (a refused input
changed the space's files) and code executed (a crafted file ran code: a marker file appeared).

Then SIGKILL trials during adds (CLI), removes and ``embedspace project``, readers that open or
refresh and search while a writer adds and removes, and two writers at once.

API cases, and in ``--fast`` runs the CLI cases too (``main(argv)`` in-process, stdout and stderr
captured), run in one worker process that loads the model once; a case that kills the worker is a
crash, and the worker is started again. The worker and every CLI process get an address-space
limit, so a memory bomb ends as a MemoryError (a crash) instead of taking the machine.

Usage::

    .venv/bin/python bench/abuse.py [--fast] [--kills N] [--reads N] [--json out.json] [--only TEXT] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import logging
import os
import pickle
import random
import re
import resource
import select
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import wave
import zlib
from collections import Counter
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

REFUSE, ACCEPT, EITHER = "refuse", "accept", "either"
BAD, GOOD = REFUSE, ACCEPT
CLASSES = ("clear", "unhelpful", "ok", "refused", "crash", "hang", "silent")
GIB = 1024**3
#: Extra address space a worker or CLI process may take beyond what it holds after loading the model.
MEMORY_HEADROOM = 2 * GIB
#: Address-space limit of a CLI process (it holds about 4.5 GiB of mostly reserved space after loading the model).
CLI_MEMORY_LIMIT = int(6.5 * GIB)
ERROR_LINE = re.compile(r"^embedspace(?: [\w-]+)?: error: ")
MARKER = "PWNED"  # a crafted pickle creates this file in the case's folder when it runs
SECRET = "TOPSECRET-abuse-campaign"  # content of a file outside the space that no route may serve
ROOT_IS_ROOT = os.geteuid() == 0  # permission cases mean nothing to root
BASE_TEXTS = ("a sleeping cat", "a red car", "the ocean at night", "a bowl of soup")

logger = logging.getLogger("abuse")


@dataclass
class Settings:
    fast: bool = False
    kills: int = 24
    reads: int = 20_000
    case_timeout_s: float = 90.0
    only: str | None = None
    keep: bool = False

    @classmethod
    def for_mode(cls, fast: bool, **overrides: Any) -> "Settings":
        base = cls(fast=True, kills=5, reads=1_000, case_timeout_s=45.0) if fast else cls()
        for name, value in overrides.items():
            if value is not None:
                setattr(base, name, value)
        return base


# ================================================================================================
# Hostile files
# ================================================================================================


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(path: Path, width: int, height: int, pixels: bool = False) -> None:
    """A greyscale PNG declaring ``width``×``height``; with ``pixels`` its (black) pixels are there too, a few bytes compressed."""
    rows = zlib.compress(b"\x00" * ((width + 1) * height)) if pixels else zlib.compress(b"")
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b""))


def gif_declaring(path: Path, width: int, height: int) -> None:
    """A GIF whose screen and only frame declare ``width``×``height``."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    path.write_bytes(screen + frame + b"\x3b")


def picture(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (64, 64), mode: str = "RGB", **save: Any) -> None:
    """A real image: a coloured square on white, converted to ``mode``."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill=colour)
    image.convert(mode).save(path, **save)


def noise_picture(path: Path, size: int = 128) -> None:
    """An incompressible RGB image (so that half of the file is well inside the pixel data)."""
    from PIL import Image

    Image.frombytes("RGB", (size, size), random.Random(1).randbytes(size * size * 3)).save(path)


def truncated(make: Callable[[Path], None], fraction: float = 0.5) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        make(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])

    return write


def corrupt_png_data(path: Path) -> None:
    noise_picture(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IDAT") + 200
    data[start : start + 64] = bytes(64)
    path.write_bytes(bytes(data))


def random_bytes(size: int = 4096, seed: int = 7) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(random.Random(seed).randbytes(size))


def animated_gif(path: Path) -> None:
    from PIL import Image

    frames = [Image.new("P", (32, 32), colour) for colour in (1, 2)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_transparent(path: Path) -> None:
    from PIL import Image

    image = Image.new("P", (32, 32), 0)
    image.info["transparency"] = 0
    image.save(path)


def tone(seconds: float, rate: int, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / max(rate, 1)
    wave_ = amplitude * np.sin(2 * np.pi * 440.0 * t)
    return np.stack([wave_] * channels, axis=1) if channels > 1 else wave_


def wav_pcm16(rate: int, frames: int) -> Callable[[Path], None]:
    """A 16-bit WAV at any declared rate (the ``wave`` module writes rates that libsndfile refuses to write)."""

    def write(path: Path) -> None:
        samples = (np.sin(np.arange(frames) * 0.1) * 8000).astype("<i2")
        with wave.open(str(path), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(rate)
            handle.writeframes(samples.tobytes())

    return write


def wav(samples: Callable[[], np.ndarray], rate: int = 16_000, subtype: str = "PCM_16") -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import soundfile

        soundfile.write(str(path), samples(), rate, subtype=subtype, format="WAV")

    return write


def long_wav(seconds: int, rate: int, channels: int, subtype: str) -> Callable[[Path], None]:
    """A long tone written ten seconds at a time (an hour of audio never sits in memory here)."""

    def write(path: Path) -> None:
        import soundfile

        block = tone(10.0, rate, channels).astype(np.float32)
        with soundfile.SoundFile(str(path), "w", rate, channels, subtype=subtype, format="WAV") as handle:
            for _ in range(seconds // 10):
                handle.write(block)

    return write


def with_bad_samples(value: float) -> Callable[[], np.ndarray]:
    def samples() -> np.ndarray:
        data = tone(1.0, 16_000).astype(np.float32)
        data[100:200] = value
        return data

    return samples


def other_file(make: Callable[[Path], None], suffix: str) -> Callable[[Path], None]:
    """Write a file of another type, then give it ``path``'s name (a swapped type)."""

    def write(path: Path) -> None:
        real = path.with_name(f".real{suffix}")
        make(real)
        real.rename(path)

    return write


@dataclass(frozen=True)
class Input:
    """A file a case feeds to embedspace: its name, how to write it, and whether it must be refused."""

    name: str
    write: Callable[[Path], None]
    verdict: str  # BAD (must be refused), GOOD (must be accepted), EITHER (refused clearly, or accepted and right)
    full_only: bool = False


GOOD_PNG = Input("good.png", picture, GOOD)
GOOD_WAV = Input("rate-8khz.wav", wav(lambda: tone(1.0, 8_000), rate=8_000), GOOD)
BOMB_PNG = Input("bomb-30000x30000.png", lambda p: png_declaring(p, 30_000, 30_000), BAD)

IMAGE_INPUTS = [
    BOMB_PNG,
    Input("bomb-65535x65535.gif", lambda p: gif_declaring(p, 65_535, 65_535), BAD),
    Input("wide-20000x1.png", lambda p: png_declaring(p, 20_000, 1, pixels=True), EITHER),
    Input("tall-1x65000.png", lambda p: png_declaring(p, 1, 65_000, pixels=True), EITHER),
    Input("header-only-12000x12000.png", lambda p: png_declaring(p, 12_000, 12_000), BAD),
    Input("truncated.png", truncated(noise_picture), BAD),
    Input("truncated.jpg", truncated(noise_picture), BAD),  # Pillow writes the format the suffix names
    Input("corrupt-data.png", corrupt_png_data, BAD),
    Input("empty.png", lambda p: p.write_bytes(b""), BAD),
    Input("empty.jpg", lambda p: p.write_bytes(b""), BAD),
    Input("random.png", random_bytes(), BAD),
    Input("random.jpg", random_bytes(seed=8), BAD),
    Input("random.gif", random_bytes(seed=9), BAD),
    Input("random.webp", random_bytes(seed=10), BAD),
    Input("random.bmp", random_bytes(seed=11), BAD, full_only=True),
    Input("random.tiff", random_bytes(seed=12), BAD, full_only=True),
    Input("text.png", lambda p: p.write_text("this is not an image\n" * 50), BAD),
    Input("sound.png", other_file(wav(lambda: tone(1.0, 16_000)), ".wav"), BAD),
    GOOD_PNG,
    Input("cmyk.jpg", lambda p: picture(p, mode="CMYK"), GOOD),
    Input("grey16.png", lambda p: picture(p, mode="I;16"), GOOD),
    Input("bilevel.png", lambda p: picture(p, mode="1"), GOOD),
    Input("grey-alpha.png", lambda p: picture(p, mode="LA"), GOOD),
    Input("palette-transparent.gif", palette_transparent, GOOD),
    Input("animated.gif", animated_gif, GOOD),
    Input("one-pixel.png", lambda p: picture(p, size=(1, 1)), GOOD),
    Input("UPPER.PNG", picture, GOOD, full_only=True),
    Input("photo-4000x3000.jpg", lambda p: picture(p, size=(4000, 3000)), GOOD, full_only=True),
]

AUDIO_INPUTS = [
    Input("rate-1hz.wav", wav_pcm16(1, 40_000), EITHER),
    Input("rate-7hz.wav", wav_pcm16(7, 40_000), EITHER),
    Input("rate-384khz.wav", wav(lambda: tone(0.5, 384_000), rate=384_000), GOOD),
    GOOD_WAV,
    Input("zero-frames.wav", wav_pcm16(16_000, 0), BAD),
    Input("one-frame.wav", wav_pcm16(16_000, 1), EITHER),
    Input("nan.wav", wav(with_bad_samples(np.nan), subtype="FLOAT"), BAD),
    Input("inf.wav", wav(with_bad_samples(np.inf), subtype="FLOAT"), BAD),
    Input("loud-1e19.wav", wav(lambda: tone(1.0, 16_000, amplitude=1e19).astype(np.float32), subtype="FLOAT"), EITHER),
    Input("loud-1e30.wav", wav(lambda: tone(1.0, 16_000, amplitude=1e30).astype(np.float32), subtype="FLOAT"), EITHER),
    Input("silence.wav", wav(lambda: np.zeros(16_000)), EITHER),
    Input("six-channel.wav", wav(lambda: tone(1.0, 16_000, channels=6)), GOOD),
    Input("pcm-u8.wav", wav(lambda: tone(1.0, 16_000), subtype="PCM_U8"), GOOD),
    Input("pcm-24.wav", wav(lambda: tone(1.0, 16_000), subtype="PCM_24"), GOOD),
    Input("pcm-32.wav", wav(lambda: tone(1.0, 16_000), subtype="PCM_32"), GOOD),
    Input("double.wav", wav(lambda: tone(1.0, 16_000), subtype="DOUBLE"), GOOD),
    Input("truncated.wav", truncated(wav(lambda: tone(2.0, 16_000))), EITHER),
    Input("empty.wav", lambda p: p.write_bytes(b""), BAD),
    Input("empty.flac", lambda p: p.write_bytes(b""), BAD),
    Input("random.wav", random_bytes(seed=20), BAD),
    Input("random.flac", random_bytes(seed=21), BAD),
    Input("random.ogg", random_bytes(seed=22), BAD),
    Input("random.mp3", random_bytes(seed=23), BAD, full_only=True),
    Input("picture.wav", other_file(picture, ".png"), BAD),
    Input("hour-8khz.wav", long_wav(3600, 8_000, 1, "PCM_16"), GOOD, full_only=True),
    Input("ten-minutes-48khz-stereo.wav", long_wav(600, 48_000, 2, "FLOAT"), GOOD, full_only=True),
]

#: (name, text, verdict): texts for ``--text`` and ``add_texts``.
TEXTS = [
    ("empty", "", BAD),
    ("spaces", "   ", BAD),
    ("newlines-tabs", "\n\t\n", BAD),
    ("control-chars", "a\x01b\x07c\x1b", EITHER),
    ("nul-char", "a\x00b", EITHER),  # API only: no process can receive a NUL in its arguments
    ("ansi-colour", "\x1b[31mred\x1b[0m text", EITHER),
    ("right-to-left", "مرحبا بالعالم", GOOD),
    ("emoji", "🐱 and 🚗", GOOD),
    ("non-utf8", "caf\udce9 au lait", EITHER),  # what Python makes of the bytes b"caf\xe9" in argv
    ("zero-width", "\u200b\u200b", EITHER),
    ("100-kB", "a cat on a mat " * 7_000, GOOD),
    ("dash", "-", GOOD),
]


def write_input(folder: Path, item: Input) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / item.name
    if not path.exists():
        item.write(path)
    return path


# ================================================================================================
# The space on disk: crafting, digests, what the manifest explains, health
# ================================================================================================


def read_manifest(space: Path) -> dict[str, Any]:
    return json.loads((space / "manifest.json").read_text())


def write_manifest(space: Path, manifest: Any) -> None:
    (space / "manifest.json").write_text(json.dumps(manifest))


def edit_manifest(change: Callable[[dict], Any]) -> Callable[[Path, Path], None]:
    return lambda work, space: write_manifest(space, change(read_manifest(space)))


def without(mapping: dict, *keys: str) -> dict:
    return {key: value for key, value in mapping.items() if key not in keys}


def replace_in(mapping: dict, key: str, **values: Any) -> dict:
    return dict(mapping, **{key: dict(mapping[key], **values)})


def first_segment(space: Path) -> Path:
    """``SPACE/segments/<name>`` (no suffix) of the first part the manifest names."""
    return space / read_manifest(space)["segments"][0]


def segment_rows(space: Path) -> int:
    return int(np.load(str(first_segment(space)) + ".npy").shape[0])


def file_digests(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder`` (the advisory ``.lock`` left out)."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.name == ".lock" or path.is_symlink() or not path.is_file():
            continue
        try:
            digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            digests[relative] = "unreadable"
    return digests


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set().union(*map(_strings, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(_strings, value)) if value else set()
    return set()


def explained_files(space: Path) -> set[str]:
    """Files the space's manifest names (any string in it: parts, tombstones, retired files) or derives.

    Derived: the index, thumbnails of image items, media stored inside the space, and the map
    folder each ``projections/*/current.json`` names.
    """
    explained = {"manifest.json", "index.faiss", "index.json"}
    try:
        manifest = read_manifest(space)
    except (OSError, ValueError):
        return explained
    for name in _strings(manifest):
        explained |= {name, f"{name}.parquet", f"{name}.npy"}
    segments = manifest.get("segments") if isinstance(manifest, dict) else None
    for name in segments if isinstance(segments, list) else []:
        try:
            import pandas as pd

            frame = pd.read_parquet(space / f"{name}.parquet", columns=["id", "modality", "source"])
        except Exception:  # a crafted or damaged part explains nothing
            continue
        explained |= {f"thumbnails/{item}.png" for item in frame["id"][frame["modality"] == "image"].astype(int)}
        explained |= {source for source in frame["source"].astype(str) if source.startswith("media/")}  # media stored inside the space
    for current in space.glob("projections/*/current.json"):
        explained.add(current.relative_to(space).as_posix())
        try:
            folder = current.parent / json.loads(current.read_text())["folder"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if folder.parent == current.parent and folder.is_dir():
            explained |= {path.relative_to(space).as_posix() for path in folder.rglob("*") if path.is_file()}
    return explained


def stale_files(space: Path, before: dict[str, str]) -> list[str]:
    """Files that appeared since ``before`` (see :func:`file_digests`) and that the manifest neither names nor derives."""
    new = set(file_digests(space)) - set(before)
    return sorted(new - explained_files(space))


@dataclass
class Health:
    ids: set[int] | None  # None: the space does not open
    problem: str | None = None


def health(space: Path, dim: int) -> Health:
    """Open the space (no model needed) and check it answers a vector search with finite, unique, aligned data."""
    from embedspace import Space

    try:
        opened = Space.open(space)
        ids = opened.items["id"].to_numpy()
        vectors = opened.vectors
    except Exception as error:
        return Health(None, f"{type(error).__name__}: {one_line(str(error))}")
    problems = []
    if len(ids) != len(set(ids.tolist())):
        problems.append("duplicate ids")
    if len(vectors) != len(ids):
        problems.append(f"{len(ids)} items but {len(vectors)} vectors")
    if not np.isfinite(vectors).all():
        problems.append("non-finite vectors stored")
    try:
        if len(ids):
            opened.search(np.ones(dim, np.float32), k=3)
    except Exception as error:
        problems.append(f"a vector search fails: {type(error).__name__}: {one_line(str(error))}")
    return Health(set(ids.tolist()), "; ".join(problems) or None)


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ================================================================================================
# Cases
# ================================================================================================


@dataclass(frozen=True)
class Problem:
    """What an accepted API case found wrong, and how many acknowledged items it lost."""

    text: str
    lost: int = 0


@dataclass(frozen=True)
class Case:
    """One abuse case.

    ``run``: for the CLI, ``(work, space) -> argv`` or a list of argvs run in turn (the first that
    fails decides); for the API, ``(space, work, model) -> None | str | Problem`` run in the worker
    (a string or Problem: accepted but wrong). ``prepare(work, space)`` writes the inputs or crafts
    the space before the "before" digest.
    """

    name: str
    category: str
    surface: str  # "cli" or "api"
    run: Callable
    prepare: Callable[[Path, Path], None] | None = None
    expect: str = REFUSE
    mentions: tuple[str, ...] = ()  # a clear refusal names one of these
    adds: int | None = None  # items an accepted case adds to the base space (None: not checked)
    may_remove: frozenset[int] = frozenset()
    fast: bool = True  # part of --fast


def inputs_prepare(*items: Input) -> Callable[[Path, Path], None]:
    def prepare(work: Path, space: Path) -> None:
        for item in items:
            write_input(work / "inputs", item)

    return prepare


def _at(work: Path, name: str) -> str:
    return str(work / "inputs" / name)


def _open(space: Path, model: Any = None):
    from embedspace import Space

    return Space.open(space, model=model)


def _expect_ids(ids: Any, count: int, what: str) -> str | None:
    return None if isinstance(ids, list) and len(ids) == count else f"{what}: returned {ids!r}, expected {count} new id(s)"


# -- file inputs through four or five doors ----------------------------------------------------


def file_cases(items: list[Input], modality: str) -> list[Case]:
    """For each file: CLI add, CLI add --skip-bad beside a good file, CLI search, API add, API search."""
    cases = []
    category = f"{modality} files"
    good = GOOD_PNG if modality == "image" else GOOD_WAV
    for item in items:
        name, verdict, fast = item.name, item.verdict, not item.full_only
        prepare = inputs_prepare(item, good)
        skip_adds = {BAD: 1, GOOD: 2}.get(verdict)
        adder = "add_images" if modality == "image" else "add_audio"
        cases += [
            Case(f"cli add {name}", f"cli: {category}", "cli", lambda w, s, n=name: ["add", str(s), _at(w, n)], prepare, verdict, (name,), adds=1, fast=fast),
            Case(f"cli add --skip-bad {name} + {good.name}", f"cli: {category}", "cli", lambda w, s, n=name, g=good.name: ["add", str(s), _at(w, n), _at(w, g), "--skip-bad"],
                 prepare, ACCEPT if verdict != EITHER else EITHER, (name,), adds=skip_adds, fast=False),
            Case(f"cli search {name}", f"cli: {category}", "cli", lambda w, s, n=name: ["search", str(s), _at(w, n)], prepare, verdict, (name,), adds=0, fast=False),
            Case(f"api {adder}([{name}])", f"api: {category}", "api", lambda s, w, m, n=name, a=adder: _expect_ids(getattr(_open(s, m), a)([_at(w, n)]), 1, a),
                 prepare, verdict, (name,), adds=1, fast=fast),
            Case(f"api search({name})", f"api: {category}", "api", lambda s, w, m, n=name: _search_ok(_open(s, m).search(_at(w, n), k=3)), prepare, verdict, (name,), adds=0, fast=fast),
        ]
    return cases


def _search_ok(frame: Any, at_most: int = 3) -> str | None:
    if len(frame) == 0 or len(frame) > at_most:
        return f"search returned {len(frame)} rows"
    if not np.isfinite(frame["score"].to_numpy(dtype=float)).all():
        return "search returned non-finite scores"
    return None


def text_cases() -> list[Case]:
    cases = []
    for name, text, verdict in TEXTS:
        if "\x00" not in text:
            cases.append(Case(f"cli add --text {name}", "cli: texts", "cli", lambda w, s, t=text: ["add", str(s), "--text", t], expect=verdict, mentions=("text", "empty"), adds=1))
        cases.append(Case(f"api add_texts([{name}])", "api: texts and metadata", "api", lambda s, w, m, t=text: _expect_ids(_open(s, m).add_texts([t]), 1, "add_texts"),
                          expect=verdict, mentions=("text", "empty"), adds=1))
    return cases


# -- CLI: search, create, paths ------------------------------------------------------------------


def cli_search_cases() -> list[Case]:
    def search(*tail: str) -> Callable:
        return lambda w, s: ["search", str(s), *tail]

    table = [
        ("-k 0", search("cat", "-k", "0"), REFUSE, ("k",)),
        ("-k -1", search("cat", "-k", "-1"), REFUSE, ("k",)),
        ("-k abc", search("cat", "-k", "abc"), REFUSE, ("-k", "abc")),
        ("-k 1000000000", search("cat", "-k", "1000000000"), ACCEPT, ()),
        ("--modality video", search("cat", "--modality", "video"), REFUSE, ("video",)),
        ("empty query", search(""), REFUSE, ("empty", "query")),
        ("whitespace query", search("   "), REFUSE, ("empty", "query")),
        ("100-kB query", search("a cat on a mat " * 7_000), ACCEPT, ()),
        ("missing.png", search("/nonexistent/missing.png"), REFUSE, ("missing.png",)),
        ("missing.wav", search("/nonexistent/missing.wav"), REFUSE, ("missing.wav",)),
        ("--modality audio", search("cat", "--modality", "audio", "--json"), ACCEPT, ()),
    ]
    return [Case(f"cli search {name}", "cli: search", "cli", run, expect=expect, mentions=mentions, adds=0) for name, run, expect, mentions in table]


def _ivf_steps(factory: str) -> Callable:
    def steps(work: Path, space: Path) -> list[list[str]]:
        target = str(work / "new")
        return [["create", target, "--index", factory], ["add", target, "--text", "a", "--text", "b", "--text", "c"], ["search", target, "cat"]]

    return steps


def _non_empty_folder(work: Path, space: Path) -> None:
    (work / "new").mkdir()
    (work / "new" / "notes.txt").write_text("mine")


def cli_create_cases() -> list[Case]:
    new = lambda w, s, *tail: ["create", str(w / "new"), *tail]  # noqa: E731
    table = [
        ("over an existing space", lambda w, s: ["create", str(s)], None, REFUSE, ("space",)),
        ("in a non-empty folder", lambda w, s: new(w, s), _non_empty_folder, REFUSE, ("new",)),
        ("on a file", lambda w, s: new(w, s), lambda w, s: (w / "new").write_text("x"), REFUSE, ("new",)),
        ("--model no-such-model", lambda w, s: new(w, s, "--model", "no-such-model"), None, REFUSE, ("no-such-model",)),
        ("--model /nonexistent/folder", lambda w, s: new(w, s, "--model", "/nonexistent/folder"), None, REFUSE, ("nonexistent",)),
        ("--model ViT-B-32-laion2b (not on this machine)", lambda w, s: new(w, s, "--model", "ViT-B-32-laion2b"), None, EITHER, ("ViT-B-32",)),
        ("--index Bogus42", lambda w, s: new(w, s, "--index", "Bogus42"), None, REFUSE, ("Bogus42",)),
        ("--index IVF16,Flat then add 3 and search", _ivf_steps("IVF16,Flat"), None, EITHER, ("IVF16",)),
        ("--index HNSW32 then add 3 and search", _ivf_steps("HNSW32"), None, ACCEPT, ()),
    ]
    return [Case(f"cli create {name}", "cli: create and paths", "cli", run, prepare, expect, mentions, adds=0) for name, run, prepare, expect, mentions in table]


def _non_utf8_file(work: Path, space: Path) -> None:
    folder = work / "odd"
    folder.mkdir()
    picture(Path(os.fsdecode(os.fsencode(folder) + b"/caf\xe9.png")))


def _fifo_folder(work: Path, space: Path) -> None:
    folder = work / "mixed"
    folder.mkdir()
    picture(folder / "good.png")
    os.mkfifo(folder / "fifo.wav")


def _loop_folder(work: Path, space: Path) -> None:
    folder = work / "loops"
    folder.mkdir()
    picture(folder / "good.png")
    (folder / "self").symlink_to(folder, target_is_directory=True)
    (folder / "loop.png").symlink_to(folder / "loop.png")


def cli_path_cases() -> list[Case]:
    def add(*relative: str) -> Callable:
        return lambda w, s: ["add", str(s), *(str(w / part) for part in relative)]

    def link(name: str, target: str) -> Callable:
        return lambda w, s: (w / name).symlink_to(target)

    table = [
        ("unicode name with spaces", add("猫 café.png"), lambda w, s: picture(w / "猫 café.png"), ACCEPT, (), 1),
        ("non-UTF-8 file name", lambda w, s: ["add", str(s), os.fsdecode(os.fsencode(w / "odd") + b"/caf\xe9.png")], _non_utf8_file, EITHER, ("caf",), 1),
        ("folder holding a non-UTF-8 name", add("odd"), _non_utf8_file, EITHER, ("caf",), 1),
        ("symlink loop", add("loop.png"), link("loop.png", "loop.png"), REFUSE, ("loop.png",), 0),
        ("dangling symlink", add("dangling.png"), link("dangling.png", "/nonexistent/target.png"), REFUSE, ("dangling.png",), 0),
        ("/dev/zero", lambda w, s: ["add", str(s), "/dev/zero"], None, REFUSE, ("/dev/zero",), 0),
        ("a FIFO named .wav", add("fifo.wav"), lambda w, s: os.mkfifo(w / "fifo.wav"), REFUSE, ("fifo.wav",), 0),
        ("folder with a FIFO and a good image", add("mixed"), _fifo_folder, EITHER, ("fifo.wav",), 1),
        ("folder with symlink loops and a good image", add("loops"), _loop_folder, EITHER, ("loop",), 1),
        ("empty folder", add("nothing"), lambda w, s: (w / "nothing").mkdir(), EITHER, ("nothing",), 0),
        ("a space that is a file", lambda w, s: ["add", str(w / "file-space"), "--text", "x"], lambda w, s: (w / "file-space").write_text("x"), REFUSE, ("file-space",), 0),
        ("a space that does not exist", lambda w, s: ["info", str(w / "no-space")], None, REFUSE, ("no-space",), 0),
        ("a folder that is not a space", lambda w, s: ["search", str(w / "plain"), "cat"], lambda w, s: (w / "plain").mkdir(), REFUSE, ("plain",), 0),
        ("unsupported suffix notes.txt", add("notes.txt"), lambda w, s: (w / "notes.txt").write_text("hi"), REFUSE, ("notes.txt",), 0),
    ]
    if not ROOT_IS_ROOT:
        table += [
            ("unreadable image", add("locked.png"), lambda w, s: (picture(w / "locked.png"), os.chmod(w / "locked.png", 0)), REFUSE, ("locked.png",), 0),
            ("read-only space", lambda w, s: ["add", str(s), "--text", "x"], lambda w, s: _chmod_tree(s, writable=False), REFUSE, ("space",), 0),
        ]
    return [Case(f"cli path: {name}", "cli: create and paths", "cli", run, prepare, expect, mentions, adds) for name, run, prepare, expect, mentions, adds in table]


def _chmod_tree(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


# -- API misuse ----------------------------------------------------------------------------------


def _dim(model: Any) -> int:
    return int(model.embed_dim)


def _vector(model: Any, value: float = 1.0, dtype: Any = np.float32) -> np.ndarray:
    return np.full(_dim(model), value, dtype=dtype)


def _add_then(call: Callable, count: int, what: str) -> Callable:
    return lambda s, w, m: _expect_ids(call(_open(s, m), w, m), count, what)


def _blank_image(size: tuple[int, int], mode: str = "RGB"):
    from PIL import Image

    return Image.new(mode, size)


def _png_bytes(work: Path) -> bytes:
    write_input(work / "inputs", GOOD_PNG)
    return (work / "inputs" / GOOD_PNG.name).read_bytes()


def _stored_unit_norm(space: Any, ids: list[int]) -> str | None:
    rows = space.items["id"].isin(ids).to_numpy()
    norms = np.linalg.norm(space.vectors[rows], axis=1)
    return None if np.allclose(norms, 1.0, atol=1e-3) else f"stored vectors have norms {norms.tolist()}"


def _add_vectors_check(vectors: Callable[[Any], Any], count: int) -> Callable:
    def run(s: Path, w: Path, m: Any) -> str | None:
        space = _open(s, m)
        ids = space.add_vectors(vectors(m), ["v"] * count)
        return _expect_ids(ids, count, "add_vectors") or _stored_unit_norm(_open(s, m), ids)

    return run


def _search(query: Callable[[Any], Any], **options: Any) -> Callable:
    """An API case: ``search(query(model), **options)`` must return at most ``k`` finite rows."""
    k = options.get("k", 10)
    at_most = int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k > 0 else 10
    return lambda s, w, m: _search_ok(_open(s, m).search(query(m), **options), at_most=at_most)


def _remove(ids: Any, expect_gone: set[int]) -> Callable:
    def run(s: Path, w: Path, m: Any) -> str | None:
        space = _open(s, m)
        before = set(space.items["id"].tolist())
        space.remove(ids if not callable(ids) else ids())
        gone = before - set(_open(s, m).items["id"].tolist())
        return None if gone == expect_gone else f"remove({ids!r}) removed ids {sorted(gone)}, expected {sorted(expect_gone)}"

    return run


def _removed_before(item: int) -> Callable[[Path, Path], None]:
    """Remove ``item`` while preparing (so that the case's own refusal is what the digests compare)."""
    return lambda work, space: _open(space).remove([item])


def _metadata_drift(first: Any, second: Any, writes: int = 70) -> Callable:
    """One metadata column gets ``first`` then ``second`` (another type); the second may be refused, every later write must work."""

    def run(s: Path, w: Path, m: Any) -> Problem | None:
        space = _open(s, m)
        space.add_vectors(_vector(m)[None], ["a"], metadata={"x": first})
        try:
            space.add_vectors(_vector(m, 0.5)[None], ["b"], metadata={"x": second})
        except ValueError:
            pass  # refusing the drifting write is a fair policy; what follows must still work
        rng = np.random.default_rng(0)
        for write in range(writes):
            try:
                space.add_vectors(rng.normal(size=(1, _dim(m))).astype(np.float32), [str(write)])
            except Exception as error:
                return Problem(f"write {write + 3} after metadata {first!r} then {second!r} failed: {type(error).__name__}: {one_line(str(error), 160)}")
        return None

    return run


def _stale_refresh_replay(s: Path, w: Path, m: Any) -> Problem | None:
    """The review's replay: a refresh fails midway (a part vanishes), then this process writes until it compacts."""
    from embedspace import Space

    rng = np.random.default_rng(1)
    writer_a = Space.open(s)
    writer_b = Space.open(s)
    acknowledged = writer_b.add_vectors(rng.normal(size=(5, _dim(m))).astype(np.float32), ["b"] * 5)
    newest = sorted((s / "segments").iterdir())[-1]
    hidden = w / "hidden-part"
    newest.rename(hidden)
    try:
        writer_a.refresh()
    except Exception:
        pass
    finally:
        hidden.rename(newest)
    for _ in range(70):
        writer_a.add_vectors(rng.normal(size=(1, _dim(m))).astype(np.float32), ["a"])
    present = set(Space.open(s).items["id"].tolist())
    lost = [item for item in acknowledged if item not in present]
    return Problem(f"{len(lost)} of another writer's acknowledged items lost after a failed refresh", lost=len(lost)) if lost else None


def _create(tail: Callable[[Path, Any], dict], then: Callable | None = None) -> Callable:
    def run(s: Path, w: Path, m: Any) -> str | None:
        from embedspace import Space

        options = tail(w, m)
        space = Space.create(**options)
        return then(space, m) if then else None

    return run


def _ivf_api(space: Any, model: Any) -> str | None:
    space._model = model  # share the loaded model: Space.create loaded it already when given one
    space.add_texts(["a", "b", "c"])
    return _search_ok(space.search("cat", k=3))


def api_cases() -> list[Case]:
    dim_vectors = lambda m, n=1, value=1.0: np.full((n, _dim(m)), value, np.float32)  # noqa: E731
    texts, vectors, search, remove, media, opening = (
        "api: texts and metadata", "api: vectors", "api: search", "api: remove", "api: images and audio", "api: open and create")
    table: list[tuple[str, str, Callable, str, tuple[str, ...], dict]] = [
        # texts and metadata
        ('add_texts("hello") (a str, not a list)', texts, _add_then(lambda sp, w, m: sp.add_texts("hello"), 1, "add_texts"), EITHER, ("str", "list"), {"adds": 1}),
        ("add_texts([None])", texts, lambda s, w, m: _open(s, m).add_texts([None]), REFUSE, ("None", "text"), {}),
        ("add_texts([1])", texts, lambda s, w, m: _open(s, m).add_texts([1]), REFUSE, ("1", "text"), {}),
        ("add_texts([])", texts, lambda s, w, m: _expect_ids(_open(s, m).add_texts([]), 0, "add_texts"), ACCEPT, (), {"adds": 0}),
        ("add_texts(metadata=[{'o': object()}])", texts, _add_then(lambda sp, w, m: sp.add_texts(["a"], metadata=[{"o": object()}]), 1, "add_texts"), EITHER, ("metadata", "o"), {"adds": 1}),
        ("metadata {'label': ...}", texts, lambda s, w, m: _open(s, m).add_texts(["a"], metadata={"label": "x"}), REFUSE, ("label",), {}),
        ("metadata {'score': ...}", texts, lambda s, w, m: _open(s, m).add_texts(["a"], metadata={"score": 1.0}), REFUSE, ("score",), {}),
        ("metadata {'id': ...}", texts, lambda s, w, m: _open(s, m).add_texts(["a"], metadata={"id": 5}), REFUSE, ("id",), {}),
        ("metadata rows 2 for 1 text", texts, lambda s, w, m: _open(s, m).add_texts(["a"], metadata=[{"a": 1}, {"a": 2}]), REFUSE, ("metadata", "2"), {}),
        ('metadata="str"', texts, lambda s, w, m: _open(s, m).add_texts(["a"], metadata="str"), REFUSE, ("metadata",), {}),
        ("metadata {1: 'int key'}", texts, _add_then(lambda sp, w, m: sp.add_texts(["a"], metadata={1: "int key"}), 1, "add_texts"), EITHER, ("metadata", "1"), {"adds": 1}),
        ("metadata nested dict", texts, _add_then(lambda sp, w, m: sp.add_texts(["a"], metadata={"n": {"deep": [1, 2]}}), 1, "add_texts"), EITHER, ("metadata", "n"), {"adds": 1}),
        ("metadata NaN", texts, _add_then(lambda sp, w, m: sp.add_texts(["a"], metadata={"f": float("nan")}), 1, "add_texts"), EITHER, ("metadata", "f"), {"adds": 1}),
        ("metadata drift int then str, 70 writes", texts, _metadata_drift(1, "one"), ACCEPT, (), {}),
        ("metadata drift dict then float, 70 writes", texts, _metadata_drift({"a": 1}, 2.5), ACCEPT, (), {"fast": False}),
        ("metadata drift bool then str, 70 writes", texts, _metadata_drift(True, "yes"), ACCEPT, (), {"fast": False}),
        ("add_files([], texts=[None])", texts, lambda s, w, m: _open(s, m).add_files([], texts=[None]), REFUSE, ("None", "text"), {}),
        ('add_files([], texts="hello")', texts, _add_then(lambda sp, w, m: sp.add_files([], texts="hello"), 1, "add_files"), EITHER, ("str", "list"), {"adds": 1}),
        ("add_files(['missing.png'])", texts, lambda s, w, m: _open(s, m).add_files([w / "missing.png"]), REFUSE, ("missing.png",), {}),
        # vectors
        ("add_vectors NaN", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m, 1, np.nan), ["x"]), REFUSE, ("NaN", "finite"), {}),
        ("add_vectors inf", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m, 1, np.inf), ["x"]), REFUSE, ("inf", "finite"), {}),
        ("add_vectors wrong dim", vectors, lambda s, w, m: _open(s, m).add_vectors(np.ones((1, 100), np.float32), ["x"]), REFUSE, ("100",), {}),
        ("add_vectors zeros", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m, 1, 0.0), ["x"]), REFUSE, ("zero",), {}),
        ("add_vectors 1e38", vectors, _add_vectors_check(lambda m: dim_vectors(m, 1, 1e38), 1), EITHER, ("1e+38", "large", "finite", "overflow"), {"adds": 1}),
        ("add_vectors 1e-30", vectors, _add_vectors_check(lambda m: dim_vectors(m, 1, 1e-30), 1), ACCEPT, (), {"adds": 1}),
        ("add_vectors float64", vectors, _add_vectors_check(lambda m: dim_vectors(m).astype(np.float64), 1), ACCEPT, (), {"adds": 1}),
        ("add_vectors int", vectors, _add_vectors_check(lambda m: np.ones((1, _dim(m)), np.int64), 1), EITHER, ("int",), {"adds": 1}),
        ("add_vectors 1-D", vectors, _add_vectors_check(lambda m: _vector(m), 1), EITHER, ("shape", "2-D", "(N, D)"), {"adds": 1}),
        ("add_vectors (0, D)", vectors, lambda s, w, m: _expect_ids(_open(s, m).add_vectors(dim_vectors(m, 0), []), 0, "add_vectors"), EITHER, ("empty",), {"adds": 0}),
        ("add_vectors ragged", vectors, lambda s, w, m: _open(s, m).add_vectors([[1.0] * _dim(m), [1.0]], ["a", "b"]), REFUSE, ("shape", "ragged", "vector"), {}),
        ("add_vectors strings", vectors, lambda s, w, m: _open(s, m).add_vectors(np.array([["a"] * _dim(m)]), ["a"]), REFUSE, ("str", "number", "float"), {}),
        ("add_vectors complex", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m).astype(np.complex64), ["a"]), REFUSE, ("complex",), {}),
        ("add_vectors None", vectors, lambda s, w, m: _open(s, m).add_vectors(None, ["a"]), REFUSE, ("None", "vector"), {}),
        ("add_vectors 2 labels for 1", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m), ["a", "b"]), REFUSE, ("label",), {}),
        ("add_vectors modality video", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m), ["a"], modality="video"), REFUSE, ("video",), {}),
        ("add_vectors from another model", vectors, lambda s, w, m: _open(s, m).add_vectors(dim_vectors(m), ["a"], model_id="other-model"), REFUSE, ("other-model",), {}),
        # search
        ("search k=np.int64(3)", search, _search(lambda m: _vector(m), k=np.int64(3)), ACCEPT, (), {"adds": 0}),
        ("search k=0", search, _search(lambda m: _vector(m), k=0), REFUSE, ("k",), {}),
        ("search k=-1", search, _search(lambda m: _vector(m), k=-1), REFUSE, ("k",), {}),
        ("search k=1.5", search, _search(lambda m: _vector(m), k=1.5), REFUSE, ("k",), {}),
        ('search k="3"', search, _search(lambda m: _vector(m), k="3"), REFUSE, ("k",), {}),
        ("search k=True", search, _search(lambda m: _vector(m), k=True), REFUSE, ("k",), {}),
        ("search k=None", search, _search(lambda m: _vector(m), k=None), REFUSE, ("k",), {}),
        ("search k=10**9", search, _search(lambda m: _vector(m), k=10**9), ACCEPT, (), {"adds": 0}),
        ("search empty vector (0,)", search, _search(lambda m: np.zeros(0, np.float32)), REFUSE, ("vector", "shape", "0"), {}),
        ("search empty matrix (0, D)", search, _search(lambda m: np.zeros((0, _dim(m)), np.float32)), REFUSE, ("vector", "shape", "0"), {}),
        ("search two rows (2, D)", search, _search(lambda m: np.ones((2, _dim(m)), np.float32)), REFUSE, ("vector", "shape", "2"), {}),
        ("search wrong dim", search, _search(lambda m: np.ones(100, np.float32)), REFUSE, ("100",), {}),
        ("search NaN vector", search, _search(lambda m: _vector(m, np.nan)), REFUSE, ("NaN", "finite"), {}),
        ("search inf vector", search, _search(lambda m: _vector(m, np.inf)), REFUSE, ("inf", "finite"), {}),
        ("search zero vector", search, _search(lambda m: _vector(m, 0.0)), REFUSE, ("zero",), {}),
        ("search 1e38 vector", search, _search(lambda m: _vector(m, 1e38)), EITHER, ("large", "finite", "overflow", "1e+38"), {"adds": 0}),
        ("search complex vector", search, _search(lambda m: _vector(m).astype(np.complex64)), REFUSE, ("complex",), {}),
        ("search list of strings", search, _search(lambda m: ["a"] * _dim(m)), REFUSE, ("vector", "str", "float"), {}),
        ("search removed id", search, _search(lambda m: 2), REFUSE, ("2",), {"may_remove": frozenset({2}), "prepare": _removed_before(2)}),
        ("search id 10**12", search, _search(lambda m: 10**12), REFUSE, ("1000000000000",), {}),
        ("search id -1", search, _search(lambda m: -1), REFUSE, ("-1",), {}),
        ("search id np.int64(0)", search, _search(lambda m: np.int64(0)), ACCEPT, (), {"adds": 0}),
        ("search True", search, _search(lambda m: True), REFUSE, ("bool", "True"), {}),
        ("search None", search, _search(lambda m: None), REFUSE, ("None",), {}),
        ("search object()", search, _search(lambda m: object()), REFUSE, ("object",), {}),
        ('neighbors("1")', search, lambda s, w, m: _search_ok(_open(s, m).neighbors("1")), REFUSE, ("1", "id"), {}),
        ("neighbors(10**12)", search, lambda s, w, m: _search_ok(_open(s, m).neighbors(10**12)), REFUSE, ("1000000000000",), {}),
        ("search 0x0 PIL image", search, _search(lambda m: _blank_image((0, 0))), REFUSE, ("0x0", "empty", "size", "0×0"), {}),
        ("search 1x1 PIL image", search, _search(lambda m: _blank_image((1, 1))), ACCEPT, (), {"adds": 0}),
        ("search I;16 PIL image", search, _search(lambda m: _blank_image((32, 32), "I;16")), ACCEPT, (), {"adds": 0}),
        ("search CMYK PIL image", search, _search(lambda m: _blank_image((32, 32), "CMYK")), ACCEPT, (), {"adds": 0}),
        ('search modality "video"', search, _search(lambda m: _vector(m), modality="video"), REFUSE, ("video",), {}),
        ('search modality "IMAGE"', search, _search(lambda m: _vector(m), modality="IMAGE"), EITHER, ("IMAGE",), {"adds": 0}),
        ("search empty text", search, _search(lambda m: ""), REFUSE, ("empty", "query"), {}),
        ("search whitespace text", search, _search(lambda m: "   "), REFUSE, ("empty", "query"), {}),
        ("search 100-kB text", search, _search(lambda m: "a cat on a mat " * 7_000), ACCEPT, (), {"adds": 0}),
        # remove
        ("remove(3) (an int, not a list)", remove, _remove(3, {3}), EITHER, ("list", "int", "3"), {"may_remove": frozenset({3})}),
        ('remove("12")', remove, _remove("12", set()), REFUSE, ("12", "str"), {}),
        ("remove([1.7])", remove, _remove([1.7], set()), REFUSE, ("1.7",), {}),
        ("remove([True])", remove, _remove([True], set()), REFUSE, ("True", "bool"), {}),
        ("remove([-1])", remove, _remove([-1], set()), REFUSE, ("-1",), {}),
        ("remove([999])", remove, _remove([999], set()), REFUSE, ("999",), {}),
        ("remove(None)", remove, _remove(None, set()), REFUSE, ("None",), {}),
        ("remove([])", remove, _remove([], set()), ACCEPT, (), {"adds": 0}),
        ("remove([3, 3])", remove, _remove([3, 3], {3}), EITHER, ("3",), {"may_remove": frozenset({3})}),
        ("remove([np.int64(3)])", remove, _remove([np.int64(3)], {3}), ACCEPT, (), {"may_remove": frozenset({3})}),
        ("remove an id removed before", remove, _remove([3], set()), EITHER, ("3",), {"may_remove": frozenset({3}), "prepare": _removed_before(3)}),
        # images and audio
        ("add_images([None])", media, lambda s, w, m: _open(s, m).add_images([None]), REFUSE, ("None", "image"), {}),
        ("add_images([bytes])", media, _add_then(lambda sp, w, m: sp.add_images([_png_bytes(w)]), 1, "add_images"), EITHER, ("bytes",), {"adds": 1}),
        ("add_images([0x0 image])", media, lambda s, w, m: _open(s, m).add_images([_blank_image((0, 0))]), REFUSE, ("0x0", "empty", "size", "0×0"), {}),
        ("add_images([1x1 image])", media, _add_then(lambda sp, w, m: sp.add_images([_blank_image((1, 1))]), 1, "add_images"), ACCEPT, (), {"adds": 1}),
        ("add_images(['missing.png'])", media, lambda s, w, m: _open(s, m).add_images([w / "missing.png"]), REFUSE, ("missing.png",), {}),
        ("add_images 2 images, 1 label", media, lambda s, w, m: _open(s, m).add_images([_blank_image((8, 8)), _blank_image((9, 9))], labels=["one"]), REFUSE, ("label",), {}),
        ("add_images 1 image, 2 labels", media, lambda s, w, m: _open(s, m).add_images([_blank_image((8, 8))], labels=["a", "b"]), REFUSE, ("label",), {}),
        ("add_images bomb + good, on_error=skip", media, _add_then(lambda sp, w, m: sp.add_images([_at(w, BOMB_PNG.name), _at(w, GOOD_PNG.name)], on_error="skip"), 1, "add_images"),
         ACCEPT, (), {"adds": 1, "prepare": inputs_prepare(BOMB_PNG, GOOD_PNG)}),
        ('add_images on_error="ignore"', media, lambda s, w, m: _open(s, m).add_images([_blank_image((8, 8))], on_error="ignore"), REFUSE, ("ignore",), {}),
        ("add_audio([(array, 16000)])", media, _add_then(lambda sp, w, m: sp.add_audio([(tone(1.0, 16_000).astype(np.float32), 16_000)]), 1, "add_audio"), EITHER, ("tuple", "array"), {"adds": 1}),
        ("add_audio([(NaN array, 16000)])", media, lambda s, w, m: _open(s, m).add_audio([(np.full(16_000, np.nan, np.float32), 16_000)]), REFUSE, ("NaN", "finite", "array"), {}),
        ("add_audio([(array, 0)])", media, lambda s, w, m: _open(s, m).add_audio([(tone(1.0, 16_000), 0)]), REFUSE, ("rate", "0"), {}),
        ("add_audio([(array, -5)])", media, lambda s, w, m: _open(s, m).add_audio([(tone(1.0, 16_000), -5)]), REFUSE, ("rate", "-5"), {}),
        ("add_audio([(empty array, 16000)])", media, lambda s, w, m: _open(s, m).add_audio([(np.zeros(0, np.float32), 16_000)]), REFUSE, ("empty", "samples", "array"), {}),
        ("add_audio([None])", media, lambda s, w, m: _open(s, m).add_audio([None]), REFUSE, ("None", "audio"), {}),
        ("add_audio 2 files, 1 label", media, lambda s, w, m: _open(s, m).add_audio([_at(w, "rate-8khz.wav")] * 2, labels=["one"]), REFUSE, ("label",),
         {"prepare": inputs_prepare(GOOD_WAV)}),
        # open and create
        ("Space.open(missing folder)", opening, lambda s, w, m: _open(w / "missing"), REFUSE, ("missing",), {}),
        ("Space.open(a file)", opening, lambda s, w, m: _open(w / "file"), REFUSE, ("file",), {"prepare": lambda w, s: (w / "file").write_text("x")}),
        ('Space.open("")', opening, lambda s, w, m: _open(Path("")), REFUSE, ("space", "manifest", "folder"), {}),
        ("Space.open(123)", opening, lambda s, w, m: _open(123), REFUSE, ("123", "int", "path"), {}),
        ("Space.create(existing space)", opening, _create(lambda w, m: {"path": w / "space", "model": m}), REFUSE, ("space",), {}),
        ("Space.create(non-empty folder)", opening, _create(lambda w, m: (_non_empty_folder(w, w), {"path": w / "new", "model": m})[1]), REFUSE, ("new",), {}),
        ('Space.create(model="no-such-model")', opening, _create(lambda w, m: {"path": w / "new", "model": "no-such-model"}), REFUSE, ("no-such-model",), {}),
        ('Space.create(factory="Bogus42")', opening, _create(lambda w, m: {"path": w / "new", "model": m, "factory": "Bogus42"}), REFUSE, ("Bogus42",), {}),
        ("Space.create(model=123)", opening, _create(lambda w, m: {"path": w / "new", "model": 123}), REFUSE, ("123", "model"), {}),
        ('Space.create(factory="IVF16,Flat") + add 3 + search', opening, _create(lambda w, m: {"path": w / "new", "model": m, "factory": "IVF16,Flat"}, _ivf_api), EITHER, ("IVF16",), {}),
        ("failed refresh then a compacting write (replay)", "api: concurrency replay", _stale_refresh_replay, ACCEPT, (), {}),
    ]
    cases = []
    for name, category, run, expect, mentions, extra in table:
        cases.append(Case(f"api {name}", category, "api", run, extra.get("prepare"), expect, mentions, extra.get("adds"), extra.get("may_remove", frozenset()), extra.get("fast", True)))
    return cases


# -- crafted spaces -----------------------------------------------------------------------------

#: A command on a crafted space: (name, surface, run, needs the model).
SPACE_COMMANDS = {
    "cli info": ("cli", lambda w, s: ["info", str(s)]),
    "cli search": ("cli", lambda w, s: ["search", str(s), "a cat"]),
    "cli add": ("cli", lambda w, s: ["add", str(s), "--text", "a new item"]),
    "api search": ("api", lambda s, w, m: _search_ok(_open(s).search(_vector(m), k=3))),
    "api add": ("api", lambda s, w, m: _expect_ids(_open(s, m).add_texts(["a new item"]), 1, "add_texts")),
}
FAST_SPACE_COMMANDS = ("cli info", "cli add", "api search")
#: Expectations of a space whose data is intact but whose model is not the one here: reads of stored
#: vectors work; anything that embeds is refused.
MODEL_ONLY = {"cli info": ACCEPT, "cli search": REFUSE, "cli add": REFUSE, "api search": ACCEPT, "api add": REFUSE}


@dataclass(frozen=True)
class Variant:
    """A crafted space: how to damage the base copy, and what each command should do with it."""

    name: str
    category: str
    craft: Callable[[Path, Path], None]  # (work, space)
    expect: str | dict[str, str] = REFUSE
    mentions: tuple[str, ...] = ("manifest.json",)

    def expect_for(self, command: str) -> str:
        return self.expect if isinstance(self.expect, str) else self.expect[command]


def _write_bytes(relative: str, data: Callable[[Path], bytes]) -> Callable[[Path, Path], None]:
    return lambda work, space: (space / relative).write_bytes(data(space))


def _manifest_folder(work: Path, space: Path) -> None:
    (space / "manifest.json").unlink()
    (space / "manifest.json").mkdir()


def _segment_file(suffix: str, write: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    """Apply ``write(path, space)`` to the first part's ``.npy`` or ``.parquet``."""
    return lambda work, space: write(Path(str(first_segment(space)) + suffix), space)


def _truncate(path: Path, space: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path, space: Path) -> None:
    path.write_bytes(random.Random(3).randbytes(2048))


def _save_npy(array: Callable[[Path], np.ndarray], **options: Any) -> Callable[[Path, Path], None]:
    return lambda path, space: np.save(path, array(space), **options)


def _vectors_of(space: Path) -> np.ndarray:
    return np.load(str(first_segment(space)) + ".npy")


def _with_nan(space: Path) -> np.ndarray:
    vectors = _vectors_of(space).copy()
    vectors[0, :] = np.nan
    return vectors


def _edit_parquet(change: Callable[[Any], Any]) -> Callable[[Path, Path], None]:
    def write(path: Path, space: Path) -> None:
        import pandas as pd

        change(pd.read_parquet(path)).to_parquet(path, index=False)

    return write


def _outside_segment(absolute: bool) -> Callable[[Path, Path], None]:
    """A manifest naming a copy of a real part outside the space (``../`` or an absolute path)."""

    def craft(work: Path, space: Path) -> None:
        source = first_segment(space)
        outside = work / "outside"
        outside.mkdir()
        for suffix in (".npy", ".parquet"):
            shutil.copy(str(source) + suffix, outside / f"evil{suffix}")
        name = str(outside / "evil") if absolute else "../outside/evil"
        manifest = read_manifest(space)
        write_manifest(space, dict(manifest, segments=[name] + manifest["segments"][1:]))

    return craft


def _tombstones(array: Callable[[], Any] | None, raw: bytes | None = None, name: str = "removed-00000099.npy", **options: Any) -> Callable[[Path, Path], None]:
    def craft(work: Path, space: Path) -> None:
        if raw is not None:
            (space / name).write_bytes(raw)
        elif array is not None:
            np.save(space / name, array(), **options)
        write_manifest(space, dict(read_manifest(space), removed=name))

    return craft


def manifest_variants() -> list[Variant]:
    cat = "space: manifest"
    m = lambda name, change, expect=REFUSE, mentions=("manifest.json",): Variant(name, cat, edit_manifest(change), expect, mentions)  # noqa: E731
    return [
        Variant("manifest truncated", cat, lambda w, s: (s / "manifest.json").write_text((s / "manifest.json").read_text()[:40])),
        Variant("manifest garbage bytes", cat, _write_bytes("manifest.json", lambda s: random.Random(5).randbytes(512))),
        Variant("manifest empty file", cat, _write_bytes("manifest.json", lambda s: b"")),
        Variant("manifest is a folder", cat, _manifest_folder),
        m("manifest []", lambda x: []),
        m("manifest null", lambda x: None),
        m('manifest "x"', lambda x: "x"),
        m("manifest 1", lambda x: 1),
        m("manifest {}", lambda x: {}),
        m("format_version 2", lambda x: dict(x, format_version=2)),
        m("format_version 99", lambda x: dict(x, format_version=99), REFUSE, ("99", "newer", "upgrade")),
        m('format_version "1"', lambda x: dict(x, format_version="1")),
        m("format_version missing", lambda x: without(x, "format_version")),
        m("segments missing", lambda x: without(x, "segments")),
        m("model missing", lambda x: without(x, "model")),
        m("index missing", lambda x: without(x, "index")),
        m("model null", lambda x: dict(x, model=None)),
        m("segments null", lambda x: dict(x, segments=None)),
        m('segments "abc"', lambda x: dict(x, segments="abc")),
        m("segments [1]", lambda x: dict(x, segments=[1])),
        m("segment listed twice", lambda x: dict(x, segments=x["segments"] + x["segments"][:1])),
        m('next_id "x"', lambda x: dict(x, next_id="x")),
        m("next_id -5", lambda x: dict(x, next_id=-5)),
        m("next_id below the existing ids", lambda x: dict(x, next_id=0), EITHER),
        m('revision "x"', lambda x: dict(x, revision="x")),
        m("removed 5", lambda x: dict(x, removed=5)),
        m('removed "../../secret.npy"', lambda x: dict(x, removed="../../secret.npy")),
        m('embed_dim "abc"', lambda x: replace_in(x, "model", embed_dim="abc")),
        m("embed_dim 0", lambda x: replace_in(x, "model", embed_dim=0)),
        m("embed_dim 100 (parts are wider)", lambda x: replace_in(x, "model", embed_dim=100), REFUSE, ("100", "manifest.json", "segments")),
        m("index factory Bogus42", lambda x: dict(x, index={"factory": "Bogus42"}), EITHER, ("Bogus42",)),  # exact search with a warning is fair
        m("index factory null", lambda x: dict(x, index={"factory": None})),
        m("model id ViT-B-32-laion2b", lambda x: replace_in(x, "model", id="ViT-B-32-laion2b"), MODEL_ONLY, ("ViT-B-32",)),
        m("model fingerprint changed", lambda x: replace_in(x, "model", fingerprint="0" * 16), MODEL_ONLY, ("fingerprint", "weights")),
        m("model source a missing folder", lambda x: replace_in(x, "model", source="/nonexistent/model-folder"),
          {"cli info": ACCEPT, "cli search": EITHER, "cli add": EITHER, "api search": ACCEPT, "api add": EITHER}, ("nonexistent", "model")),
        m("model source ViT-B-32-laion2b (not on this machine)", lambda x: replace_in(x, "model", source="ViT-B-32-laion2b"),
          {"cli info": ACCEPT, "cli search": EITHER, "cli add": EITHER, "api search": ACCEPT, "api add": EITHER}, ("ViT-B-32", "model")),
        m("counts wrong (harmless)", lambda x: dict(x, counts={"items": 999}), ACCEPT),
        m("unknown extra key (harmless)", lambda x: dict(x, extra={"a": 1}), ACCEPT),
    ]


def segment_variants() -> list[Variant]:
    cat, tomb = "space: parts", "space: tombstones"
    parts = ("segments", "0000", ".npy", ".parquet")

    def part(name: str, suffix: str, write: Callable[[Path, Path], None], expect: str | dict = REFUSE) -> Variant:
        return Variant(name, cat, _segment_file(suffix, write), expect, parts)

    return [
        part("npy missing", ".npy", lambda p, s: p.unlink()),
        part("parquet missing", ".parquet", lambda p, s: p.unlink()),
        Variant("segments folder missing", cat, lambda w, s: shutil.rmtree(s / "segments"), REFUSE, parts),
        part("npy truncated", ".npy", _truncate),
        part("parquet truncated", ".parquet", _truncate),
        part("npy garbage", ".npy", _garbage),
        part("parquet garbage", ".parquet", _garbage),
        part("npy empty file", ".npy", lambda p, s: p.write_bytes(b"")),
        part("npy wrong row count", ".npy", _save_npy(lambda s: np.ones((1, _vectors_of(s).shape[1]), np.float32))),
        part("npy wrong dim", ".npy", _save_npy(lambda s: np.ones((segment_rows(s), 100), np.float32))),
        part("npy pickled object array", ".npy", _save_npy(lambda s: np.array([{"a": 1}] * segment_rows(s), dtype=object), allow_pickle=True)),
        part("npy NaN vectors", ".npy", _save_npy(_with_nan)),
        part("npy inf vectors", ".npy", _save_npy(lambda s: np.full_like(_vectors_of(s), np.inf))),
        part("npy float64 (harmless)", ".npy", _save_npy(lambda s: _vectors_of(s).astype(np.float64)), EITHER),
        part("npy int32", ".npy", _save_npy(lambda s: np.ones(_vectors_of(s).shape, np.int32)), EITHER),
        part("npy 3-D", ".npy", _save_npy(lambda s: _vectors_of(s)[None])),
        part("parquet without id column", ".parquet", _edit_parquet(lambda f: f.drop(columns=["id"]))),
        part("parquet duplicate ids", ".parquet", _edit_parquet(lambda f: f.assign(id=0))),
        part("parquet ids as strings", ".parquet", _edit_parquet(lambda f: f.assign(id=f["id"].astype(str)))),
        part("parquet extra rows", ".parquet", _edit_parquet(lambda f: __import__("pandas").concat([f, f.assign(id=f["id"] + 1000)]))),
        part("parquet unknown modality", ".parquet", _edit_parquet(lambda f: f.assign(modality="video")), EITHER),
        Variant("segment name with ../", cat, _outside_segment(absolute=False), REFUSE, ("manifest.json", "outside", "evil", "segments")),
        Variant("segment name absolute", cat, _outside_segment(absolute=True), REFUSE, ("manifest.json", "outside", "evil", "segments")),
        Variant("tombstones garbage", tomb, _tombstones(None, raw=random.Random(4).randbytes(300)), REFUSE, ("removed",)),
        Variant("tombstones missing file", tomb, _tombstones(None), REFUSE, ("removed",)),
        Variant("tombstones pickled", tomb, _tombstones(lambda: np.array([{"a": 1}], dtype=object), allow_pickle=True), REFUSE, ("removed",)),
        Variant("tombstones float", tomb, _tombstones(lambda: np.array([1.0])), EITHER, ("removed",)),
        Variant("tombstones 2-D", tomb, _tombstones(lambda: np.array([[1, 2]])), EITHER, ("removed",)),
        Variant("tombstones strings", tomb, _tombstones(lambda: np.array(["1"])), REFUSE, ("removed",)),
        Variant("tombstones unknown ids (harmless)", tomb, _tombstones(lambda: np.array([999], np.int64)), ACCEPT, ("removed",)),
    ]


def space_cases(variants: list[Variant]) -> list[Case]:
    cases = []
    for variant in variants:
        for command, (surface, run) in SPACE_COMMANDS.items():
            expect = variant.expect_for(command)
            cases.append(Case(f"{variant.name}: {command}", variant.category, surface, run, variant.craft, expect, variant.mentions,
                              adds=None, fast=command in FAST_SPACE_COMMANDS))
    return cases


# -- crafted maps: code execution -----------------------------------------------------------------


class _Payload:
    """Pickled, it creates ``marker`` when loaded (the proof that loading a map ran code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _legacy_map(folder: Path, marker: Path, ids: np.ndarray, format_version: int) -> None:
    """A map folder as release 1 wrote it (config, state.npz, ids, coordinates and a pickled umap.pkl)."""
    folder.mkdir(parents=True, exist_ok=True)
    params = {"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine", "random_state": 0, "sample_size": 20000}
    config = {"class": "Projection", "format_version": format_version, "params": params, "method": "umap", "n_features_in": 384, "n_samples_fit": len(ids)}
    (folder / "config.json").write_text(json.dumps(config))
    np.savez(folder / "state.npz", embedding=np.zeros((len(ids), 2), np.float32), sample_indices=np.arange(len(ids)))
    np.save(folder / "ids.npy", ids)
    np.save(folder / "coordinates.npy", np.zeros((len(ids), 2), np.float32))
    (folder / "umap.pkl").write_bytes(pickle.dumps(_Payload(marker)))


def _space_ids_and_revision(space: Path) -> tuple[np.ndarray, int]:
    import pandas as pd

    manifest = read_manifest(space)
    ids = np.concatenate([pd.read_parquet(space / f"{name}.parquet", columns=["id"])["id"].to_numpy() for name in manifest["segments"]])
    return np.sort(ids).astype(np.int64), int(manifest["revision"])


def crafted_map(where: str, format_version: int = 1) -> Callable[[Path, Path], None]:
    """A stored map whose umap.pkl runs code: inside the space, or outside it reached by ``current.json``."""

    def craft(work: Path, space: Path) -> None:
        ids, revision = _space_ids_and_revision(space)
        maps = space / "projections" / "umap-2d"
        if where == "inside":
            folder = maps / f"r{revision:08d}"
            name = folder.name
        else:
            folder = work / "outside-evil"
            name = "../../../outside-evil" if where == "traversal" else str(folder)
        _legacy_map(folder, work / MARKER, ids, format_version)
        maps.mkdir(parents=True, exist_ok=True)
        (maps / "current.json").write_text(json.dumps({"revision": revision, "folder": name, "count": len(ids), "method": "umap"}))

    return craft


def _damaged_map(change: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def craft(work: Path, space: Path) -> None:
        crafted_map("inside", 1)(work, space)
        (space / "projections" / "umap-2d" / next(p.name for p in (space / "projections" / "umap-2d").iterdir() if p.is_dir()) / "umap.pkl").unlink()
        change(space / "projections" / "umap-2d")

    return craft


def _load_map(s: Path, w: Path, m: Any) -> None:
    from embedspace.maps import load_space_projection

    load_space_projection(_open(s), 2, allow_stale=True)


MAP_VARIANTS = [
    ("umap.pkl payload, format 1", crafted_map("inside", 1)),
    ("umap.pkl payload, format 2 config", crafted_map("inside", 2)),
    ("current.json folder ../ to a payload", crafted_map("traversal", 1)),
    ("current.json folder absolute to a payload", crafted_map("absolute", 1)),
    ("current.json garbage", lambda w, s: (s / "projections" / "umap-2d").mkdir(parents=True) or (s / "projections" / "umap-2d" / "current.json").write_bytes(b"\x00garbage")),
    ("coordinates wrong rows", _damaged_map(lambda maps: [np.save(folder / "coordinates.npy", np.zeros((1, 2), np.float32)) for folder in maps.iterdir() if folder.is_dir()])),
]


def map_cases() -> list[Case]:
    cases = []
    for name, craft in MAP_VARIANTS:
        cases += [
            Case(f"{name}: cli project", "space: stored maps", "cli", lambda w, s: ["project", str(s), "--dims", "2"], craft, EITHER, ("projections", "map", "current.json")),
            Case(f"{name}: api load_space_projection", "space: stored maps", "api", _load_map, craft, EITHER, ("projections", "map", "current.json")),
        ]
    return cases


def all_cases() -> list[Case]:
    """Every case, in the order they run (fast and full; :func:`selected_cases` picks)."""
    cases = (
        file_cases(IMAGE_INPUTS, "image")
        + file_cases(AUDIO_INPUTS, "audio")
        + text_cases()
        + cli_search_cases()
        + cli_create_cases()
        + cli_path_cases()
        + api_cases()
        + space_cases(manifest_variants() + segment_variants())
        + map_cases()
    )
    names = Counter(case.name for case in cases)
    duplicates = [name for name, count in names.items() if count > 1]
    if duplicates:
        raise RuntimeError(f"duplicate case names: {duplicates}")
    return cases


#: Cases also run through a real `embedspace` process in --fast (every CLI case is, in a full run).
REAL_CLI_IN_FAST = (
    "cli add bomb-30000x30000.png",
    "cli add rate-1hz.wav",
    "cli add --text non-utf8",
    "manifest []: cli info",
    "cli path: non-UTF-8 file name",
)


def selected_cases(settings: Settings) -> list[Case]:
    cases = [case for case in all_cases() if not settings.fast or case.fast]
    if settings.only:
        cases = [case for case in cases if settings.only in case.name or settings.only in case.category]
    return cases


# ================================================================================================
# The worker: one process, one loaded model, many cases
# ================================================================================================


def _limit_address_space(limit: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _virtual_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _capture(call: Callable[[], Any]) -> dict[str, Any]:
    """Run ``call``; describe what it returned or raised."""
    try:
        value = call()
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - every failure is data here
        return {"raised": type(error).__name__, "value_error": isinstance(error, ValueError), "message": str(error), "where": _where(error)}
    if isinstance(value, Problem):
        return {"returned": True, "problem": value.text, "lost": value.lost}
    return {"returned": True, "problem": value if isinstance(value, str) else None, "lost": 0}


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""


def run_cli_in_process(argvs: list[list[str]]) -> dict[str, Any]:
    """``embedspace.cli.main`` on each argv in turn (stops at the first non-zero exit), stdout and stderr captured."""
    from embedspace import cli

    steps = []
    for argv in argvs:
        stdout, stderr = io.StringIO(), io.StringIO()
        logging.root.handlers.clear()  # the CLI's basicConfig then logs to the captured stderr
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            except KeyboardInterrupt:
                raise
            except BaseException:  # noqa: BLE001 - an escaped exception is what a user sees as a traceback
                traceback.print_exc()
                code = 1
        logging.root.handlers.clear()
        steps.append({"rc": code, "stdout": stdout.getvalue()[-4000:], "stderr": stderr.getvalue()[-8000:]})
        if code != 0:
            break
    return {"steps": steps}


def build_base(folder: Path, model: Any) -> dict[str, Any]:
    """The base space: 4 texts, 4 images, 2 audio (ids 0..9)."""
    from embedspace import Space

    inputs = folder / "base-inputs"
    inputs.mkdir(parents=True)
    images = []
    for number, colour in enumerate([(220, 30, 30), (30, 30, 220), (30, 180, 30), (240, 200, 20)]):
        picture(inputs / f"shape-{number}.png", colour)
        images.append(inputs / f"shape-{number}.png")
    sounds = []
    for number, frequency in enumerate((220.0, 880.0)):
        path = inputs / f"tone-{number}.wav"
        t = np.arange(16_000) / 16_000
        wav(lambda t=t, f=frequency: 0.3 * np.sin(2 * np.pi * f * t))(path)
        sounds.append(path)
    space = Space.create(folder / "base", model=model)
    ids = space.add_texts(list(BASE_TEXTS)) + space.add_images(images) + space.add_audio(sounds)
    return {"ids": ids, "dim": int(model.embed_dim)}


def _share_loaded_model(model: Any) -> None:
    """In-process CLI runs reuse the worker's model when they ask for it by name, as one long-lived process would.

    Other names and folders (crafted manifests) still load for real. Without this every CLI case would
    load the model again (real `embedspace` processes, as in a full run, always do).
    """
    from embedspace import EmbeddingModel

    load = EmbeddingModel.load.__func__

    def shared(cls: type, name_or_path: Any, *args: Any, **options: Any) -> Any:
        return model if str(name_or_path) == model.model_id and not args and not options else load(cls, name_or_path, *args, **options)

    EmbeddingModel.load = classmethod(shared)


def worker_main() -> None:
    """Answer JSON requests on stdin, one per line, on a private copy of stdout (library prints go to stderr)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from embedspace import EmbeddingModel
    from embedspace.models import DEFAULT_MODEL

    model = EmbeddingModel.load(DEFAULT_MODEL)
    if model.transcriber is not None:  # loaded before the limit, like the model: the limit is for what inputs ask for
        model.transcriber.load()
    _limit_address_space(_virtual_size() + MEMORY_HEADROOM)
    _share_loaded_model(model)
    index = {case.name: case for case in all_cases()}
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        kind = request["kind"]
        if kind == "api":
            case = index[request["case"]]
            reply = _capture(lambda: case.run(Path(request["space"]), Path(request["work"]), model))
        elif kind == "cli":
            reply = run_cli_in_process(request["argvs"])
        elif kind == "build":
            reply = _capture(lambda: build_base(Path(request["folder"]), model))
        elif kind == "web":
            try:
                reply = {"results": web_batch(Path(request["work"]), request["space"], model)}
            except Exception as error:  # the batch itself broke: one crash
                reply = {"results": [{"name": "web batch", "category": "web: routes", "expect": EITHER, "status": None, "error": f"{type(error).__name__}: {error} ({_where(error)})"}]}
        else:
            reply = {"raised": "ValueError", "message": f"unknown request {kind!r}"}
        protocol.write(json.dumps(reply, default=str) + "\n")


class Worker:
    """The worker process, started again after a crash or a hang."""

    def __init__(self, log: Path):
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=ROOT, env=LIMITED_ENV)
        ready = self._read(timeout=300)
        if not ready or not ready.get("ready"):
            raise RuntimeError(f"the abuse worker did not start; see {self.log}")

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The worker's reply, or ``{"hang": True}`` / ``{"died": ...}`` (the worker is then started again)."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        reply = self._read(timeout)
        if reply is not None:
            return reply
        if self.process.poll() is None:
            self.stop()
            return {"hang": True}
        code = self.process.returncode
        self.process = None
        return {"died": f"the worker died ({'signal ' + signal.Signals(-code).name if code < 0 else 'exit ' + str(code)})"}

    def _read(self, timeout: float) -> dict[str, Any] | None:
        stream = self.process.stdout
        ready, _, _ = select.select([stream], [], [], timeout)
        if not ready:
            return None
        line = stream.readline()
        return json.loads(line) if line else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


# ================================================================================================
# Running and judging a case
# ================================================================================================


def cli_command(argv: list[str]) -> list[bytes]:
    """The real `embedspace` command line (bytes, so that non-UTF-8 arguments reach it as they are)."""
    script = ROOT / ".venv" / "bin" / "embedspace"
    prefix = [str(script)] if script.exists() else [sys.executable, "-m", "embedspace.cli"]
    return [os.fsencode(part) for part in prefix + argv]


def _limit_cli() -> None:
    _limit_address_space(CLI_MEMORY_LIMIT)


#: Environment of processes under an address-space limit: few malloc arenas, so that the limit
#: measures memory asked for rather than 64 MB of reserved space per thread.
LIMITED_ENV = dict(os.environ, MALLOC_ARENA_MAX="2")


def run_cli_subprocess(argvs: list[list[str]], cwd: Path, timeout: float) -> dict[str, Any]:
    steps = []
    for argv in argvs:
        try:
            done = subprocess.run(cli_command(argv), cwd=cwd, capture_output=True, timeout=timeout, preexec_fn=_limit_cli, env=LIMITED_ENV)
        except subprocess.TimeoutExpired:
            return {"hang": True, "steps": steps}
        steps.append({"rc": done.returncode, "stdout": done.stdout.decode(errors="replace")[-4000:], "stderr": done.stderr.decode(errors="replace")[-8000:]})
        if done.returncode != 0:
            break
    return {"steps": steps}


@dataclass
class Verdict:
    """What happened, before expectations: "accepted", "refused" (with the message), "crash" or "hang"."""

    kind: str
    message: str = ""
    problem: str | None = None
    lost: int = 0


def cli_verdict(reply: dict[str, Any]) -> Verdict:
    if reply.get("hang"):
        return Verdict("hang", "no answer within the time limit")
    if reply.get("died"):
        return Verdict("crash", reply["died"])
    for number, step in enumerate(reply["steps"]):
        where = f"step {number + 1}: " if len(reply["steps"]) > 1 else ""
        rc, stderr = step["rc"], step["stderr"]
        if rc < 0:
            return Verdict("crash", f"{where}killed by signal {signal.Signals(-rc).name}")
        if "Traceback (most recent call last)" in stderr:
            last = [line for line in stderr.splitlines() if line.strip()][-1]
            return Verdict("crash", f"{where}traceback: {one_line(last)}")
        if rc == 0:
            continue
        errors = [line for line in stderr.splitlines() if ERROR_LINE.match(line)]
        if rc == 2 and len(errors) == 1:
            return Verdict("refused", where + errors[0])
        tail = [line for line in stderr.splitlines() if line.strip()]
        return Verdict("crash", f"{where}exit {rc}: {one_line(tail[-1] if tail else '(no message)')}")
    return Verdict("accepted")


def api_verdict(reply: dict[str, Any]) -> Verdict:
    if reply.get("hang"):
        return Verdict("hang", "no answer within the time limit")
    if reply.get("died"):
        return Verdict("crash", reply["died"])
    if "raised" in reply:
        text = f"{reply['raised']}: {reply['message']}"
        if reply["value_error"]:
            return Verdict("refused", text)
        return Verdict("crash", f"{one_line(text)} (at {reply.get('where', '?')})")
    return Verdict("accepted", problem=reply.get("problem"), lost=int(reply.get("lost") or 0))


@dataclass
class Result:
    """One case's outcome (the raw material of the table and of ``--json``)."""

    name: str
    category: str
    surface: str
    expect: str
    outcome: str  # one of CLASSES
    message: str = ""
    lost: int = 0
    stale: list[str] = field(default_factory=list)
    changed: bool = False
    code_executed: bool = False
    seconds: float = 0.0


def classify(case: Case, verdict: Verdict) -> tuple[str, str]:
    """The class of a verdict under the case's expectation, and the message to keep."""
    if verdict.kind in ("crash", "hang"):
        return verdict.kind, verdict.message
    if verdict.kind == "refused":
        message = verdict.message
        if case.expect == ACCEPT:
            return "refused", message
        mentions_one = not case.mentions or any(mention.lower() in message.lower() for mention in case.mentions)
        if "\n" in message.strip() or not mentions_one:
            return "unhelpful", message
        return "clear", message
    if case.expect == REFUSE:
        return "silent", "accepted a bad input" + (f" ({verdict.problem})" if verdict.problem else "")
    if verdict.problem:
        return "silent", verdict.problem
    return "ok", ""


class Campaign:
    """Runs cases against copies of the base space and judges them."""

    def __init__(self, settings: Settings, folder: Path):
        self.settings = settings
        self.folder = folder
        self.worker = Worker(folder / "worker.log")
        self.base = folder / "base"
        self.base_ids: set[int] = set()
        self.dim = 0
        self.counter = 0

    def build_base(self) -> None:
        reply = self.worker.ask({"kind": "build", "folder": str(self.folder)}, timeout=600)
        if "raised" in reply or reply.get("hang") or reply.get("died"):
            raise RuntimeError(f"could not build the base space: {reply}")
        self.dim = int(read_manifest(self.base)["model"]["embed_dim"])
        built = health(self.base, self.dim)
        if built.ids is None or built.problem:
            raise RuntimeError(f"the base space is not healthy: {built.problem}")
        self.base_ids = built.ids

    def fresh_copy(self) -> tuple[Path, Path]:
        self.counter += 1
        work = self.folder / "cases" / f"{self.counter:04d}"
        work.mkdir(parents=True)
        space = work / "space"
        shutil.copytree(self.base, space, symlinks=True)
        return work, space

    def run(self, case: Case, real_cli: bool) -> Result:
        work, space = self.fresh_copy()
        started = time.monotonic()
        try:
            if case.prepare is not None:
                case.prepare(work, space)
        except Exception as error:
            return Result(case.name, case.category, case.surface, case.expect, "crash", f"the harness could not prepare the case: {error!r}")
        before_files = file_digests(space)
        before = health(space, self.dim)
        verdict = self._execute(case, work, space, real_cli)
        result = self._judge(case, verdict, work, space, before_files, before)
        result.seconds = round(time.monotonic() - started, 2)
        if not self.settings.keep:
            _remove_tree(work)
        return result

    def _execute(self, case: Case, work: Path, space: Path, real_cli: bool) -> Verdict:
        timeout = self.settings.case_timeout_s
        if case.surface == "api":
            return api_verdict(self.worker.ask({"kind": "api", "case": case.name, "space": str(space), "work": str(work)}, timeout))
        argvs = case.run(work, space)
        argvs = argvs if argvs and isinstance(argvs[0], list) else [argvs]
        if real_cli:
            return cli_verdict(run_cli_subprocess(argvs, work, timeout))
        return cli_verdict(self.worker.ask({"kind": "cli", "argvs": argvs}, timeout))

    def _judge(self, case: Case, verdict: Verdict, work: Path, space: Path, before_files: dict[str, str], before: Health) -> Result:
        outcome, message = classify(case, verdict)
        result = Result(case.name, case.category, case.surface, case.expect, outcome, one_line(message, 400), lost=verdict.lost)
        result.code_executed = (work / MARKER).exists()
        if space.exists():
            result.stale = stale_files(space, before_files)
            if outcome in ("clear", "unhelpful", "crash", "hang", "refused"):
                result.changed = file_digests(space) != before_files
        healthy_before = before.ids is not None and before.problem is None and before.ids >= self.base_ids
        if not healthy_before:
            return result
        after = health(space, self.dim)
        if after.ids is None:
            result.lost += len(self.base_ids - case.may_remove)
            result.message = one_line(f"{result.message} | space no longer opens: {after.problem}", 400)
            return result
        result.lost += len(self.base_ids - case.may_remove - after.ids)
        if result.outcome == "ok":
            added = len(after.ids - before.ids)
            if after.problem:
                result.outcome, result.message = "silent", f"space damaged afterwards: {after.problem}"
            elif case.adds is not None and added != case.adds:
                result.outcome, result.message = "silent", f"added {added} items, expected {case.adds}"
        return result


def _remove_tree(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:  # chmod-ed cases leave read-only folders
        try:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


# ================================================================================================
# The web app: routes, crafted callback bodies, hostile uploads (in the worker)
# ================================================================================================


def _dashboard_abuse_module() -> Any:
    """tests/test_dashboard_abuse.py, whose ``abuse_cases``, ``send_to_client`` and ``judge`` list and judge crafted requests (None if absent)."""
    import importlib.util

    path = ROOT / "tests" / "test_dashboard_abuse.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("_dashboard_abuse", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        logger.warning("cannot import %s: %s", path, error)
        return None
    return module if all(hasattr(module, name) for name in ("abuse_cases", "send_to_client", "judge")) else None


def dashboard_abuse_results(client: Any, items: dict[str, int]) -> list[dict[str, Any]]:
    """The crafted requests of tests/test_dashboard_abuse.py, sent and judged by that file's own rules."""
    module = _dashboard_abuse_module()
    if module is None:
        return []
    category = "web: crafted requests (test_dashboard_abuse)"
    results = []
    for case in module.abuse_cases(client.get("/_dash-dependencies").get_json(), items):
        name = case[0]
        outcome: dict[str, Any] = {"name": name, "category": category, "expect": REFUSE if name.startswith(("malformed", "crafted")) else EITHER, "mentions": []}
        try:
            status, body = module.send_to_client(client, case)
            outcome.update(status=status, problem=module.judge(case, status, body), leak=False)
        except BaseException as error:  # noqa: BLE001 - the test client re-raises what the app did not handle
            outcome.update(status=None, error=f"{type(error).__name__}: {one_line(str(error))}")
        results.append(outcome)
    return results


@dataclass
class WebRequest:
    name: str
    category: str
    method: str
    path: str
    expect: str = EITHER
    json_body: Any = None
    raw_body: bytes | None = None
    content_type: str | None = None
    message_output: str | None = None  # "component.property" whose text is the page's refusal message
    mentions: tuple[str, ...] = ()


def _callback_body(key: str, entry: dict[str, Any], values: dict[str, Any], changed: list[str] | None = None) -> dict[str, Any]:
    outputs = [{"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1]} for part in key.strip(".").split("...")]
    inputs = [dict(spec, value=values.get(f"{spec['id']}.{spec['property']}")) for spec in entry["inputs"]]
    state = [dict(spec, value=values.get(f"{spec['id']}.{spec['property']}")) for spec in entry.get("state", [])]
    changed = changed if changed is not None else [f"{spec['id']}.{spec['property']}" for spec in entry["inputs"]]
    return {"output": key, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs, "state": state, "changedPropIds": changed}


def _data_url(path: Path, kind: str) -> str:
    return f"data:{kind}/octet-stream;base64,{base64.b64encode(path.read_bytes()).decode()}"


def web_requests(app: Any, work: Path, ids: dict[str, list[int]]) -> list[WebRequest]:
    """Requests to the app: item routes, traversal attempts, malformed and crafted callback bodies, hostile uploads."""
    from dashboard import ids as component

    requests = []
    for item in ids["image"]:
        requests.append(WebRequest(f"GET /thumbnail/{item} (image, relative space path)", "web: routes", "GET", f"/thumbnail/{item}", ACCEPT))
        requests.append(WebRequest(f"GET /media/{item} (image)", "web: routes", "GET", f"/media/{item}", ACCEPT))
    for item in ids["audio"]:
        requests.append(WebRequest(f"GET /media/{item} (audio)", "web: routes", "GET", f"/media/{item}", ACCEPT))
    for path in (f"/thumbnail/{ids['text'][0]}", "/thumbnail/999999", "/media/999999", f"/media/{ids['text'][0]}"):
        requests.append(WebRequest(f"GET {path}", "web: routes", "GET", path, REFUSE))
    for path in ("/media/..%2f..%2f..%2fetc%2fpasswd", "/thumbnail/..%2f..%2fsecret.txt", "/assets/../../secret.txt", "/assets/..%2f..%2fsecret.txt",
                 "/_dash-component-suites/dash/../../../../../etc/passwd", "/_dash-component-suites/..%2f..%2f..%2fsecret.txt", "/%2e%2e/%2e%2e/etc/passwd",
                 "//etc/passwd", "/media/1%00.png", "/thumbnail/-1", "/media/abc", "/_dash-layout", "/_dash-dependencies", "/"):
        requests.append(WebRequest(f"GET {path}", "web: traversal", "GET", path, EITHER))
    update = "/_dash-update-component"
    malformed = [("{}", b"{}"), ("[]", b"[]"), ("null", b"null"), ('"x"', b'"x"'), ("invalid JSON", b"{not json"),
                 ("unknown output", json.dumps({"output": "nope.children", "outputs": {"id": "nope", "property": "children"}, "inputs": [], "changedPropIds": []}).encode()),
                 ("inputs as a string", json.dumps({"output": f"{component.SEARCH_RESULTS}.children", "outputs": {"id": component.SEARCH_RESULTS, "property": "children"}, "inputs": "x"}).encode()),
                 ("5000-deep nesting", b"[" * 5000 + b"]" * 5000)]
    for name, body in malformed:
        requests.append(WebRequest(f"POST callback {name}", "web: callbacks", "POST", update, EITHER, raw_body=body, content_type="application/json"))
    requests.append(WebRequest("POST callback as text/plain", "web: callbacks", "POST", update, EITHER, raw_body=b"{}", content_type="text/plain"))
    for key, entry in sorted(app.callback_map.items()):
        if "{" in key or not entry.get("inputs"):
            continue  # pattern-matching ids
        short = key.strip(".").split("...")[0]
        for label, value in (("None", None), ("strings", "x"), ("dicts", {"evil": [1, 2]}), ("-1", -1)):
            values = {f"{spec['id']}.{spec['property']}": value for spec in entry["inputs"] + entry.get("state", [])}
            requests.append(WebRequest(f"POST {short} with {label}", "web: callbacks", "POST", update, EITHER, json_body=_callback_body(key, entry, values)))
    search_key = next((key for key in app.callback_map if f"{component.STORE_QUERY}.data" in key and f"{component.SEARCH_MESSAGE}.children" in key), None)
    if search_key is not None:
        entry = app.callback_map[search_key]
        uploads = [(item, "image") for item in IMAGE_INPUTS if not item.full_only] + [(item, "audio") for item in AUDIO_INPUTS if not item.full_only]
        for item, kind in uploads:
            path = write_input(work / "inputs", item)
            store = {"kind": kind, "filename": item.name, "contents": _data_url(path, kind), "at": 1}
            body = _callback_body(search_key, entry, {f"{component.STORE_UPLOAD}.data": store, f"{component.SEARCH_MODALITY}.value": "all"}, [f"{component.STORE_UPLOAD}.data"])
            requests.append(WebRequest(f"upload {item.name}", "web: uploads", "POST", update, item.verdict, json_body=body,
                                       message_output=f"{component.SEARCH_MESSAGE}.children", mentions=(item.name,)))
        for label, store in (("without contents", {"kind": "image", "filename": "a.png"}), ("contents an int", {"kind": "image", "filename": "a.png", "contents": 5}),
                             ("bad base64", {"kind": "image", "filename": "a.png", "contents": "data:x;base64,@@@"}),
                             ("kind video", {"kind": "video", "filename": "a.png", "contents": "data:x;base64,AAAA"}),
                             ("filename ../../etc/passwd.wav", {"kind": "audio", "filename": "../../etc/passwd.wav", "contents": "data:x;base64,AAAA"})):
            body = _callback_body(search_key, entry, {f"{component.STORE_UPLOAD}.data": store}, [f"{component.STORE_UPLOAD}.data"])
            requests.append(WebRequest(f"upload store {label}", "web: uploads", "POST", update, EITHER, json_body=body, message_output=f"{component.SEARCH_MESSAGE}.children"))
    return requests


def _response_message(response: Any, output: str | None) -> str:
    if output is None:
        return ""
    try:
        payload = json.loads(response.get_data())
        component, prop = output.rsplit(".", 1)
        value = payload["response"][component][prop]
    except (ValueError, KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def web_batch(work: Path, space_name: str, model: Any) -> list[dict[str, Any]]:
    """Every web request against an app for ``work/space_name`` opened by a relative path, as the README serves it."""
    from embedspace import Space

    os.chdir(work)
    results = []
    space = Space.open(space_name, model=model)
    [memory_image] = space.add_images([_blank_image((32, 32))], labels=["memory image"])
    try:
        from dashboard.app import create_app

        app = create_app(space_name, warm_up=False, model=model, generator=None)
    except BaseException as error:  # noqa: BLE001
        return [{"name": "create_app", "category": "web: routes", "expect": ACCEPT, "status": None, "error": f"{type(error).__name__}: {error}"}]
    items = Space.open(space_name).items
    ids = {modality: items["id"][items["modality"] == modality].astype(int).tolist() for modality in ("text", "image", "audio")}
    (work / "secret.txt").write_text(SECRET)
    client = app.server.test_client()
    for request in web_requests(app, work, ids):
        outcome: dict[str, Any] = {"name": request.name, "category": request.category, "expect": request.expect, "mentions": list(request.mentions)}
        try:
            if request.method == "GET":
                response = client.get(request.path)
            else:
                body = request.raw_body if request.raw_body is not None else json.dumps(request.json_body).encode()
                response = client.post(request.path, data=body, content_type=request.content_type or "application/json")
            data = response.get_data()
            outcome.update(status=response.status_code, leak=SECRET.encode() in data or b"root:x:0:0" in data, message=_response_message(response, request.message_output))
        except BaseException as error:  # noqa: BLE001 - the test client re-raises what the app did not handle
            outcome.update(status=None, error=f"{type(error).__name__}: {one_line(str(error))}")
        results.append(outcome)
    named = {"image": ids["image"][0], "audio": ids["audio"][0], "text": ids["text"][0], "memory_image": memory_image, "dim": space.dim}
    results += dashboard_abuse_results(client, named)
    results.append(_warm_up_with_payload(work, model))
    return results


def _warm_up_with_payload(work: Path, model: Any) -> dict[str, Any]:
    """`embedspace serve` on a space whose stored map is a pickle that runs code: does start-up load it?"""
    from dashboard.services import Services

    outcome = {"name": "serve a space with a umap.pkl payload (warm-up)", "category": "web: stored map at start-up", "expect": EITHER, "mentions": []}
    evil = work / "evil"
    shutil.copytree(work / "space", evil)
    marker_work = work / "evil-work"
    marker_work.mkdir()
    crafted_map("inside", 1)(marker_work, evil)
    try:
        data = Services.open("evil", model=model)  # what create_app does, then its warm-up
        data.warm_up()
        status = data.maps.wait_for_map("2d", timeout=120)
        outcome.update(status=200, message="" if status.state != "error" else f"map: {status.message}")
    except BaseException as error:  # noqa: BLE001
        outcome.update(status=400 if isinstance(error, ValueError) else None, error=f"{type(error).__name__}: {error}")
    outcome["code_executed"] = (marker_work / MARKER).exists()
    return outcome


def judge_web(reply: dict[str, Any]) -> Result:
    expect = reply["expect"]
    result = Result(reply["name"], reply["category"], "web", expect, "ok", code_executed=bool(reply.get("code_executed")))
    status = reply.get("status")
    if status is None or status >= 500:
        result.outcome, result.message = "crash", reply.get("error") or f"HTTP {status}"
    elif reply.get("problem"):  # judged by tests/test_dashboard_abuse.py
        result.outcome, result.message = "silent", reply["problem"]
    elif reply.get("leak"):
        result.outcome, result.message = "silent", f"HTTP {status} served a file from outside the space"
    elif status >= 400 or reply.get("message"):
        refusal = reply.get("message") or f"HTTP {status}"
        mentions = reply.get("mentions") or []
        named = not mentions or status >= 400 or any(mention.lower() in refusal.lower() for mention in mentions)
        result.outcome = "refused" if expect == ACCEPT else ("clear" if named else "unhelpful")
        result.message = one_line(refusal)
    elif expect == REFUSE:
        result.outcome, result.message = "silent", f"HTTP {status}: accepted"
    return result


def run_web(campaign: Campaign) -> list[Result]:
    work, space = campaign.fresh_copy()
    before = file_digests(space)
    reply = campaign.worker.ask({"kind": "web", "work": str(work), "space": "space"}, timeout=900)
    if reply.get("hang") or reply.get("died"):
        return [Result("web batch", "web: routes", "web", EITHER, "hang" if reply.get("hang") else "crash", reply.get("died", "no answer"))]
    results = [judge_web(outcome) for outcome in reply["results"]]
    stale = stale_files(space, before)
    if stale:
        results.append(Result("web: files left in the served space", "web: routes", "web", EITHER, "ok", stale=stale))
    if not campaign.settings.keep:
        _remove_tree(work)
    return results


# ================================================================================================
# SIGKILL trials
# ================================================================================================


@dataclass
class KillResult:
    kind: str  # "add", "remove", "project"
    name: str
    killed_after_s: float
    acknowledged: int
    reopened: bool = True
    lost: int = 0
    stale: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False  # the kill landed inside a write (files changed, nothing acknowledged)


REMOVER = textwrap.dedent(
    """
    import sys
    from embedspace import Space

    space = Space.open(sys.argv[1])
    print("ready", flush=True)
    for item in map(int, sys.argv[2:]):
        print("start", item, flush=True)
        space.remove([item])
        print("ack", item, flush=True)
    """
)


def _kill(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    out, err = process.communicate()
    return out.decode(errors="replace"), err.decode(errors="replace")


def _names_under(space: Path) -> set[str]:
    """Every path under ``space`` (spaces in the kill trials hold a few hundred files at most)."""
    return {os.path.join(folder, name) for folder, folders, files in os.walk(space) for name in folders + files}


def _wait_for_write(space: Path, process: subprocess.Popen, deadline: float) -> bool:
    """Poll until a file appears or vanishes in the space (a write began); False if the process ended first."""
    start = _names_under(space)
    while time.monotonic() < deadline and process.poll() is None:
        if _names_under(space) != start:
            return True
        time.sleep(0.002)
    return False


def after_kill(space: Path, must_have: set[int], must_not_have: set[int], base_files: dict[str, str], dim: int, batch: tuple[set[int], int] | None = None) -> KillResult:
    """Reopen; check acknowledged ids; make one write (a sweep may run then); count files nothing explains."""
    from embedspace import Space

    result = KillResult("", "", 0.0, len(must_have))
    try:
        reopened = Space.open(space)
        ids = set(reopened.items["id"].tolist())
    except Exception as error:
        result.reopened = False
        result.problems.append(f"does not reopen: {type(error).__name__}: {one_line(str(error))}")
        return result
    result.lost = len(must_have - ids)
    if must_not_have & ids:
        result.problems.append(f"removals undone: {sorted(must_not_have & ids)[:5]}")
    if batch is not None:
        known, size = batch
        new = ids - known
        if len(new) not in (0, size):
            result.problems.append(f"partial batch: {len(new)} of {size} items")
    try:
        seen = max(ids | must_have | must_not_have | {-1})
        [after] = reopened.add_vectors(np.random.default_rng(0).normal(size=(1, dim)).astype(np.float32), ["after the kill"])
        if after <= seen:
            result.problems.append(f"id {after} reused after the kill")
        if Space.open(space).thumbnail_path(after) is not None:
            result.problems.append(f"the new text item {after} has a thumbnail (an orphan inherited)")
    except Exception as error:
        result.problems.append(f"write after the kill failed: {type(error).__name__}: {one_line(str(error))}")
    result.stale = stale_files(space, base_files)
    return result


def _acked_ids(stdout: str) -> set[int]:
    match = re.search(r"ids (\d+)\.\.(\d+)", stdout)
    return set(range(int(match.group(1)), int(match.group(2)) + 1)) if match else set()


class KillTrials:
    """SIGKILL at random moments during CLI adds, API removes and `embedspace project`.

    Trials alternate: *targeted* ones kill 0-50 ms after the first file of a write appears (the
    window between the first thumbnail and the manifest commit); *random* ones kill at a uniform
    moment of the command's life, estimated from the targeted trials. The trials run on a real
    disk (fsync makes the write window as long as a user would see it).
    """

    def __init__(self, campaign: Campaign, rng: random.Random):
        self.campaign = campaign
        self.rng = rng
        self.folder = Path(tempfile.mkdtemp(prefix="embedspace-abuse-kills-"))
        self.inputs = self.folder / "inputs"
        self.lifetimes: dict[str, float] = {"add": 8.0, "remove": 3.0, "project": 15.0}  # first guesses, replaced by what targeted trials see

    def plan(self, count: int) -> list[str]:
        adds = max(1, (count + 1) // 2)
        removes = max(1, count // 4)
        return ["add"] * adds + ["remove"] * removes + ["project"] * max(1, count - adds - removes)

    def run(self, count: int) -> list[KillResult]:
        self.inputs.mkdir()
        for number in range(24 if self.campaign.settings.fast else 120):
            picture(self.inputs / f"pic-{number:03d}.png", ((number * 37) % 255, (number * 91) % 255, (number * 53) % 255))
        results = []
        try:
            for number, kind in enumerate(self.plan(count)):
                targeted = number % 2 == 0
                result = {"add": self.add_trial, "remove": self.remove_trial, "project": self.project_trial}[kind](targeted)
                result.kind, result.name = kind, f"kill during {kind} #{number + 1} ({'targeted' if targeted else 'random'})"
                results.append(result)
        finally:
            if not self.campaign.settings.keep:
                _remove_tree(self.folder)
        return results

    def _space(self, extra_vectors: int = 0) -> tuple[Path, dict[str, str]]:
        space = Path(tempfile.mkdtemp(dir=self.folder)) / "space"
        shutil.copytree(self.campaign.base, space)
        if extra_vectors:
            from embedspace import Space

            vectors = np.random.default_rng(extra_vectors).normal(size=(extra_vectors, self.campaign.dim)).astype(np.float32)
            Space.open(space).add_vectors(vectors, [f"v{i}" for i in range(extra_vectors)])
        return space, file_digests(space)

    def _texts(self) -> list[str]:
        count = 10 if self.campaign.settings.fast else 40
        return [arg for number in range(count) for arg in ("--text", f"kill trial text {number}")]

    def _kill_at(self, kind: str, process: subprocess.Popen, space: Path, targeted: bool) -> float:
        """Kill ``process`` (targeted: just after its write begins; random: somewhere in its life); returns when, in seconds."""
        started = time.monotonic()
        if targeted:
            if _wait_for_write(space / "projections" if kind == "project" else space, process, started + 600):
                self.lifetimes[kind] = time.monotonic() - started + 0.5
                time.sleep(self.rng.uniform(0.0, 0.004 if kind == "project" else 0.03))  # a map saves in a few milliseconds
        else:
            time.sleep(self.rng.uniform(0.2, 1.1) * self.lifetimes[kind])
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        return round(time.monotonic() - started, 3)

    def add_trial(self, targeted: bool) -> KillResult:
        space, base_files = self._space()
        process = subprocess.Popen(cli_command(["add", str(space), str(self.inputs), *self._texts()]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit_cli, env=LIMITED_ENV)
        waited = self._kill_at("add", process, space, targeted)
        out, _ = _kill(process)
        acked = _acked_ids(out)
        interrupted = not acked and file_digests(space) != base_files
        batch = len(list(self.inputs.iterdir())) + len(self._texts()) // 2
        result = after_kill(space, self.campaign.base_ids | acked, set(), base_files, self.campaign.dim, batch=(self.campaign.base_ids, batch))
        result.killed_after_s, result.acknowledged, result.interrupted = waited, len(acked), interrupted
        return result

    def remove_trial(self, targeted: bool) -> KillResult:
        from embedspace import Space

        space, base_files = self._space(extra_vectors=400)
        every = set(Space.open(space).items["id"].tolist())
        victims = self.rng.sample(sorted(every - self.campaign.base_ids), 300)
        process = subprocess.Popen([sys.executable, "-c", REMOVER, str(space), *map(str, victims)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started = time.monotonic()
        while process.poll() is None and time.monotonic() - started < 300:  # imports take seconds; kill among the removes
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready and process.stdout.readline().startswith(b"ready"):
                break
        time.sleep(self.rng.uniform(0.0, 0.05 if targeted else 0.5))  # a remove takes milliseconds
        out, _ = _kill(process)
        lines = out.splitlines()
        acked = {int(line.split()[1]) for line in lines if line.startswith("ack")}
        in_flight = {int(line.split()[1]) for line in lines if line.startswith("start")} - acked
        result = after_kill(space, every - acked - in_flight, acked, base_files, self.campaign.dim)
        result.killed_after_s, result.acknowledged, result.interrupted = round(time.monotonic() - started, 3), len(acked), bool(in_flight)
        return result

    def project_trial(self, targeted: bool) -> KillResult:
        from embedspace import Space
        from embedspace.maps import load_space_projection

        space, base_files = self._space(extra_vectors=290)
        command = cli_command(["project", str(space), "--dims", "2"])
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limit_cli, env=LIMITED_ENV)
        waited = self._kill_at("project", process, space, targeted)
        out, _ = _kill(process)
        interrupted = "map of" not in out and (space / "projections").exists()
        problems = []
        try:
            stored = load_space_projection(Space.open(space), 2, allow_stale=True, load_model=False)
            if stored is not None and (len(stored.ids) != len(stored.coordinates) or not np.isfinite(stored.coordinates).all()):
                problems.append("the stored map is inconsistent")
        except Exception as error:
            problems.append(f"reading the map after the kill: {type(error).__name__}: {one_line(str(error))}")
        rerun = subprocess.run(command, capture_output=True, timeout=600, preexec_fn=_limit_cli, env=LIMITED_ENV)  # the next `project` may sweep what the kill left
        if rerun.returncode != 0:
            problems.append(f"`embedspace project` after the kill failed: {one_line(rerun.stderr.decode(errors='replace')[-300:])}")
        result = after_kill(space, set(Space.open(space).items["id"].tolist()), set(), base_files, self.campaign.dim)
        result.problems = problems + result.problems
        result.killed_after_s, result.acknowledged, result.interrupted = waited, 0, interrupted
        return result


# ================================================================================================
# Readers during writes, two writers at once
# ================================================================================================

READER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from embedspace import Space

    path, mode, reads, out, dim = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
    query = np.ones(dim, np.float32)
    errors, messages = 0, []
    space = Space.open(path)
    started = time.monotonic()
    for _ in range(reads):
        try:
            if mode == "open":
                space = Space.open(path)
            else:
                space.refresh()
            found = space.search(query, k=5)
            items = space.items
            if len(items) != len(space.vectors):
                raise AssertionError(f"{len(items)} items but {len(space.vectors)} vectors")
            if not set(found["id"].tolist()) <= set(items["id"].tolist()):
                raise AssertionError("a result is not among the items")
        except Exception as error:
            errors += 1
            if len(messages) < 5:
                messages.append(f"{type(error).__name__}: {error}"[:300])
            try:
                space = Space.open(path)
            except Exception:
                pass
    json.dump({"reads": reads, "errors": errors, "messages": messages, "seconds": time.monotonic() - started}, open(out, "w"))
    """
)

WRITER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from embedspace import Space

    path, stop, least, removes, seed, dim, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
    space = Space.open(path)
    rng = np.random.default_rng(seed)
    mine, writes = [], 0
    while writes < least or not os.path.exists(stop):
        ids = space.add_vectors(rng.normal(size=(3, dim)).astype(np.float32), [f"w{seed}"] * 3)
        print("add", *ids, flush=True)
        mine += ids
        writes += 1
        if removes and (writes % 4 == 0 or len(mine) > 300):  # the space stays small: reads stay cheap, removes come often
            victims = [mine.pop(int(rng.integers(len(mine)))) for _ in range(3)]
            space.remove(victims)
            print("remove", *victims, flush=True)
        time.sleep(pause)
    """
)


#: The writer's pause between writes while readers read (readers see a new revision on most reads, and the 2-core machine keeps up).
WRITER_PAUSE_S = 0.02


@dataclass
class ConcurrencyResult:
    name: str
    reads: int = 0
    reader_errors: int = 0
    writes: int = 0
    lost: int = 0
    stale: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    reader_seconds: dict[str, float] = field(default_factory=dict)


def _writer_acks(stdout: str) -> tuple[set[int], set[int], int]:
    added, removed, writes = set(), set(), 0
    for line in stdout.splitlines():
        words = line.split()
        if words and words[0] == "add":
            added |= set(map(int, words[1:]))
            writes += 1
        elif words and words[0] == "remove":
            removed |= set(map(int, words[1:]))
    return added, removed, writes


def readers_during_writes(campaign: Campaign) -> ConcurrencyResult:
    """An open+search reader and a refresh+search reader while a writer adds and removes (compacting every 64 writes)."""
    from embedspace import Space

    work, space = campaign.fresh_copy()
    base_files = file_digests(space)
    stop = work / "stop"
    reads = campaign.settings.reads
    least = 140 if campaign.settings.fast else 400
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(space), str(stop), str(least), "1", "1", str(campaign.dim), str(WRITER_PAUSE_S)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shares = {"open": max(1, reads // 5), "refresh": reads - max(1, reads // 5)}
    readers = {mode: subprocess.Popen([sys.executable, "-c", READER, str(space), mode, str(count), str(work / f"{mode}.json"), str(campaign.dim)], stderr=subprocess.PIPE)
               for mode, count in shares.items()}
    result = ConcurrencyResult("readers during adds and removes")
    started = time.monotonic()
    for mode, process in readers.items():
        _, err = process.communicate(timeout=3600)
        try:
            report = json.loads((work / f"{mode}.json").read_text())
        except (OSError, ValueError):
            result.problems.append(f"the {mode} reader died: {one_line(err.decode(errors='replace')[-300:])}")
            continue
        result.reads += report["reads"]
        result.reader_errors += report["errors"]
        result.problems += [f"{mode} reader: {message}" for message in report["messages"][:3]]
        result.reader_seconds[mode] = round(report["seconds"], 1)
    stop.touch()
    out, err = writer.communicate(timeout=3600)
    added, removed, result.writes = _writer_acks(out.decode())
    if writer.returncode != 0:
        result.problems.append(f"the writer failed: {one_line(err.decode(errors='replace')[-300:])}")
    ids = set(Space.open(space).items["id"].tolist())
    result.lost = len((added - removed) - ids) + len(campaign.base_ids - ids)
    if removed & ids:
        result.problems.append(f"{len(removed & ids)} acknowledged removals undone")
    result.stale = stale_files(space, base_files)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def two_writers(campaign: Campaign) -> ConcurrencyResult:
    """Two processes add at once (enough writes between them to compact); every acknowledged id must be there, once."""
    from embedspace import Space

    work, space = campaign.fresh_copy()
    base_files = file_digests(space)
    stop = work / "stop"
    stop.touch()  # each writer makes exactly `least` writes
    least = 40 if campaign.settings.fast else 120
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(space), str(stop), str(least), "0", str(seed), str(campaign.dim), "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for seed in (11, 12)]
    result = ConcurrencyResult("two writers at once")
    started = time.monotonic()
    acknowledged: list[int] = []
    for writer in writers:
        out, err = writer.communicate(timeout=3600)
        added, _, writes = _writer_acks(out.decode())
        acknowledged += sorted(added)
        result.writes += writes
        if writer.returncode != 0:
            result.problems.append(f"a writer failed: {one_line(err.decode(errors='replace')[-300:])}")
    items = Space.open(space).items["id"].tolist()
    if len(acknowledged) != len(set(acknowledged)):
        result.problems.append("the two writers were given the same ids")
    if len(items) != len(set(items)):
        result.problems.append("duplicate ids in the space")
    result.lost = len(set(acknowledged) - set(items)) + len(campaign.base_ids - set(items))
    result.stale = stale_files(space, base_files)
    result.seconds = round(time.monotonic() - started, 1)
    return result


# ================================================================================================
# Report
# ================================================================================================

COLUMNS = ("tried", "clear", "unhelpful", "ok", "refused", "crash", "hang", "silent", "lost", "stale", "changed", "code", "reader errors")


@dataclass
class Report:
    cases: list[Result]
    kills: list[KillResult]
    concurrency: list[ConcurrencyResult]
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, dict[str, int]]]:
        rows: dict[str, Counter] = {}
        for result in self.cases:
            row = rows.setdefault(result.category, Counter())
            row["tried"] += 1
            row[result.outcome] += 1
            row["lost"] += result.lost
            row["stale"] += len(result.stale)
            row["changed"] += result.changed
            row["code"] += result.code_executed
        for kill in self.kills:
            row = rows.setdefault(f"SIGKILL during {kill.kind}", Counter())
            row["tried"] += 1
            row["ok" if kill.reopened and not kill.problems and not kill.lost and not kill.stale else "silent"] += 1
            row["crash"] += not kill.reopened
            row["lost"] += kill.lost
            row["stale"] += len(kill.stale)
        for run in self.concurrency:
            row = rows.setdefault(f"{run.name} ({'reads' if run.reads else 'writes'})", Counter())
            row["tried"] += run.reads or run.writes
            row["ok"] += (run.reads - run.reader_errors) if run.reads else (0 if run.problems or run.lost else run.writes)
            row["reader errors"] += run.reader_errors
            row["silent"] += bool(run.problems) and not run.reads
            row["lost"] += run.lost
            row["stale"] += len(run.stale)
        return [(name, {column: row[column] for column in COLUMNS}) for name, row in rows.items()]

    def table(self) -> str:
        rows = self.rows()
        total = self.totals()
        width = max([len(name) for name, _ in rows] + [len("category"), len("total")])
        lines = ["| " + "category".ljust(width) + " | " + " | ".join(COLUMNS) + " |", "|" + "-" * (width + 2) + "|" + "|".join("-" * (len(c) + 2) for c in COLUMNS) + "|"]
        for name, row in rows + [("total", {column: total[column] for column in COLUMNS})]:
            lines.append("| " + name.ljust(width) + " | " + " | ".join(str(row[column]).rjust(len(column)) for column in COLUMNS) + " |")
        return "\n".join(lines)

    def totals(self) -> Counter:
        """Column sums; reads and writes of the concurrency runs count only in their own rows."""
        total = Counter()
        for name, row in self.rows():
            total.update({column: value for column, value in row.items() if not (name.endswith(("(reads)", "(writes)")) and column in ("tried", "ok"))})
        return total

    def summary(self) -> str:
        cases = Counter(result.outcome for result in self.cases)
        total = self.totals()
        reads = sum(run.reads for run in self.concurrency)
        return (f"{len(self.cases)} cases: {cases['clear']} clear, {cases['unhelpful']} unhelpful, {cases['ok']} ok, {cases['refused']} wrongly refused, "
                f"{cases['crash']} crashes, {cases['hang']} hangs, {cases['silent']} silent; {len(self.kills)} SIGKILLs; {reads:,} reads with "
                f"{total['reader errors']} errors; items lost {total['lost']}, stale files {total['stale']}, changed by a refusal {total['changed']}, "
                f"code executed {total['code']} ({self.seconds:.0f} s)")

    def failures(self) -> dict[str, list[str]]:
        """What the campaign must keep at zero, by kind, each with the names of the cases at fault."""
        failures: dict[str, list[str]] = {"crash": [], "hang": [], "items lost": [], "stale files": [], "reader errors": [], "code executed": []}
        for result in self.cases:
            if result.outcome in ("crash", "hang"):
                failures[result.outcome].append(f"{result.name}: {result.message}")
            if result.lost:
                failures["items lost"].append(f"{result.name}: {result.lost} ({result.message})")
            if result.stale:
                failures["stale files"].append(f"{result.name}: {result.stale[:4]}")
            if result.code_executed:
                failures["code executed"].append(result.name)
        for kill in self.kills:
            if not kill.reopened:
                failures["crash"].append(f"{kill.name}: {kill.problems}")
            if kill.lost:
                failures["items lost"].append(f"{kill.name}: {kill.lost}")
            if kill.stale:
                failures["stale files"].append(f"{kill.name}: {len(kill.stale)} {kill.stale[:4]}")
        for run in self.concurrency:
            if run.reader_errors:
                failures["reader errors"].append(f"{run.name}: {run.reader_errors} of {run.reads} ({run.problems[:2]})")
            if run.lost:
                failures["items lost"].append(f"{run.name}: {run.lost}")
            if run.stale:
                failures["stale files"].append(f"{run.name}: {run.stale[:4]}")
        return {kind: names for kind, names in failures.items() if names}

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary(), "rows": dict(self.rows()), "cases": [asdict(result) for result in self.cases],
                "kills": [asdict(kill) for kill in self.kills], "concurrency": [asdict(run) for run in self.concurrency]}


def _scratch() -> str | None:
    """A memory-backed folder when there is one (fsync is what most writes cost), else the default temporary folder."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * GIB else None


def run_campaign(settings: Settings, folder: Path | None = None, progress: Callable[[str], None] | None = None) -> Report:
    """Build the base space, run every selected case, the SIGKILL trials and the concurrency runs."""
    progress = progress or (lambda message: None)
    started = time.monotonic()
    owned = folder is None
    folder = Path(tempfile.mkdtemp(prefix="embedspace-abuse-", dir=_scratch())) if owned else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    campaign = Campaign(settings, folder)
    try:
        campaign.worker.start()
        campaign.build_base()
        progress(f"base space ready in {folder} ({len(campaign.base_ids)} items)")
        results = []
        cases = selected_cases(settings)
        for number, case in enumerate(cases):
            real = not settings.fast and case.surface == "cli"
            results.append(campaign.run(case, real_cli=real))
            if settings.fast and case.surface == "cli" and case.name in REAL_CLI_IN_FAST:
                twin = campaign.run(case, real_cli=True)
                twin.name = f"{case.name} [real process]"
                results.append(twin)
            progress(f"[{number + 1}/{len(cases)}] {results[-1].outcome:9} {case.name} {results[-1].message[:100]}")
        progress(f"cases done at {time.monotonic() - started:.0f} s")
        kills, concurrency = [], []
        if not settings.only:
            results += run_web(campaign)
            progress(f"web: {sum(r.surface == 'web' for r in results)} requests, done at {time.monotonic() - started:.0f} s")
            kills = KillTrials(campaign, random.Random(16)).run(settings.kills)
            for kill in kills:
                progress(f"{kill.name}: killed after {kill.killed_after_s} s{' mid-write' if kill.interrupted else ''}, {kill.acknowledged} acknowledged, "
                         f"lost {kill.lost}, stale {len(kill.stale)} {kill.problems[:2]}")
            progress(f"kills done at {time.monotonic() - started:.0f} s")
            concurrency = [readers_during_writes(campaign), two_writers(campaign)]
            for run in concurrency:
                progress(f"{run.name}: {run.reads} reads, {run.reader_errors} errors, {run.writes} writes, lost {run.lost} in {run.seconds} s {run.problems[:2]}")
            progress(f"concurrency done at {time.monotonic() - started:.0f} s")
        return Report(results, kills, concurrency, time.monotonic() - started)
    finally:
        campaign.worker.stop()
        if owned and not settings.keep:
            _remove_tree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="the make-test form: fewer cases, kills and reads; CLI cases in-process")
    parser.add_argument("--kills", type=int, default=None, help="SIGKILL trials (default 24, fast 5)")
    parser.add_argument("--reads", type=int, default=None, help="reads during writes (default 20000, fast 1000)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw per-case results here")
    parser.add_argument("--only", default=None, help="run only cases whose name or category contains this text (no web, kills or readers)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    settings = Settings.for_mode(args.fast, kills=args.kills, reads=args.reads, only=args.only, keep=args.keep or None)
    logging.getLogger("embedspace").setLevel(logging.ERROR)  # the checks between cases open damaged spaces on purpose
    report = run_campaign(settings, progress=lambda message: print(message, file=sys.stderr, flush=True))
    print(report.table())
    print(report.summary())
    for kind, names in report.failures().items():
        print(f"{kind} ({len(names)}):" + "".join(f"\n  {name}" for name in names))
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2, default=str))
    return 0 if not report.failures() else 1


if __name__ == "__main__":
    sys.exit(main())
