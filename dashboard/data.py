"""Data access for the dashboard: the only module that touches the Space and its maps.

One :class:`SpaceData` per space folder and process (:func:`space_data` caches it). It
keeps the open :class:`~embedspace.Space`, re-reads it when another process has written
to it (checked at most every ``refresh_seconds``), answers searches, and owns the
background threads that load or compute the UMAP maps, so no request ever waits for
UMAP: a page asks :meth:`SpaceData.map_status` and polls until the map is ready.

Everything returned to callbacks is plain data: numpy arrays, dataclasses from
:mod:`dashboard.figures`, or lists of JSON-ready dicts ("records") with keys
``id, modality, label``, ``score`` for results, ``preview`` ("image" / "audio") when a
thumbnail or sound can be served, and metadata such as ``group`` when the space has it.
Errors a user can cause (an empty query, a file that is not an image, a file over
the size limit) are raised as :class:`~embedspace.SpaceError` with a message for the page.
"""

from __future__ import annotations

import inspect
import io
import logging
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedspace import Space, SpaceError
from embedspace.maps import compute_space_projection, load_space_projection
from embedspace.projection import Projection
from embedspace.space import AUDIO_SUFFIXES, IMAGE_SUFFIXES, modality_of
from embedspace.store import SpaceStore
from embedspace.store_maps import SpaceProjection

from dashboard.figures import MapPoints

logger = logging.getLogger(__name__)

#: Uploads larger than this are refused with a message (the page checks before sending, too).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Maps with at most this many points carry their labels for inline hover text.
INLINE_HOVER_LIMIT = 20_000
#: Columns never offered for colouring (unique per item or file paths).
NOT_COLOURS = ("id", "label", "source")
#: Metadata columns copied into result records when present.
RECORD_EXTRAS = ("group", "subgroup", "style")
DIMS = {"2d": 2, "3d": 3}
#: Suffixes of the item files ``/media/<id>`` may serve (see :func:`servable_file`).
MEDIA_SUFFIXES = IMAGE_SUFFIXES | AUDIO_SUFFIXES


@dataclass(frozen=True)
class MapStatus:
    """Where a map stands: ``state`` is "ready", "computing" or "error".

    ``progress`` is a fraction in [0, 1]; ``message`` says what is happening (or what
    went wrong); ``revision`` is the ready map's space revision (None otherwise);
    ``placeable`` says whether queries can be placed on it yet (its projection model is
    loaded in the background after the coordinates).
    """

    state: str
    progress: float
    message: str
    revision: int | None = None
    placeable: bool = False


@dataclass(frozen=True)
class SearchOutcome:
    """A search: the query's ``(D,)`` float32 vector, its description and result records (best first)."""

    vector: np.ndarray
    description: str
    results: list[dict[str, Any]]


class _MapJob:
    """A background thread loading or computing one map, with its progress."""

    def __init__(self, dims: str, revision: int):
        self.dims = dims
        self.revision = revision
        self.progress = 0.0
        self.message = "starting"
        self.error: str | None = None
        self.started = time.monotonic()
        self.thread: threading.Thread | None = None

    def report(self, fraction: float, message: str) -> None:
        self.progress, self.message = float(fraction), message

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


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


