"""The space manifest (``manifest.json``): its schema, read and validated as untrusted input.

Only :mod:`embedspace.store` uses this module. A space folder may come from someone else, so every field is checked for type and
shape before any other code uses it, and every file name it holds must match the
names a space writes itself (no absolute paths, no ``..``). A bad manifest gets one
:class:`SpaceError` naming the file and what is wrong, never a traceback.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from embedspace.errors import SpaceError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Names a space gives its parts: ``segments/<revision>`` (a write), ``segments/<revision>-all`` (a compaction)
#: or ``segments/ingest-<key>-<block>`` (one block of an ingest, see :mod:`embedspace.ingest`).
SEGMENT_NAME = re.compile(r"segments/(\d{8}(-all(-\d{1,6})?)?|ingest-[0-9a-f]{16}-\d{6})")
#: Ingest keys: 16 lowercase hex digits.
INGEST_KEY = re.compile(r"[0-9a-f]{16}")
#: How vectors may be stored.
VECTOR_DTYPES = ("float32", "float16")
#: Names of tombstone files: ``removed-<revision>.npy``.
REMOVED_NAME = re.compile(r"removed-\d{8}\.npy")


def new_manifest(model: dict[str, Any], factory: str, vector_dtype: str = "float32") -> dict[str, Any]:
    """The manifest of an empty space: revision 0, no parts.

    Args:
        model: ``{"id", "source", "fingerprint", "embed_dim"}`` of the space's model.
        factory: the FAISS factory string of the space's index, or ``"auto"`` (chosen by size).
        vector_dtype: how vectors are stored on disk: ``"float32"`` or ``"float16"`` (half the bytes).
    """
    return {
        "format_version": FORMAT_VERSION,
        "uid": uuid.uuid4().hex,
        "vector_dtype": vector_dtype,
        "ingests": {},
        "model": dict(model),
        "metric": "inner_product",
        "index": {"factory": factory},
        "revision": 0,
        "next_id": 0,
        "segments": [],
        "removed": None,
        "retired": [],
        "counts": {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _problem(path: Path, what: str) -> SpaceError:
    folder = path.parent
    return SpaceError(f"{path}: {what}; this space cannot be read. `embedspace check {folder}` lists what is damaged")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read and validate ``folder/manifest.json``.

    Raises:
        SpaceError: the folder or manifest is missing, unreadable, not JSON, of another
            format version, or has fields of the wrong type or unsafe file names.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise SpaceError(f"no space at {folder}: the folder does not exist; create one with `embedspace create {folder}`")
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise SpaceError(f"{folder} is not a space (no {MANIFEST}); create one with `embedspace create {folder}`") from None
    except IsADirectoryError:
        raise _problem(path, "is a folder, not a file") from None
    except OSError as error:
        raise SpaceError(f"{path}: cannot be read ({error.strerror}); check the file's permissions") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _problem(path, f"is not valid JSON ({error})") from None
    validate_manifest(manifest, path)
    return manifest


def validate_manifest(manifest: Any, path: Path) -> None:
    """Raise :class:`SpaceError` naming ``path`` unless ``manifest`` has the shape a space writes."""
    if not isinstance(manifest, dict):
        raise _problem(path, f"holds a JSON {type(manifest).__name__}, not an object")
    version = manifest.get("format_version")
    if _is_int(version) and version > FORMAT_VERSION:
        raise SpaceError(f"{path}: space format {version} was written by a newer embedspace; this one reads format {FORMAT_VERSION}: upgrade embedspace")
    if version != FORMAT_VERSION:
        raise _problem(path, f"has space format {version!r}; this embedspace reads format {FORMAT_VERSION}")
    model = manifest.get("model")
    if not isinstance(model, dict):
        raise _problem(path, "has no 'model' object")
    for key in ("id", "source", "fingerprint"):
        if not isinstance(model.get(key), str):
            raise _problem(path, f"'model.{key}' must be a string")
    if not _is_int(model.get("embed_dim")) or model["embed_dim"] <= 0:
        raise _problem(path, "'model.embed_dim' must be a positive integer")
    index = manifest.get("index")
    if not isinstance(index, dict) or not isinstance(index.get("factory"), str):
        raise _problem(path, "'index.factory' must be a string (a FAISS factory such as \"Flat\")")
    if not isinstance(manifest.get("metric", "inner_product"), str):
        raise _problem(path, "'metric' must be a string")
    for key in ("revision", "next_id"):
        if not _is_int(manifest.get(key)) or manifest[key] < 0:
            raise _problem(path, f"'{key}' must be a non-negative integer")
    segments = manifest.get("segments")
    if not isinstance(segments, list):
        raise _problem(path, "'segments' must be a list of part names")
    for name in segments:
        if not isinstance(name, str) or not SEGMENT_NAME.fullmatch(name):
            raise _problem(path, f"names a part {name!r} that a space never writes (expected segments/NNNNNNNN)")
    if len(set(segments)) != len(segments):
        raise _problem(path, "names the same part twice")
    _validate_extras(manifest, path)
    removed = manifest.get("removed")
    if removed is not None and (not isinstance(removed, str) or not REMOVED_NAME.fullmatch(removed)):
        raise _problem(path, f"names a tombstone file {removed!r} that a space never writes (expected removed-NNNNNNNN.npy)")
    retired = manifest.get("retired", [])
    if not isinstance(retired, list):
        raise _problem(path, "'retired' must be a list")
    for entry in retired:
        if not isinstance(entry, dict) or not isinstance(entry.get("time"), (int, float)) or not isinstance(entry.get("files"), list):
            raise _problem(path, "'retired' entries must be objects with 'time' and 'files'")
        for name in entry["files"]:
            if not isinstance(name, str) or not (REMOVED_NAME.fullmatch(name) or SEGMENT_NAME.fullmatch(name.rsplit(".", 1)[0]) and name.endswith((".npy", ".parquet"))):
                raise _problem(path, f"retires a file {name!r} that a space never writes")


def _validate_extras(manifest: dict[str, Any], path: Path) -> None:
    """The release-2 fields (all optional, for spaces written before them): uid, vector_dtype, ingests."""
    if not isinstance(manifest.get("uid", ""), str):
        raise _problem(path, "'uid' must be a string")
    if manifest.get("vector_dtype", "float32") not in VECTOR_DTYPES:
        raise _problem(path, f"'vector_dtype' must be one of {', '.join(VECTOR_DTYPES)}")
    ingests = manifest.get("ingests", {})
    if not isinstance(ingests, dict):
        raise _problem(path, "'ingests' must be an object")
    for key, record in ingests.items():
        if not INGEST_KEY.fullmatch(key) or not isinstance(record, dict):
            raise _problem(path, f"has an ingest record {key!r} that a space never writes")
        if not all(_is_int(record.get(name)) and record[name] >= 0 for name in ("start", "rows", "block_rows")) or record["block_rows"] < 1:
            raise _problem(path, f"ingest {key}: 'start', 'rows' and 'block_rows' must be non-negative integers")
        done = record.get("done")
        if not isinstance(done, list) or not all(_is_int(block) and block >= 0 for block in done) or not isinstance(record.get("finished"), bool):
            raise _problem(path, f"ingest {key}: 'done' must be a list of block numbers and 'finished' a boolean")


def retired_files(manifest: dict[str, Any]) -> set[str]:
    """File names (relative to the space) that older revisions used and readers may still open."""
    return {name for entry in manifest.get("retired", []) for name in entry["files"]}


def segment_files(manifest: dict[str, Any]) -> set[str]:
    """File names (relative to the space) of the parts and tombstones this revision names."""
    names = {f"{segment}{suffix}" for segment in manifest["segments"] for suffix in (".parquet", ".npy")}
    if manifest.get("removed"):
        names.add(manifest["removed"])
    return names
