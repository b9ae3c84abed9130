"""Space access for the dashboard: the open space, its records, searches and writes, for one app.

A :class:`SpaceAccess` keeps the open :class:`~embedspace.Space` of one app (built by
``create_app``, see :class:`dashboard.services.Services`), re-reads it when another
process has written to it (checked at most every ``refresh_seconds``), answers searches
and item look-ups, and adds generated images. It uses the library's API only (``Space``,
its store's paths, the decoders through :mod:`dashboard.uploads`); maps live in
:mod:`dashboard.maps`.

Everything returned to callbacks is plain data: numpy arrays, or lists of JSON-ready
dicts ("records") with keys ``id, modality, label``, ``score`` for results, ``preview``
("image" / "audio") when a thumbnail or sound can be served, and metadata such as
``group`` when the space has it. Errors a user can cause (an empty query, a file that is
not an image, a file over the size limit) are raised as :class:`~embedspace.SpaceError`
with a message for the page.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from dashboard.uploads import read_audio_upload, read_image_upload
from embedspace import Space, SpaceError
from embedspace.limits import DEFAULT_LIMITS, InputLimits
from embedspace.inputs import AUDIO_SUFFIXES, IMAGE_SUFFIXES
from embedspace.store import SpaceStore

logger = logging.getLogger(__name__)

#: Uploads larger than this are refused with a message (the page checks before sending, too).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Columns never offered for colouring (unique per item or file paths).
NOT_COLOURS = ("id", "label", "source")
#: Metadata columns copied into result records when present.
RECORD_EXTRAS = ("group", "subgroup", "style", "transcript")
#: Suffixes of the item files ``/media/<id>`` may serve (see :func:`servable_file`).
MEDIA_SUFFIXES = IMAGE_SUFFIXES | AUDIO_SUFFIXES


@dataclass(frozen=True)
class SearchOutcome:
    """A search: the query's ``(D,)`` float32 vector, its description and result records (best first)."""

    vector: np.ndarray
    description: str
    results: list[dict[str, Any]]


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def servable_file(space_folder: Path, source: object) -> Path | None:
    """The absolute file behind an item's stored ``source``, if the dashboard may serve it, else None.

    The rule (see :mod:`dashboard.routes`): the name and the file it resolves to (links
    followed) both end in an image or audio suffix, the file exists, and a relative
    ``source`` (how the space stores images added from memory, ``media/<id>.png``) resolves
    inside ``space_folder`` (an absolute one). An absolute ``source`` is the original file of
    an item added from disk, recorded at add time.
    """
    named = SpaceStore(space_folder).source_path(source)  # None for a relative name outside the space
    if named is None:
        return None
    try:
        path = named.resolve()
        if named.suffix.lower() not in MEDIA_SUFFIXES or path.suffix.lower() not in MEDIA_SUFFIXES:
            return None
        return path if path.is_file() else None
    except (OSError, ValueError):  # a NUL byte, a name too long, a loop of links
        return None


