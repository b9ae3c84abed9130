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

from dataclasses import dataclass, field
from pathlib import Path

from embedspace.errors import SpaceError
from embedspace.store import QUARANTINE, SpaceStore


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


def check_space(path: str | Path, repair: bool = False) -> CheckReport:
    """Check the space at ``path``; with ``repair=True`` set damaged parts aside and rebuild derived files.

    Raises:
        SpaceError: no space there, or the manifest itself is unreadable (nothing to repair
            from: restore it from a backup or create the space again).
    """
    store = SpaceStore(path)
    folder = store.path
    manifest = store.read_manifest()
    dim = int(manifest["model"]["embed_dim"])
    problems, damaged = [], []
    for name in manifest["segments"]:
        try:
            store.load_part(name, dim)
        except FileNotFoundError as error:
            damaged.append(name)
            problems.append(f"{error.filename}: missing")
        except SpaceError as error:
            damaged.append(name)
            problems.append(str(error).split("; `embedspace check")[0])
    removed = manifest.get("removed")
    if removed:
        try:
            store.load_tombstones(removed)
        except (FileNotFoundError, SpaceError) as error:
            reason = "missing" if isinstance(error, FileNotFoundError) else str(error).split("; `embedspace check")[0].removeprefix(f"{folder / removed}: ")
            problems.append(f"{folder / removed}: damaged tombstone list ({reason})")
    try:
        store.index_stamp()
    except ValueError as error:
        problems.append(f"{error} (the index is rebuilt from the vectors)")
    leftovers = store.leftovers()
    if not repair:
        return CheckReport(folder, tuple(problems), tuple(damaged), tuple(leftovers))
    repaired = []
    with store.lock():
        manifest = store.read_manifest()
        if damaged:
            for name in damaged:
                store.set_aside(name)
                repaired.append(f"set {name} aside in {QUARANTINE}/")
            segments = [name for name in manifest["segments"] if name not in damaged]
            manifest = dict(manifest, segments=segments, revision=manifest["revision"] + 1)
        if removed and any(removed in problem for problem in problems):
            manifest = dict(manifest, removed=None, revision=manifest["revision"] + 1)
            repaired.append(f"dropped the damaged tombstone list {removed} (removed items are visible again)")
        if damaged or manifest.get("removed") != removed:
            store.write_manifest(manifest)
        for derived in store.drop_index():
            repaired.append(f"dropped the derived {derived} (rebuilt on the next search)")
        swept = store.sweep(manifest)
        if swept:
            repaired.append(f"swept {len(swept)} file(s) left by interrupted writes")
    return CheckReport(folder, tuple(problems), tuple(damaged), tuple(leftovers), tuple(repaired) or ("nothing to repair",))
