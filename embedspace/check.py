"""Checking a space folder for damage, and repairing what can be repaired (``embedspace check``).

A check reads the manifest and every part it names with the same validation as
:meth:`Space.open`, and lists what is wrong: damaged or missing parts, damaged
tombstones, unreadable derived files (the FAISS index), and files left by interrupted
writes. A repair sets damaged parts aside under ``quarantine/`` (nothing is deleted),
commits a manifest without them, drops the derived index (rebuilt on the next search)
and sweeps leftovers. Items in a quarantined part are lost to the space; the report
lists them so they can be added again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedspace.durable import exclusive_lock, write_bytes_atomic
from embedspace.errors import SpaceError
from embedspace.manifest import MANIFEST, read_manifest
from embedspace.space import PENDING, _load_part, _temporary_owner, sweep


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_space` found. ``ok`` is True when nothing needs repair."""

    path: Path
    problems: tuple[str, ...] = ()
    damaged_parts: tuple[str, ...] = ()
    leftovers: tuple[str, ...] = ()
    repaired: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and not self.damaged_parts

    def lines(self) -> list[str]:
        """The report as lines for the command line."""
        lines = [f"{self.path}: {'ok' if self.ok else 'damaged'}"]
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines += [f"  leftover from an interrupted write: {name}" for name in self.leftovers]
        lines += [f"  repaired: {action}" for action in self.repaired]
        if self.damaged_parts and not self.repaired:
            lines.append(f"  run `embedspace check {self.path} --repair` to set the damaged parts aside (their items leave the space)")
        return lines


def _leftovers(folder: Path) -> list[str]:
    """Temporary files and pending-write markers (what the next write sweeps), without deleting anything."""
    names = []
    for sub in (folder, folder / "segments", folder / "thumbnails", folder / "media"):
        if sub.is_dir():
            names += [Path(entry.path).relative_to(folder).as_posix() for entry in os.scandir(sub) if _temporary_owner(entry.name) is not None]
    if (folder / PENDING).is_file():
        names.append(PENDING)
    return sorted(names)


def check_space(path: str | Path, repair: bool = False) -> CheckReport:
    """Check the space at ``path``; with ``repair=True`` set damaged parts aside and rebuild derived files.

    Raises:
        SpaceError: no space there, or the manifest itself is unreadable (nothing to repair
            from: restore it from a backup or create the space again).
    """
    folder = Path(path).absolute()
    manifest = read_manifest(folder)
    dim = int(manifest["model"]["embed_dim"])
    problems, damaged = [], []
    for name in manifest["segments"]:
        try:
            _load_part(folder, name, dim)
        except FileNotFoundError as error:
            damaged.append(name)
            problems.append(f"{error.filename}: missing")
        except SpaceError as error:
            damaged.append(name)
            problems.append(str(error).split("; `embedspace check")[0])
    removed = manifest.get("removed")
    if removed:
        try:
            tombstones = np.load(folder / removed, allow_pickle=False)
            if tombstones.ndim != 1 or tombstones.dtype.kind not in "iu":
                raise ValueError(f"holds a {tombstones.dtype} array of shape {tombstones.shape}")
        except (OSError, ValueError, EOFError) as error:
            problems.append(f"{folder / removed}: damaged tombstone list ({error})")
    index_stamp = folder / "index.json"
    if index_stamp.is_file():
        try:
            json.loads(index_stamp.read_text())
        except (OSError, ValueError):
            problems.append(f"{index_stamp}: unreadable (the index is rebuilt from the vectors)")
    leftovers = _leftovers(folder)
    if not repair:
        return CheckReport(folder, tuple(problems), tuple(damaged), tuple(leftovers))
    repaired = []
    try:
        with exclusive_lock(folder / ".lock"):
            manifest = read_manifest(folder)
            if damaged:
                quarantine = folder / "quarantine"
                quarantine.mkdir(exist_ok=True)
                for name in damaged:
                    for suffix in (".parquet", ".npy"):
                        source = folder / f"{name}{suffix}"
                        if source.exists():
                            source.replace(quarantine / source.name)
                    repaired.append(f"set {name} aside in quarantine/")
                segments = [name for name in manifest["segments"] if name not in damaged]
                manifest = dict(manifest, segments=segments, revision=manifest["revision"] + 1)
            if removed and any(removed in problem for problem in problems):
                manifest = dict(manifest, removed=None, revision=manifest["revision"] + 1)
                repaired.append(f"dropped the damaged tombstone list {removed} (removed items are visible again)")
            if damaged or manifest.get("removed") != removed:
                write_bytes_atomic(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
            for derived in ("index.json", "index.faiss"):
                if (folder / derived).exists():
                    (folder / derived).unlink()
                    repaired.append(f"dropped the derived {derived} (rebuilt on the next search)")
            swept = sweep(folder, manifest)
            if swept:
                repaired.append(f"swept {len(swept)} file(s) left by interrupted writes")
    except PermissionError as error:
        raise SpaceError(f"cannot repair {folder}: {error.strerror} ({error.filename})") from None
    return CheckReport(folder, tuple(problems), tuple(damaged), tuple(leftovers), tuple(repaired) or ("nothing to repair",))
