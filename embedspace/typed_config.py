"""Typed configs from JSON: a dataclass built from a dict that refuses unknown keys and wrong types.

One job: turn the JSON form of a config (a component's ``config.json``, a recipe preset)
into its dataclass, with a ``ValueError`` that names the key and says what was expected,
instead of dropping a misspelt key and silently training or loading something else.
Field types are read from the dataclass annotations: ``int``, ``float``, ``bool``,
``str`` and ``tuple[<one of those>, ...]`` (a JSON list) are checked; a field of another
type is passed through for the caller to have converted first (e.g. a nested config).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_SCALARS: dict[str, Callable[[Any], bool]] = {
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "float": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "bool": lambda value: isinstance(value, bool),
    "str": lambda value: isinstance(value, str),
}


def _typed(value: Any, annotation: str, name: str) -> Any:
    """``value`` checked (and a list made a tuple, an int a float) against a field annotation."""
    annotation = annotation.replace(" ", "")
    if annotation in _SCALARS:
        if not _SCALARS[annotation](value):
            raise ValueError(f"{name} must be {'an' if annotation == 'int' else 'a'} {annotation}, got {type(value).__name__} {value!r}"[:300])
        return float(value) if annotation == "float" else value
    if annotation.startswith("tuple[") and annotation.endswith(",...]") and annotation[6:-5] in _SCALARS:
        item = annotation[6:-5]
        if not isinstance(value, (list, tuple)) or not all(_SCALARS[item](element) for element in value):
            raise ValueError(f"{name} must be a list of {item}s, got {value!r}"[:300])
        return tuple(float(element) for element in value) if item == "float" else tuple(value)
    return value


def _annotation(kind: Any) -> str:
    """A field's annotation as text (a string already under ``from __future__ import annotations``)."""
    return kind if isinstance(kind, str) else kind.__name__ if isinstance(kind, type) else str(kind)


def from_json_dict(cls: type[T], data: Any, what: str, ignored: frozenset[str] = frozenset()) -> T:
    """Build dataclass ``cls`` from its JSON form ``data``; ``what`` names it in errors ("tokenizer config").

    Keys in ``ignored`` (documented legacy keys) are dropped; any other key that is not a
    field of ``cls`` is refused.

    Raises:
        ValueError: ``data`` is not an object, has an unknown key, lacks a required one, or
            a value has the wrong type (the message names the key and lists the allowed ones).
    """
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in data if key not in fields and key not in ignored)
    if unknown:
        raise ValueError(f"unknown {what} key {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(fields))}"[:500])
    missing = [name for name, field in fields.items()
               if name not in data and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(map(repr, missing))}")
    values = {key: _typed(value, _annotation(fields[key].type), f"{what} {key!r}") for key, value in data.items() if key in fields}
    return cls(**values)
