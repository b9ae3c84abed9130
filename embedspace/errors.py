"""The error a user of a Space can fix: one line saying what was wrong and what to do."""

from __future__ import annotations


class SpaceError(ValueError):
    """Misuse of a Space a user can fix: missing folder, wrong model, unknown id, damaged file..."""
