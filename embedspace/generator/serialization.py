"""Folder format for generator components: ``config.json`` + ``model.safetensors``.

One job: write and read a component folder the way diffusers does
(``save_pretrained`` / ``from_pretrained``), durably (temp file, fsync, rename), so a
crash never leaves a half-written folder that loads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from safetensors.torch import load_file, save

from embedspace.durable import write_atomic, write_bytes_atomic

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

Config = TypeVar("Config")


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write ``data`` as pretty JSON to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object from ``path``; a missing file raises FileNotFoundError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; is this a saved generator component folder?")
    return json.loads(path.read_text())


def save_component(
    module: torch.nn.Module, config: dict[str, Any], folder: str | os.PathLike, dtype: torch.dtype | None = None
) -> None:
    """Save ``module``'s state dict and ``config`` as ``folder/{config.json,model.safetensors}``.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point tensors in that type to halve
    the files; loading casts them back to the model's dtype.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in module.state_dict().items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        state[key] = value.contiguous()
    write_bytes_atomic(folder / WEIGHTS_NAME, save(state))
    write_json(folder / CONFIG_NAME, config)


def load_component(
    folder: str | os.PathLike, from_dict: Callable[[dict[str, Any]], Config]
) -> tuple[Config, dict[str, torch.Tensor]]:
    """Read ``(config, state_dict)`` from a component folder written by :func:`save_component`.

    ``from_dict`` builds the typed config from ``config.json`` (e.g. ``PriorConfig.from_dict``).

    Raises:
        FileNotFoundError: ``config.json`` or ``model.safetensors`` is missing.
        ValueError: ``config.json`` is not JSON or not a valid config (the message names the file and the key).
    """
    folder = Path(folder)
    path = folder / CONFIG_NAME
    try:
        config = from_dict(read_json(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); copy the component folder again") from None
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}; fix the file or copy the component folder again") from None
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found; the component folder is incomplete.")
    return config, load_file(str(weights))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: torch.save(obj, handle))
