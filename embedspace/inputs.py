"""What a space accepts as input: file kinds by suffix, metadata rows, names that can be stored.

Shared by :mod:`embedspace.space` (``add_*``), :mod:`embedspace.ingest` and the dashboard's uploads.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from embedspace.errors import SpaceError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})
RESULT_COLUMNS = ("id", "modality", "label", "score", "source")


def modality_of(path: Path) -> str | None:
    """``"image"`` or ``"audio"`` from a file's suffix, or None."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return None


def metadata_rows(metadata: dict | Sequence[dict] | None, count: int) -> list[dict]:
    """One plain dict per item: keys are strings, values str / number / bool / None (lists and dicts become JSON)."""
    if metadata is None:
        return [{} for _ in range(count)]
    if isinstance(metadata, dict):
        rows = [dict(metadata) for _ in range(count)]
    elif isinstance(metadata, (str, bytes)) or not isinstance(metadata, Sequence):
        raise SpaceError(f"metadata must be a dict, or a list with one dict per item; got a {type(metadata).__name__}")
    else:
        if not all(isinstance(row, dict) for row in metadata):
            raise SpaceError("metadata must be a dict, or a list with one dict per item; some rows are not dicts")
        rows = [dict(row) for row in metadata]
    if len(rows) != count:
        raise SpaceError(f"got {len(rows)} metadata rows for {count} items; give one dict per item, or one dict for all")
    for row in rows:
        for key, value in row.items():
            if not isinstance(key, str) or not key.strip():
                raise SpaceError(f"metadata keys must be non-empty strings, got {key!r}")
            if key in RESULT_COLUMNS:
                raise SpaceError(f"metadata key {key!r} is reserved; reserved names are {', '.join(RESULT_COLUMNS)}")
            if isinstance(value, np.generic):
                value = row[key] = value.item()
            if isinstance(value, float) and not np.isfinite(value):
                raise SpaceError(f"metadata {key!r} is {value!r}; give a finite number")
            if value is not None and not isinstance(value, (str, numbers.Number, bool)):
                try:
                    row[key] = json.dumps(value, allow_nan=False)
                except (TypeError, ValueError):
                    raise SpaceError(f"metadata {key!r} holds a {type(value).__name__}, which cannot be stored; give text, a number, a bool, or a list/dict of those") from None
            if isinstance(row[key], complex):
                raise SpaceError(f"metadata {key!r} holds a complex number; give a real number or text")
            for text in (key, row[key]):
                if isinstance(text, str) and not is_unicode(text):
                    raise SpaceError(f"metadata {key!r} holds text that is not valid Unicode; give UTF-8 text")
    return rows


def is_unicode(text: str) -> bool:
    """False for strings holding lone surrogates (e.g. undecodable file names), which Parquet cannot store."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with undecodable bytes (lone surrogates from file names) shown as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def decode_notes(picture: Image.Image) -> dict[str, Any]:
    """Metadata saying an image was decoded at reduced size to bound memory (see :mod:`embedspace.limits`)."""
    original = picture.info.get("embedspace_downscaled_from")
    return {"decoded_from": f"{original[0]}x{original[1]}"} if isinstance(original, tuple) and len(original) == 2 else {}


def collect_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Image and audio files under ``paths`` (folders searched recursively, sorted), and errors for bad paths."""
    files, errors = [], []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(child for child in path.rglob("*") if child.is_file() and modality_of(child) is not None)
        elif path.is_file():
            if modality_of(path) is None:
                errors.append(f"{path}: unsupported file type {path.suffix!r}; give images ({', '.join(sorted(IMAGE_SUFFIXES))}) or audio ({', '.join(sorted(AUDIO_SUFFIXES))})")
            else:
                files.append(path)
        elif path.exists():
            errors.append(f"{path}: not a regular file or folder; give image or audio files, or folders of them")
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def audio_notes(duration_seconds: float, normalised: bool, window_seconds: float) -> dict[str, Any]:
    """Metadata saying how much of a long or loud clip the vector describes (the model embeds ``window_seconds``)."""
    notes: dict[str, Any] = {}
    if duration_seconds > window_seconds:
        notes.update(duration_s=round(float(duration_seconds), 3), embedded_s=float(window_seconds))
    if normalised:
        notes["peak_normalised"] = True
    return notes
