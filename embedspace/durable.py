"""Durable file writes: write to a temporary file, fsync, rename, fsync the folder.

After :func:`write_atomic` returns, the new content survives a crash or power loss;
if the process dies at any moment before, the old content (or no file) stays. A
process killed mid-write leaves its temporary file ``.<name>.tmp-<pid>``;
:func:`temporary_owner` and :func:`process_alive` tell whether it may be deleted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: The name :func:`write_atomic` gives its temporary file: ``.<name>.tmp-<pid>``.
_TEMPORARY = re.compile(r"\..*\.tmp-(\d+)")


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace ``path`` with what ``write(handle)`` writes, durably and atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    fsync_folder(path.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda handle: handle.write(data))


def temporary_owner(name: str) -> int | None:
    """The pid in a temporary file's name (``.x.tmp-<pid>``), or None if it is not one."""
    match = _TEMPORARY.fullmatch(name)
    return int(match.group(1)) if match else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (this process counts as running; a pid that cannot exist does not)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except (OverflowError, OSError):
        return False
    return True