class SpaceData:
    """Everything the dashboard reads from one space (thread-safe).

    Args:
        path: the space folder (kept as an absolute path: the routes serve files from it
            whatever the working directory).
        projection_factory: ``n_components -> Projection`` for new maps (default
            ``Projection(n_components)``).
        max_upload_bytes: uploads above this are refused with a message.
        inline_hover_limit: maps up to this size carry labels for hover text.
        refresh_seconds: how often to check the space for writes by other processes.
        model: an already loaded model of the space to share (default: loaded on first search).
    """

    def __init__(
        self,
        path: str | Path,
        projection_factory: Callable[[int], Projection] | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        inline_hover_limit: int = INLINE_HOVER_LIMIT,
        refresh_seconds: float = 1.0,
        model: Any = None,
    ):
        self.path = Path(path).resolve()
        self._shared_model = model
        self.projection_factory = projection_factory or (lambda n_components: Projection(n_components=n_components))
        self.max_upload_bytes = max_upload_bytes
        self.inline_hover_limit = inline_hover_limit
        self.refresh_seconds = refresh_seconds
        self._space: Space | None = None
        self._checked = 0.0
        self._space_lock = threading.RLock()  # tables: refresh, reads, index search
        self._model_lock = threading.Lock()  # first load of the model
        self._map_lock = threading.RLock()  # maps and jobs
        self._transform_lock = threading.Lock()  # placing queries (UMAP's transform)
        self._maps: dict[str, SpaceProjection] = {}
        self._jobs: dict[str, _MapJob] = {}
        self._placeable: dict[str, threading.Event] = {dims: threading.Event() for dims in DIMS}
        self._points_cache: dict[tuple, MapPoints] = {}

    # -- the space -----------------------------------------------------------------------------

    def space(self) -> Space:
        """The open space, re-read if another process wrote to it since the last check."""
        with self._space_lock:
            if self._space is None:
                self._space = Space.open(self.path, model=self._shared_model)
                self._checked = time.monotonic()
            elif time.monotonic() - self._checked > self.refresh_seconds:
                self._checked = time.monotonic()
                if self._space.refresh():
                    logger.info("space %s changed: now at revision %d", self.path, self._space.revision)
            return self._space

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
        """Load the model and start the 2-D map in the background (call once at start)."""

        def run() -> None:
            try:
                self._model()
            except ValueError as error:  # e.g. the space was built with other weights; searches will say so
                logger.warning("searches in %s will fail: %s", self.path, error)
            except Exception:  # logged; the first search will report it to the page
                logger.exception("could not load the model of %s", self.path)

        threading.Thread(target=run, name="embedspace-warm-up", daemon=True).start()
        self.map_status("2d")

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

        Raises:
            SpaceError: the file is over the size limit, or not a readable image / audio file.
        """
        name = Path(filename or "upload").name
        if len(payload) > self.max_upload_bytes:
            raise SpaceError(f"{name} is {_mb(len(payload))}; the upload limit is {_mb(self.max_upload_bytes)}: choose a smaller file")
        if len(payload) == 0:
            raise SpaceError(f"{name} is empty; choose another file")
        if kind == "image":
            vector = self._embed_image(name, payload)
        elif kind == "audio":
            vector = self._embed_audio(name, payload)
        else:
            raise SpaceError(f"unknown upload kind {kind!r}; upload an image or an audio file")
        return SearchOutcome(vector, name, self.search_vector(vector, k, modality))

    def _embed_image(self, name: str, payload: bytes) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(payload)) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError, struct.error, Image.DecompressionBombError):  # PIL's ways of refusing a broken file
            raise SpaceError(f"{name} is not an image this app can read; upload one of {', '.join(sorted(IMAGE_SUFFIXES))}") from None
        return self._model().embed_images([image])[0]

    def _embed_audio(self, name: str, payload: bytes) -> np.ndarray:
        suffix = Path(name).suffix.lower()
        if modality_of(Path(name)) != "audio":
            raise SpaceError(f"{name} is not an audio file; upload one of {', '.join(sorted(AUDIO_SUFFIXES))}")
        model = self._model()
        with tempfile.TemporaryDirectory(prefix="embedspace-upload-") as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(payload)
            try:
                return model.embed_audio([path])[0]
            except ValueError as error:
                reason = str(error).replace(str(path), name).replace(folder, "upload")  # the page never sees the server's paths
                raise SpaceError(f"{name} could not be read as audio ({reason}); upload a valid file of type {', '.join(sorted(AUDIO_SUFFIXES))}") from None

    # -- maps ----------------------------------------------------------------------------------

    def map_status(self, dims: str) -> MapStatus:
        """Whether the ``dims`` ("2d"/"3d") map is ready; starts loading or computing it when needed."""
        if dims not in DIMS:
            raise SpaceError(f"unknown map view {dims!r}; use 2d or 3d")
        revision = self.revision()
        with self._map_lock:
            current = self._maps.get(dims)
            if current is not None and current.revision >= revision:
                return MapStatus("ready", 1.0, f"{len(current.ids):,} points", current.revision, current.projection is not None)
            job = self._jobs.get(dims)
            if job is not None and job.running:
                seconds = time.monotonic() - job.started
                return MapStatus("computing", job.progress, f"{job.message} ({seconds:.0f} s)")
            if job is not None and job.error is not None and job.revision == revision:
                return MapStatus("error", 0.0, job.error)
            self._start_job(dims, revision)
            return MapStatus("computing", 0.0, "starting")

    def _start_job(self, dims: str, revision: int) -> None:
        job = _MapJob(dims, revision)
        self._placeable[dims].clear()
        job.thread = threading.Thread(target=self._run_job, args=(job,), name=f"embedspace-map-{dims}", daemon=True)
        self._jobs[dims] = job
        job.thread.start()

    def _run_job(self, job: _MapJob) -> None:
        """Load (or compute) the map, show it, then load its model so queries can be placed."""
        n_components = DIMS[job.dims]
        placeable = self._placeable[job.dims]
        try:
            space = Space.open(self.path)  # its own instance: the request threads' one may refresh meanwhile
            job.revision = space.revision
            stored = load_space_projection(space, n_components, load_model=False)  # coordinates only: fast
            if stored is None:
                job.report(0.0, "computing map")
                with self._map_lock:
                    older = self._maps.get(job.dims)
                stored = compute_space_projection(
                    space,
                    n_components,
                    projection=self.projection_factory(n_components),
                    progress=job.report,
                    previous=older if older is not None and older.projection is not None else None,
                )
            with self._map_lock:
                self._maps[job.dims] = stored  # the page can draw the map from here on
            job.report(0.97, "loading the projection model to place queries")
            stored = stored.with_model()
            stored.transform(space.vectors[:1])  # compiles UMAP's transform now, not on the first search
            with self._map_lock:
                if self._maps.get(job.dims) is not None and self._maps[job.dims].revision == stored.revision:
                    self._maps[job.dims] = stored
            job.report(1.0, "map ready")
        except ValueError as error:
            job.error = str(error)
            logger.warning("map %s of %s failed: %s", job.dims, self.path, error)
        except Exception as error:  # keep serving; the page shows the message
            job.error = f"computing the map failed: {error}"
            logger.exception("map %s of %s failed", job.dims, self.path)
        finally:
            placeable.set()

    def wait_for_map(self, dims: str, timeout: float = 600.0) -> MapStatus:
        """Block until the ``dims`` map is ready and placeable, or failed (for scripts and tests; pages poll instead)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.map_status(dims)
            if status.state == "error" or (status.state == "ready" and status.placeable) or time.monotonic() > deadline:
                return status
            time.sleep(0.05)

    def _map(self, dims: str) -> SpaceProjection | None:
        with self._map_lock:
            return self._maps.get(dims)

    def map_points(self, dims: str, colour_by: str) -> MapPoints | None:
        """The points of the latest ``dims`` map with colours from column ``colour_by`` (None before the first map)."""
        stored = self._map(dims)
        if stored is None:
            return None
        with self._space_lock:
            space = self.space()
            key = (dims, stored.revision, colour_by, space.revision)
            if key in self._points_cache:
                return self._points_cache[key]
            items = space.items
        item_ids = items["id"].to_numpy()
        rows = np.clip(np.searchsorted(item_ids, stored.ids), 0, max(len(item_ids) - 1, 0))
        known = item_ids[rows] == stored.ids if len(item_ids) else np.zeros(len(stored.ids), bool)
        column = colour_by if colour_by in items.columns else "modality"
        values = items[column].to_numpy()[rows]
        if not known.all():
            values = values.astype(object)
            values[~known] = None
        labels = None
        if len(stored.ids) <= self.inline_hover_limit:
            labels = np.where(known, items["label"].to_numpy()[rows], "")
        points = MapPoints(stored.ids, stored.coordinates, values, column, labels, stored.revision)
        self._points_cache = {key: points}
        return points

    def coordinates_of(self, dims: str, ids: list[int]) -> np.ndarray:
        """``(K, C)`` float32 map coordinates of items (NaN rows for items not in the map)."""
        stored = self._map(dims)
        n_components = DIMS[dims]
        if stored is None:
            return np.full((len(ids), n_components), np.nan, np.float32)
        rows = stored.positions(np.asarray(ids, dtype=np.int64))
        coordinates = stored.coordinates[np.maximum(rows, 0)].copy()
        coordinates[rows < 0] = np.nan
        return coordinates

    def place(self, dims: str, vector: np.ndarray, wait: float = 120.0) -> np.ndarray | None:
        """``(C,)`` float32 position of a query vector in the ``dims`` map (the projection's ``transform``).

        None before the map exists, or if its model could not be loaded within ``wait`` seconds
        (right after start the model may still be loading in the background).
        """
        stored = self._map(dims)
        if stored is None:
            return None
        if stored.projection is None:
            self._placeable[dims].wait(wait)
            stored = self._map(dims)
            if stored is None or stored.projection is None:
                return None
        with self._transform_lock:
            return stored.transform(np.asarray(vector, dtype=np.float32)[None, :])[0]

    def place_many(self, dims: str, vectors: np.ndarray) -> np.ndarray:
        """``(K, C)`` float32 positions of ``(K, D)`` vectors in the ``dims`` map (NaN rows until it can place them).

        Never waits: before the projection model is loaded every row is NaN (the map is redrawn when it is).
        """
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        stored = self._map(dims)
        if stored is None or stored.projection is None or len(vectors) == 0:
            return np.full((len(vectors), DIMS[dims]), np.nan, np.float32)
        with self._transform_lock:
            return np.asarray(stored.transform(vectors), dtype=np.float32)

    # -- generation ----------------------------------------------------------------------------

    def model_id(self) -> str:
        """The id of the space's encoder model (a generator must have been trained for it)."""
        return self.space().model_id

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