class SpaceAccess:
    """Everything the dashboard reads from, or writes to, one space (thread-safe).

    Args:
        path: the space folder (kept as an absolute path: the routes serve files from it
            whatever the working directory).
        model: an already loaded model of the space to share (default: loaded on first search).
        max_upload_bytes: uploads above this are refused with a message.
        refresh_seconds: how often to check the space for writes by other processes
            (0: at every read).
        limits: input limits for uploaded images and sounds (see :mod:`embedspace.limits`).

    The space is opened on first use; call :meth:`space` once to fail early when there is none.
    """

    def __init__(
        self,
        path: str | Path,
        model: Any = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        refresh_seconds: float = 1.0,
        limits: InputLimits = DEFAULT_LIMITS,
    ):
        self.path = Path(path).resolve()
        self._shared_model = model
        self.max_upload_bytes = max_upload_bytes
        self.refresh_seconds = refresh_seconds
        self.limits = limits
        self._space: Space | None = None
        self._checked = 0.0
        self._space_lock = threading.RLock()  # tables: refresh, reads, index search
        self._model_lock = threading.Lock()  # first load of the model
        self._gap: tuple[int, list[str]] | None = None  # (revision, modality-gap lines)

    # -- the space -----------------------------------------------------------------------------

    def space(self) -> Space:
        """The open space, re-read if another process wrote to it since the last check.

        Raises:
            SpaceError: there is no space at :attr:`path`.
        """
        with self._space_lock:
            now = time.monotonic()
            if self._space is None:
                self._space = Space.open(self.path, model=self._shared_model)
                self._checked = now
            elif now - self._checked >= self.refresh_seconds:
                self._checked = now
                if self._space.refresh():
                    logger.info("space %s changed: now at revision %d", self.path, self._space.revision)
            return self._space

    def open_copy(self) -> Space:
        """A new instance of the space (without the model), for a background job: the shared one may refresh meanwhile."""
        return Space.open(self.path)

    def items_table(self) -> tuple[pd.DataFrame, int]:
        """The items table (columns ``id``, ``modality``, ``label``, metadata; sorted by id) and its revision, read together."""
        with self._space_lock:
            space = self.space()
            return space.items, space.revision

    def revision(self) -> int:
        return self.space().revision

    def count(self) -> int:
        return len(self.space())

    def colour_columns(self) -> list[str]:
        """Columns the map can be coloured by: modality first, then metadata columns."""
        with self._space_lock:
            columns = [column for column in self.space().items.columns if column not in NOT_COLOURS]
        return ["modality"] + [column for column in columns if column != "modality"]

    def _model(self) -> Any:
        space = self.space()
        with self._model_lock:
            return space.model

    def warm_up(self) -> None:
        """Load the model now (run it in the background at start); failures are logged, and the first search reports them."""
        try:
            self._model()
        except ValueError as error:  # e.g. the space was built with other weights; searches will say so
            logger.warning("searches in %s will fail: %s", self.path, error)
        except Exception:  # logged; the first search will report it to the page
            logger.exception("could not load the model of %s", self.path)

    # -- records -------------------------------------------------------------------------------

    def _records(self, frame: pd.DataFrame, previews: bool = True) -> list[dict[str, Any]]:
        """Records of item rows; with ``previews``, ``preview`` says whether a thumbnail or sound can be served."""
        records = []
        store = self.space().store
        for row in frame.to_dict("records"):
            record = {"id": int(row["id"]), "modality": str(row["modality"]), "label": str(row["label"])}
            if previews and record["modality"] == "image" and store.thumbnail_path(record["id"]) is not None:
                record["preview"] = "image"
            elif previews and record["modality"] == "audio" and servable_file(self.path, row.get("source")) is not None:
                record["preview"] = "audio"
            if "score" in row:
                record["score"] = round(float(row["score"]), 4)
            for extra in RECORD_EXTRAS:
                value = row.get(extra)
                if value is not None and not (isinstance(value, float) and np.isnan(value)):
                    record[extra] = str(value)
            records.append(record)
        return records

    def item(self, item_id: int) -> dict[str, Any]:
        """The record of one item (no score).

        Raises:
            SpaceError: no such item.
        """
        with self._space_lock:
            space = self.space()
            items = space.items
            row = items[items["id"] == int(item_id)]
        if row.empty:
            raise SpaceError(f"no item with id {item_id} in this space")
        return self._records(row)[0]

    def items(self, ids: list[int], limit: int) -> tuple[list[dict[str, Any]], int]:
        """Records of the known ``ids`` (at most ``limit``, in id order) and how many were known."""
        with self._space_lock:
            items = self.space().items
            frame = items[items["id"].isin([int(item_id) for item_id in ids])]
        return self._records(frame.head(limit), previews=False), len(frame)

    def thumbnail_path(self, item_id: int) -> Path | None:
        """The absolute PNG preview of an image item, if it exists inside the space's ``thumbnails/`` folder."""
        with self._space_lock:
            return self.space().thumbnail_path(item_id)  # absolute and resolved: send_file needs no working directory

    def media_path(self, item_id: int) -> Path | None:
        """The absolute image or audio file behind an item, if the dashboard may serve it (:func:`servable_file`).

        Raises:
            SpaceError: no such item.
        """
        with self._space_lock:
            items = self.space().items
            row = items[items["id"] == int(item_id)]
        if row.empty:
            raise SpaceError(f"no item with id {item_id} in this space")
        return servable_file(self.path, row["source"].iloc[0])

    # -- queries -------------------------------------------------------------------------------

    def neighbors(self, item_id: int, k: int) -> list[dict[str, Any]]:
        """The ``k`` nearest other items of ``item_id`` in the original space (FAISS), best first."""
        with self._space_lock:
            frame = self.space().neighbors(int(item_id), k)
        return self._records(frame)

    def search_vector(self, vector: np.ndarray, k: int, modality: str | None) -> list[dict[str, Any]]:
        """Records of the ``k`` items nearest ``vector`` ((D,) float32), optionally of one modality."""
        with self._space_lock:
            frame = self.space().search(np.asarray(vector, dtype=np.float32), k, modality)
        return self._records(frame)

    def search_text(self, text: str, k: int, modality: str | None) -> SearchOutcome:
        """Search with a text query.

        Raises:
            SpaceError: the text is empty.
        """
        text = (text or "").strip()
        if not text:
            raise SpaceError("type something to search for (the query is empty)")
        model = self._model()
        vector = model.embed_text([text])[0]
        return SearchOutcome(vector, text, self.search_vector(vector, k, modality))

    def search_upload(self, kind: str, filename: str, payload: bytes, k: int, modality: str | None) -> SearchOutcome:
        """Search with an uploaded image (``kind="image"``) or audio file (``kind="audio"``).

        The file is decoded by the library's decoders under :attr:`limits` (see
        :mod:`dashboard.uploads`); messages name the file by its base name only.

        Raises:
            SpaceError: the file is over the size limit, or not a readable image / audio file.
        """
        name = Path(filename or "upload").name
        if len(payload) > self.max_upload_bytes:
            raise SpaceError(f"{name} is {_mb(len(payload))}; the upload limit is {_mb(self.max_upload_bytes)}: choose a smaller file")
        if len(payload) == 0:
            raise SpaceError(f"{name} is empty; choose another file")
        if kind == "image":
            image = read_image_upload(name, payload, self.limits)
            vector = self._model().embed_images([image])[0]
        elif kind == "audio":
            model = self._model()
            if model.audio is None:
                raise SpaceError(f"this space's model {model.model_id!r} has no audio tower, so it cannot search with sounds; search with text or an image")
            sound = read_audio_upload(name, payload, model.audio.config.sample_rate, model.audio.config.max_seconds, self.limits)
            vector = model.embed_audio([(sound.samples, sound.sample_rate)])[0]
        else:
            raise SpaceError(f"unknown upload kind {kind!r}; upload an image or an audio file")
        return SearchOutcome(vector, name, self.search_vector(vector, k, modality))

    # -- generation ----------------------------------------------------------------------------

    def model_id(self) -> str:
        """The id of the space's encoder model (a generator must have been trained for it)."""
        return self.space().model_id

    def modality_gap_lines(self) -> list[str]:
        """One line per pair of modalities: matched vs unmatched cosine and centroid distance (computed once per revision)."""
        from embedspace.modality_gap import modality_gap

        with self._space_lock:
            space = self.space()
            if self._gap is None or self._gap[0] != space.revision:
                self._gap = (space.revision, [gap.line() for gap in modality_gap(space.items, space.vectors_of)])
            return self._gap[1]

    def item_image(self, item_id: int) -> Image.Image:
        """The pixels of an image item (to edit it).

        Raises:
            SpaceError: no such item, not an image item, or its image is gone.
        """
        with self._space_lock:
            return self.space().item_image(int(item_id))

    def item_vector(self, item_id: int) -> np.ndarray:
        """The ``(D,)`` float32 vector of an item.

        Raises:
            SpaceError: no such item.
        """
        with self._space_lock:
            return self.space().embed(int(item_id))

    def add_generated(self, image: Any, label: str) -> dict[str, Any]:
        """Encode a generated PIL image and add it to the space (a durable write).

        The image's ``info`` carries its condition (see :meth:`embedspace.Space.add_images`),
        so the new item records ``generated``, ``condition`` and ``fidelity``. Returns its
        record plus ``fidelity`` (cosine between the image's vector and its condition) and
        ``vector`` (its ``(D,)`` float32 vector).
        """
        self._model()  # load outside the table lock
        with self._space_lock:
            space = self.space()
            (item_id,) = space.add_images([image], labels=[label])
            items = space.items
            row = items[items["id"] == item_id]
            vector = space.embed(item_id)
        record = self._records(row)[0]
        fidelity = row["fidelity"].iloc[0] if "fidelity" in row.columns else np.nan
        record["fidelity"] = None if pd.isna(fidelity) else round(float(fidelity), 4)
        record["vector"] = vector
        return record
