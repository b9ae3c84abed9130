"""Third-party weight files, checked against the sha256 pinned in the code before anything reads them.

A model folder or package on disk is input like any other: a file that is not the one the
code was written for (another model, a damaged or tampered copy) is refused with a message
naming the file, both hashes and how to get the right one back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from embedspace.errors import ModelLoadError


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_pinned(path: Path, expected: str, what: str, reinstall: str) -> Path:
    """``path``, once it is known to exist and to hash to ``expected``.

    Args:
        path: the file.
        expected: its pinned hex sha256.
        what: what the file is, for messages ("whisper-tiny.en file").
        reinstall: how to get the right file back ("reinstall it with `pip install ...`").

    Raises:
        ModelLoadError: the file is missing, or its sha256 is not ``expected``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing; the {what} is needed here: {reinstall}")
    actual = file_sha256(path)
    if actual != expected:
        raise ModelLoadError(
            f"{path}: sha256 {actual} is not the pinned {what} (sha256 {expected}); "
            f"it is another file or a damaged copy, so embedspace will not use it: {reinstall}"
        )
    return path
