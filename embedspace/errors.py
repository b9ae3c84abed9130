"""The errors a user can fix: one line saying what was wrong and what to do.

They live here, apart from the code that raises them, so that any module (and the CLI,
which must import fast) can name them without importing torch.
"""

from __future__ import annotations


class SpaceError(ValueError):
    """Misuse of a Space a user can fix: missing folder, wrong model, unknown id, damaged file..."""


class ModelLoadError(ValueError):
    """A model name, folder or checkpoint that cannot be loaded."""


class ImageDecodeError(ValueError):
    """A file that cannot be used as an image."""


class AudioDecodeError(ValueError):
    """A file or array that cannot be used as audio."""


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, package: str, extra: str, purpose: str):
        super().__init__(f"{purpose} needs the {package!r} package, which is not installed: pip install 'embedspace[{extra}]'")
        self.package = package
        self.extra = extra
