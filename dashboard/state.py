"""The shapes of the dashboard's shared state: URL query strings and stored query vectors.

The URL holds what a shared link must restore: ``?item=12&q=kitten&view=3d&color=group&modality=image``
(defaults are left out). Uploaded files are not put in the URL (they can be megabytes);
a link to an upload search restores the rest of the view.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

import numpy as np

VIEWS = ("2d", "3d", "aligned")  # "aligned": the 2-D modality-aligned map
DEFAULT_VIEW = "2d"
DEFAULT_COLOUR = "modality"
#: Modality filter value meaning "no filter".
ALL_MODALITIES = "all"
MODALITY_CHOICES = (ALL_MODALITIES, "text", "image", "audio")
#: Longest text query kept in the URL.
MAX_URL_QUERY = 500


@dataclass(frozen=True)
class ViewState:
    """What the URL restores: selected item, text query, 2-D/3-D view, colour-by column, modality filter."""

    item: int | None = None
    query: str | None = None
    view: str = DEFAULT_VIEW
    colour: str = DEFAULT_COLOUR
    modality: str = ALL_MODALITIES


def parse_query_string(search: str | None) -> ViewState:
    """The view state in a URL query string (``"?item=3&view=3d"``); unknown or bad values fall back to defaults."""
    values = parse_qs((search or "").lstrip("?"), keep_blank_values=False)

    def first(key: str) -> str | None:
        return values[key][0] if key in values and values[key] else None

    item = first("item")
    query = first("q")
    view = first("view")
    modality = first("modality")
    return ViewState(
        item=int(item) if item is not None and item.lstrip("-").isdigit() else None,
        query=query.strip()[:MAX_URL_QUERY] if query and query.strip() else None,
        view=view if view in VIEWS else DEFAULT_VIEW,
        colour=first("color") or DEFAULT_COLOUR,
        modality=modality if modality in MODALITY_CHOICES else ALL_MODALITIES,
    )


def compose_query_string(state: ViewState) -> str:
    """The URL query string (with its ``?``, or ``""``) that :func:`parse_query_string` reads back as ``state``."""
    pairs = []
    if state.item is not None:
        pairs.append(("item", str(int(state.item))))
    if state.query:
        pairs.append(("q", state.query[:MAX_URL_QUERY]))
    if state.view != DEFAULT_VIEW:
        pairs.append(("view", state.view))
    if state.colour != DEFAULT_COLOUR:
        pairs.append(("color", state.colour))
    if state.modality != ALL_MODALITIES:
        pairs.append(("modality", state.modality))
    return "?" + urlencode(pairs) if pairs else ""


def modality_filter(value: str | None) -> str | None:
    """The ``modality`` argument of a search for a filter value ("all" → None)."""
    return None if value in (None, ALL_MODALITIES) else value


def encode_vector(vector: np.ndarray) -> str:
    """A ``(D,)`` float32 vector as base64 text (compact in a dcc.Store)."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """The ``(D,)`` float32 vector from :func:`encode_vector`."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").copy()
