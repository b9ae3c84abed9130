"""The generator a space records: what is stored in the space, and the checks it passes when read back.

A space folder can come from someone else, so its record is untrusted data. It never
names code and never makes embedspace read an arbitrary folder:

- ``{"name": "emoji-mini"}``: a generator shipped in ``embedspace/generator/pretrained/``,
  used only when the name is exactly one of :func:`~embedspace.generator.list_pretrained`;
- ``{"folder": PATH, "fingerprint": SHA256, "encoder_model_id": ID}``: a generator folder
  set on this machine (``embedspace train generator --space`` or ``embedspace generator
  set``). ``PATH`` is relative when the folder is inside the space (it must still be inside
  when read back) and absolute otherwise. The folder is used only while it holds the very
  generator that was recorded: the SHA-256 of its config and weight files must match, so a
  record made elsewhere cannot point embedspace at files the user did not choose.

:func:`make_record` builds a record from what a user gave; :func:`resolve_record` checks
a stored one and returns what ``Generator.load`` should load.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from embedspace.errors import SpaceError
from embedspace.generator.pipeline import list_pretrained, resolve_folder
from embedspace.generator.serialization import CONFIG_NAME, WEIGHTS_NAME, read_json

#: The files of a generator folder that its fingerprint covers, relative to the folder.
FINGERPRINTED = (CONFIG_NAME, f"tokenizer/{CONFIG_NAME}", f"tokenizer/{WEIGHTS_NAME}", f"prior/{CONFIG_NAME}", f"prior/{WEIGHTS_NAME}")


def fingerprint(folder: str | os.PathLike) -> str:
    """SHA-256 (hex) of a generator folder's config and weight files, in a fixed order.

    Raises:
        SpaceError: a file is missing (the folder is not a complete generator).
    """
    digest = hashlib.sha256()
    for name in FINGERPRINTED:
        path = Path(folder) / name
        try:
            data = path.read_bytes()
        except OSError:
            raise SpaceError(f"{folder} is not a complete generator folder ({name} is missing or unreadable)") from None
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def _encoder_model_id(folder: Path) -> str:
    try:
        value = read_json(folder / CONFIG_NAME).get("encoder_model_id")
    except (OSError, ValueError) as error:
        raise SpaceError(f"{folder / CONFIG_NAME}: unreadable ({error})") from None
    if not isinstance(value, str):
        raise SpaceError(f"{folder / CONFIG_NAME} names no encoder model; is it a folder written by Generator.save_pretrained?")
    return value


def make_record(generator: str | os.PathLike, space_path: Path, model_id: str) -> dict[str, Any]:
    """The record of ``generator`` (a shipped name or a generator folder) for the space at ``space_path``.

    Raises:
        SpaceError: no such name or folder, or a generator trained for another model than ``model_id``.
    """
    if str(generator) in list_pretrained() and not (Path(generator) / CONFIG_NAME).is_file():
        folder, record = resolve_folder(str(generator)), {"name": str(generator)}
    else:
        folder = Path(generator).absolute()
        if not (folder / CONFIG_NAME).is_file():
            shipped = ", ".join(list_pretrained()) or "none"
            raise SpaceError(f"{str(generator)!r} is neither a generator folder (written by Generator.save_pretrained or "
                             f"`embedspace train generator`) nor a shipped generator ({shipped})")
        space = space_path.resolve()
        resolved = folder.resolve()
        stored = resolved.relative_to(space).as_posix() if space in resolved.parents else str(resolved)
        record = {"folder": stored, "fingerprint": fingerprint(folder)}
    trained_for = _encoder_model_id(folder)
    if trained_for != model_id:
        raise SpaceError(f"generator {str(generator)!r} was trained for encoder model {trained_for!r}, but this space uses "
                         f"{model_id!r}; train one for it with `embedspace train generator --space SPACE --out DIR`")
    return {**record, "encoder_model_id": trained_for}


def resolve_record(record: dict[str, Any], space_path: Path) -> str | Path:
    """What ``Generator.load`` should load for a stored ``record``: a shipped name or a checked folder.

    Raises:
        SpaceError: the record is malformed, names no shipped generator, or its folder is
            missing, outside the space when recorded inside, or no longer holds the recorded
            generator (each message says what to do).
    """
    again = f"record one with `embedspace generator set {space_path} NAME|DIR`"
    name, stored, expected = record.get("name"), record.get("folder"), record.get("fingerprint")
    if isinstance(name, str) and stored is None:
        if name not in list_pretrained():
            raise SpaceError(f"space {space_path} records generator {name!r}, which is not a shipped generator "
                             f"({', '.join(list_pretrained()) or 'none'}); {again}")
        return name
    if not isinstance(stored, str) or not stored or not isinstance(expected, str) or "\0" in stored:
        raise SpaceError(f"space {space_path} holds a damaged generator record; {again}")
    space = space_path.resolve()
    path = Path(stored)
    try:
        folder = path if path.is_absolute() else (space / path).resolve()
    except (OSError, ValueError):
        folder = None
    if folder is None or (not path.is_absolute() and space not in folder.parents):
        raise SpaceError(f"space {space_path} records a generator folder {stored!r} that is not inside it; {again}")
    if not folder.is_dir():
        raise SpaceError(f"space {space_path} records the generator folder {str(folder)!r}, which does not exist on this machine; "
                         f"copy the generator there, or {again}")
    if fingerprint(folder) != expected:
        raise SpaceError(f"the generator folder {str(folder)!r} no longer holds the generator space {space_path} recorded "
                         f"(its files changed, or the record was made on another machine); if you trust it, {again}")
    return folder
