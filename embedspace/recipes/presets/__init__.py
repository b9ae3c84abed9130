"""Named presets of the training recipes, as JSON files beside this module.

One job: find a kind's presets and read each into its typed config. Layout::

    presets/
      encoder/<name>.json     an EncoderTrainingConfig (`embedspace train --preset <name>`)
      generator/<name>.json   a generator Recipe (sizes and optimisation), named by its training set

Each file is ``{"description": "...", "config": {...}}``: the description says what the
preset is for and what it took; the config holds every field of the dataclass, and a key
that is not one is an error naming the file (see :mod:`embedspace.typed_config`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

PRESETS_DIR = Path(__file__).resolve().parent
KINDS = ("encoder", "generator")


def _folder(kind: str, root: Path) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed: {KINDS}")
    return Path(root) / kind


def preset_names(kind: str, root: Path = PRESETS_DIR) -> list[str]:
    """Names of the presets of ``kind`` ("encoder" or "generator") under ``root``, sorted."""
    return sorted(path.stem for path in _folder(kind, root).glob("*.json"))


def read_preset(kind: str, name: str, from_dict: Callable[[dict[str, Any]], T], root: Path = PRESETS_DIR) -> T:
    """The preset ``name`` of ``kind`` (from ``root``, the package's presets by default), built by ``from_dict`` from its ``config``.

    Raises:
        ValueError: no such preset (listing those there are), or its file is not valid JSON
            of the layout above, or its config is not valid (naming the file and the key).
    """
    path = _folder(kind, root) / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no {kind} preset {name!r}; there are: {', '.join(preset_names(kind, root))}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or set(data) != {"description", "config"}:
        raise ValueError(f"{path}: a preset is an object with exactly 'description' and 'config'")
    try:
        return from_dict(data["config"])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None


def load_presets(kind: str, from_dict: Callable[[dict[str, Any]], T], root: Path = PRESETS_DIR) -> dict[str, T]:
    """Every preset of ``kind`` under ``root``, by name (see :func:`read_preset`)."""
    return {name: read_preset(kind, name, from_dict, root) for name in preset_names(kind, root)}