#: Shown in the page when the app was started without a generator.
NO_GENERATOR = (
    "Generation is off: this dashboard was started without a generator. "
    "Start it with `embedspace serve SPACE --generator emoji-mini` (or a folder written by Generator.save_pretrained)."
)

_GENERATORS: dict[str, Any] = {}
_GENERATORS_LOCK = threading.Lock()


class GeneratorSource:
    """The dashboard's image generator, loaded on first use and checked against the space's model.

    Args:
        spec: a generator name (e.g. "emoji-mini"), a folder written by
            ``Generator.save_pretrained``, a loaded :class:`embedspace.Generator`, or None (no generation).
        model_id: the space's encoder model id.

    Loaded generators are kept per process (keyed by their folder or name), so every
    session and app in a process shares one, read-only.
    """

    def __init__(self, spec: Any, model_id: str):
        self.spec = spec
        self.model_id = model_id


    def problem(self) -> str | None:
        """Why generation cannot work, as far as a cheap check tells (None: try it; loading may still fail)."""
        from embedspace.generator import Generator, list_pretrained

        if self.spec is None:
            return NO_GENERATOR
        if isinstance(self.spec, Generator) or Path(self.spec).is_dir() or str(self.spec) in list_pretrained():
            return None
        shipped = ", ".join(list_pretrained()) or "none shipped"
        return f"Generation is unavailable: there is no generator folder or named generator {str(self.spec)!r} (named generators: {shipped})."

    def describe(self) -> str:
        """One line for the page: which generator is used, or why there is none."""
        problem = self.problem()
        if problem is not None:
            return problem
        if not isinstance(self.spec, (str, Path)):
            return "generator: loaded by the caller"
        return f"generator: {Path(self.spec).name} (loaded on first use)"  # a name, or a folder's name (not the server's paths)

    def _key(self) -> str:
        path = Path(self.spec)
        return str(path.resolve()) if path.is_dir() else str(self.spec)

    def get(self) -> Any:
        """The loaded generator.

        Raises:
            ValueError: none configured, it cannot be loaded, or it was trained for another model
                (the message says what to do).
        """
        from embedspace.generator import Generator

        if self.spec is None:
            raise ValueError(NO_GENERATOR)
        if isinstance(self.spec, Generator):
            generator = self.spec
        else:
            key = self._key()
            with _GENERATORS_LOCK:
                generator = _GENERATORS.get(key)
                if generator is None:
                    try:
                        generator = Generator.load(self.spec)
                    except ValueError as error:
                        raise ValueError(f"generation is unavailable: {error}") from None
                    _GENERATORS[key] = generator
        try:
            generator.check_compatible(self.model_id)
        except ValueError as error:
            raise ValueError(f"the generator does not fit this space: {error}") from None
        return generator


_CACHE: dict[tuple, SpaceData] = {}
_CACHE_LOCK = threading.Lock()


def space_data(path: str | Path, **options: Any) -> SpaceData:
    """The process-wide :class:`SpaceData` of the space at ``path`` (created on first use).

    Raises:
        SpaceError: ``path`` holds no space.
    """
    defaults = {name: parameter.default for name, parameter in inspect.signature(SpaceData).parameters.items() if name != "path"}
    settings = {**defaults, **options}  # so that explicit defaults and omitted ones share one SpaceData
    key = (str(Path(path).resolve()), tuple(sorted(settings.items(), key=lambda item: item[0])))
    with _CACHE_LOCK:
        if key not in _CACHE:
            data = SpaceData(path, **options)
            data.space()  # fail now, with the library's message, if there is no space there
            _CACHE[key] = data
        return _CACHE[key]
