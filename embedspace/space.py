"""Space: items and their vectors from one model, searchable with FAISS.

A space embeds inputs (text, images, audio), adds and removes items, and searches them.
Its folder is read and written only through its :class:`~embedspace.store.SpaceStore`
(:attr:`Space.store`), which knows the on-disk format and keeps it durable: a write is
acknowledged when the manifest naming it has been durably replaced, so a crash at any
moment leaves the last acknowledged state readable. Vectors and items are the source of
truth; the index is rebuilt when missing or stale. Ids are int64, increasing, and never reused.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from embedspace import provenance
from embedspace.errors import SpaceError
from embedspace.index import AUTO, validate_factory
from embedspace.inputs import AUDIO_SUFFIXES, IMAGE_SUFFIXES, audio_notes, collect_files, decode_notes, is_unicode, metadata_rows, modality_of, printable
from embedspace.models import DEFAULT_MODEL, EmbeddingModel, list_models
from embedspace.models.audio import AudioDecodeError, DecodedAudio, decode_audio
from embedspace.models.model import ImageDecodeError, load_image
from embedspace.rows import StoredRows
from embedspace.space_index import IndexEvaluation, SpaceIndex, evaluate_index
from embedspace.store import BASE_COLUMNS, Part, Snapshot, SpaceStore, value_kind
from embedspace.vectors import unit_rows, unit_vector

if TYPE_CHECKING:
    from embedspace.ingest import IngestResult
    from embedspace.generator import GenerationResult, Generator, SamplingOptions
    from embedspace.generator.sampling import OnToken

logger = logging.getLogger(__name__)

MODALITIES = ("text", "image", "audio")


def _describe(query: Any) -> str:
    """A short human-readable description of a query, stored with generated images."""
    if isinstance(query, numbers.Integral):
        return f"item {int(query)}"
    if isinstance(query, Image.Image):
        return "image"
    if isinstance(query, (np.ndarray, list, tuple)):
        return "vector"
    return str(query)


def _sampling_options(options: SamplingOptions | None, seed: int | None, sampling: dict[str, Any]) -> SamplingOptions:
    """``options`` with ``seed`` (when given) and the keyword ``sampling`` values replacing its fields."""
    from embedspace.generator import SamplingOptions

    return SamplingOptions.of(options, **sampling, **({} if seed is None else {"seed": seed}))


def _finite(vector: np.ndarray, name: str) -> np.ndarray:
    """``vector`` unchanged, or a SpaceError naming the input whose embedding is not finite."""
    if not np.isfinite(vector).all():
        raise SpaceError(f"{name}: the model gave a non-finite vector for it, so it cannot be used")
    return vector


def _counted(counts: dict[str, int], modalities: Any, sign: int) -> dict[str, int]:
    """``counts`` (items and per modality) after adding (``sign`` 1) or removing (-1) items of ``modalities``."""
    values = pd.Series(modalities).value_counts()
    updated = {key: int(counts.get(key, 0)) for key in ("items", *MODALITIES)}
    updated["items"] += sign * int(values.sum())
    for modality, count in values.items():
        if modality in MODALITIES:
            updated[modality] += sign * int(count)
    return updated


def _existing_column(parts: Sequence[Part], column: str) -> pd.Series | None:
    """The values of metadata ``column`` over the parts that have it, or None."""
    values = [part.items[column].dropna() for part in parts if column in part.items.columns]
    return pd.concat(values, ignore_index=True) if values else None


def _check_metadata_kinds(parts: Sequence[Part], frame: pd.DataFrame, known: dict[str, str | None]) -> None:
    """Refuse a write whose metadata column holds another kind of value than the space already stores.

    A column holding numbers in one write and text in another cannot be merged into one Parquet
    column later, so the mismatch is refused now, naming the column and the item.
    """
    for column in frame.columns:
        if column in BASE_COLUMNS:
            continue
        values = frame[column].dropna()
        if values.empty:
            continue
        new_kind = value_kind(values)
        if new_kind is None:
            raise SpaceError(f"metadata {column!r} mixes kinds of values in one write ({', '.join(sorted({type(v).__name__ for v in values}))}); give one kind per key")
        if column not in known:
            existing = _existing_column(parts, column)
            if existing is None:
                continue
            known[column] = value_kind(existing)
        if known[column] is not None and known[column] != new_kind:
            example = values.iloc[0]
            raise SpaceError(
                f"metadata {column!r} holds {known[column]} values in this space, but this write gives {new_kind} ({example!r}); "
                f"give {known[column]} values for {column!r}, or use another key"
            )


def _check_on_error(on_error: Any) -> None:
    if on_error not in ("raise", "skip"):
        raise SpaceError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _input_list(values: Any, what: str) -> list:
    """``values`` as a list; a lone string, path, image or other non-collection is refused (it is not a list of inputs)."""
    if isinstance(values, (str, bytes, Path, Image.Image, dict)) or not hasattr(values, "__iter__"):
        raise SpaceError(f"{what} must be a list, got a single {type(values).__name__}; wrap it in a list")
    return list(values)


def _text_list(texts: Any) -> list[str]:
    """Non-empty Unicode strings, or a SpaceError naming the first bad one."""
    texts = _input_list(texts, "texts")
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise SpaceError(f"text #{position + 1} is a {type(text).__name__}, not a string; nothing was added")
        if not text.strip():
            raise SpaceError(f"text #{position + 1} is empty; give non-empty text (nothing was added)")
        if not is_unicode(text):
            raise SpaceError(f"text #{position + 1} is not valid Unicode; give UTF-8 text (nothing was added)")
    return texts


def _label_list(labels: Any) -> list[str] | None:
    if labels is None:
        return None
    labels = _input_list(labels, "labels")
    for label in labels:
        if not isinstance(label, (str, numbers.Number)) or (isinstance(label, str) and not is_unicode(label)):
            raise SpaceError(f"labels must be text, got {label!r}")
    return [str(label) for label in labels]


def _id_list(ids: Any) -> list[int]:
    """Item ids as ints: one integer or a list of integers; strings are refused (never split into digits)."""
    if isinstance(ids, numbers.Integral) and not isinstance(ids, bool):
        return [int(ids)]
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise SpaceError(f"give item ids as an integer or a list of integers, got {ids!r}")
    values = list(ids)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise SpaceError(f"item ids are integers, got {value!r}; nothing was removed")
    return [int(value) for value in values]


def _input_name(value: Any, position: int, what: str) -> str:
    """How to name an input in an error: its path, or its position."""
    if isinstance(value, (str, Path)):
        return printable(str(value))
    return f"{what} #{position + 1}"


def _handle_errors(errors: list[str], on_error: str) -> None:
    """Raise one SpaceError naming every bad input (``"raise"``), or log them (``"skip"``)."""
    if on_error not in ("raise", "skip"):
        raise SpaceError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not errors:
        return
    if on_error == "raise":
        raise SpaceError(f"{len(errors)} input(s) could not be used, nothing was added: " + "; ".join(errors))
    for error in errors:
        logger.warning("skipped %s", error)


@dataclass
class _Batch:
    """Embedded items ready to be written: ``(n, D)`` vectors row-aligned with item rows."""

    vectors: np.ndarray
    rows: list[dict]
    pictures: list[Image.Image] = field(default_factory=list)  # the first len(pictures) rows are images
    in_memory: list[bool] = field(default_factory=list)
    clips: list[tuple[int, np.ndarray, int]] = field(default_factory=list)  # (row, samples, rate) of in-memory audio
    errors: list[str] = field(default_factory=list)

    def without_nonfinite(self) -> "_Batch":
        """The batch minus rows whose vector is not finite (e.g. a file the model could not handle), each named in ``errors``."""
        finite = np.isfinite(self.vectors).all(axis=1) if len(self.vectors) else np.ones(0, bool)
        if finite.all():
            return self
        keep = np.flatnonzero(finite)
        errors = self.errors + [f"{self.rows[row].get('source') or self.rows[row]['label']}: the model gave a non-finite vector for it, so it cannot be stored" for row in np.flatnonzero(~finite)]
        position = {int(old): new for new, old in enumerate(keep)}
        return _Batch(
            self.vectors[keep],
            [self.rows[row] for row in keep],
            pictures=[picture for row, picture in enumerate(self.pictures) if finite[row]],
            in_memory=[flag for row, flag in enumerate(self.in_memory) if finite[row]],
            clips=[(position[row], samples, rate) for row, samples, rate in self.clips if finite[row]],
            errors=errors,
        )

    @staticmethod
    def concat(batches: list["_Batch"], dim: int) -> "_Batch":
        vectors = np.concatenate([batch.vectors.reshape(-1, dim) for batch in batches])
        offsets = np.cumsum([0] + [len(batch.rows) for batch in batches])
        images = [batch for batch in batches if batch.pictures]
        if len(images) > 1 or (images and images[0] is not batches[0]):
            raise ValueError("only the first batch may hold images")  # pictures must stay the leading rows
        return _Batch(
            vectors,
            [row for batch in batches for row in batch.rows],
            pictures=[picture for batch in batches for picture in batch.pictures],
            in_memory=[flag for batch in batches for flag in batch.in_memory],
            clips=[(offset + row, samples, rate) for offset, batch in zip(offsets, batches) for row, samples, rate in batch.clips],
            errors=[error for batch in batches for error in batch.errors],
        )


class Space:
    """Items and vectors from one model, with cosine-similarity search.

    Use :meth:`create` or :meth:`open`; the constructor is internal.

    Attributes:
        path: the space folder (absolute).
        store: its :class:`~embedspace.store.SpaceStore`, through which every file in the
            folder is read and written (stored maps too: see :mod:`embedspace.maps`).
    """

    def __init__(self, store: SpaceStore, snapshot: Snapshot, model: EmbeddingModel | None = None):
        self.store = store
        self.path = store.path
        self._model = model
        self._ann = SpaceIndex(store)
        self._adopt(snapshot)

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls, path: str | Path, model: str | EmbeddingModel = DEFAULT_MODEL, factory: str | None = None, vector_dtype: str = "float32"
    ) -> "Space":
        """Create an empty space at ``path`` (a new or empty folder) for ``model`` (a name, folder or loaded model).

        Args:
            factory: FAISS factory string of the index, or ``"auto"`` (the default): exact search below
                :attr:`~embedspace.index.IndexSettings.ann_threshold` items, an IVF-HNSW-PQ index with
                exact re-ranking above it.
            vector_dtype: ``"float32"`` (default) or ``"float16"`` (half the disk, scores within about 1e-3).
        """
        store = SpaceStore(path)
        store.check_new()  # before loading the model
        if isinstance(model, EmbeddingModel):
            loaded, source = model, model.model_id
        elif isinstance(model, (str, Path)):
            loaded = EmbeddingModel.load(model)
            source = str(model) if str(model) in list_models() else str(Path(model).absolute())
        else:
            raise SpaceError(f"model must be a model name, a model folder or an EmbeddingModel, got a {type(model).__name__}")
        if factory is not None and not isinstance(factory, str):
            raise SpaceError(f"factory must be a FAISS factory string such as 'Flat', got {factory!r}")
        factory = factory or AUTO
        try:
            validate_factory(factory, loaded.embed_dim)  # before anything is written
        except ValueError as error:
            raise SpaceError(str(error)) from None
        if vector_dtype not in ("float32", "float16"):
            raise SpaceError(f"vector_dtype must be 'float32' or 'float16', got {vector_dtype!r}")
        model_entry = {"id": loaded.model_id, "source": source, "fingerprint": loaded.fingerprint, "embed_dim": loaded.embed_dim}
        manifest = store.create(model_entry, factory, vector_dtype)
        logger.info("created space %s with model %s", store.path, loaded.model_id)
        return cls(store, Snapshot.empty(manifest), loaded)

    @classmethod
    def open(cls, path: str | Path, model: EmbeddingModel | None = None) -> "Space":
        """Open an existing space. ``model`` optionally shares an already loaded model (it must match).

        Raises:
            SpaceError: no space there, or a damaged manifest or part (the message names the file).
        """
        if not isinstance(path, (str, Path)):
            raise SpaceError(f"a space is opened by its folder path, got a {type(path).__name__}")
        if model is not None and not isinstance(model, EmbeddingModel):
            raise SpaceError(f"model must be a loaded EmbeddingModel (or None), got a {type(model).__name__}")
        store = SpaceStore(path)
        space = cls(store, store.read())
        if model is not None:
            space._check_model(model)
            space._model = model
        return space

    def _adopt(self, snapshot: Snapshot) -> None:
        """Take ``snapshot`` as the in-memory view of the space (all at once, so a failed load changes nothing)."""
        self._manifest = snapshot.manifest
        self._rows = StoredRows(snapshot)
        self._removed = snapshot.removed
        self._derived: dict[str, Any] = {}

    def refresh(self) -> bool:
        """Reload from disk if another process wrote to the space; returns True when it did.

        The new manifest and its parts are loaded first and adopted together: if loading
        fails, this Space keeps its previous consistent view and the error is raised.
        """
        manifest = self.store.read_manifest()
        if manifest["revision"] == self._manifest["revision"] and manifest.get("segments") == self._manifest.get("segments"):
            return False
        self._adopt(self.store.read())
        return True

    # -- properties ----------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self._manifest["model"]["embed_dim"])

    @property
    def model_id(self) -> str:
        return self._manifest["model"]["id"]

    @property
    def revision(self) -> int:
        """Increases with every acknowledged write; derived data (projections) compare against it."""
        return int(self._manifest["revision"])

    @property
    def factory(self) -> str:
        return self._manifest["index"]["factory"]

    @property
    def model(self) -> EmbeddingModel:
        """The space's model, loaded on first use and checked against the one the space was built with."""
        if self._model is None:
            model = EmbeddingModel.load(self._model_source())
            self._check_model(model)
            self._model = model
        return self._model

    def _model_source(self) -> str | Path:
        """Where to load the space's model from: a registry name, or a model folder inside the space.

        A space folder is untrusted, so its manifest cannot make embedspace load a model from
        anywhere else on this machine; such a space is opened with its model given explicitly.
        """
        stored = self._manifest["model"]
        if stored["source"] in list_models():
            return stored["source"]
        inside = self.store.model_folder(stored["source"])
        if inside is not None:
            return inside
        if stored["id"] in list_models():
            return stored["id"]
        raise SpaceError(
            f"space {self.path} was built with model {stored['id']!r} from {stored['source']!r}, which is not a registered model; "
            f"for safety a space cannot name a model folder outside itself: load it yourself and pass it, "
            f"Space.open(path, model=EmbeddingModel.load(FOLDER)), or use `--model FOLDER` on the command line"
        )

    def _check_model(self, model: EmbeddingModel) -> None:
        stored = self._manifest["model"]
        if model.model_id != stored["id"] or model.embed_dim != stored["embed_dim"]:
            raise SpaceError(
                f"space {self.path} was built with model {stored['id']!r} ({stored['embed_dim']}-d); "
                f"model {model.model_id!r} ({model.embed_dim}-d) cannot query or add to it; use {stored['id']!r} or create a new space"
            )
        if model.fingerprint != stored["fingerprint"]:
            raise SpaceError(
                f"space {self.path} was built with {stored['id']!r} weights {stored['fingerprint']}, but the installed "
                f"{model.model_id!r} has weights {model.fingerprint}; its vectors are not comparable: rebuild the space"
            )

    @property
    def _all_items(self) -> pd.DataFrame:
        """All stored rows, removed ones too (ids increasing)."""
        return self._rows.items

    def _live(self) -> np.ndarray:
        """Boolean mask over stored rows: True where not removed."""
        return self._rows.live

    @property
    def items(self) -> pd.DataFrame:
        """Live items: columns ``id, modality, label, source`` plus metadata columns; row-aligned with :attr:`vectors`."""
        return self._all_items[self._live()].reset_index(drop=True)

    @property
    def vectors(self) -> np.ndarray:
        """Live vectors, ``(N, D)`` float32, L2-normalised, row-aligned with :attr:`items`.

        This reads every vector into memory; for large spaces use :meth:`iter_vectors` or :meth:`vectors_of`.
        """
        return self._rows.gather(self._rows.live_positions())

    def vectors_of(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The ``(n, D)`` float32 vectors of live items ``ids``, in that order (reads only their rows).

        Raises:
            SpaceError: an id is not a live item of this space.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        positions = self._rows.positions(ids)
        if (positions < 0).any():
            raise SpaceError(f"no item with id {int(ids[positions < 0][0])} in space {self.path}")
        return self._rows.gather(positions)

    def iter_vectors(self, batch_rows: int = 65_536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Live items in id order, ``batch_rows`` at a time: ``(ids (n,) int64, vectors (n, D) float32)``; memory stays flat."""
        return self._rows.iter_live(batch_rows)

    def __len__(self) -> int:
        return self._rows.live_count

    def __repr__(self) -> str:
        return f"Space({str(self.path)!r}, model={self.model_id!r}, items={len(self)})"

    def info(self) -> dict[str, Any]:
        """Summary for ``embedspace info``: path, model, dimension, counts, index, revision."""
        counts = self.items["modality"].value_counts().to_dict()
        return {
            "path": str(self.path),
            "model": self.model_id,
            "fingerprint": self._manifest["model"]["fingerprint"],
            "dim": self.dim,
            "metric": self._manifest["metric"],
            "index": self.factory,
            "search": self._search_kind(),
            "items": len(self),
            "by_modality": {modality: int(counts.get(modality, 0)) for modality in MODALITIES},
            "removed": int(len(self._removed)),
            "revision": self.revision,
        }

    def source_path(self, item_id: int) -> Path | None:
        """The file behind an image or audio item (absolute), or None for text."""
        return self.store.source_path(self._row(item_id)["source"])

    def thumbnail_path(self, item_id: int) -> Path | None:
        """The stored preview of an image item (absolute, inside the space's thumbnails), or None."""
        return self.store.thumbnail_path(item_id)

    def _search_kind(self) -> str:
        factory = self._ann.wanted(self._manifest, len(self))
        return "exact" if factory is None else f"approximate ({factory}) with exact re-ranking"

    # -- the index -----------------------------------------------------------------------------

    def build_index(self, factory: str | None = None, train_sample: int | None = None, engine: str = "local",
                    workers: int | None = None, address: str | None = None) -> str:
        """(Re)build the approximate index: train on a sample, add every live item, save; returns the factory used.

        Args:
            factory: FAISS factory string (stored as the space's factory); None picks one by size
                (:func:`~embedspace.index.choose_factory`), an IVF index even below the threshold.
            train_sample: training-sample size (default 64 vectors per inverted list).
            engine: ``"local"`` or ``"ray"``: with Ray, shards are filled on workers from one
                trained empty index and merged (see :mod:`embedspace.engine`).
            workers, address: Ray workers and cluster address (``engine="ray"``).

        Raises:
            SpaceError: an invalid factory string, too few items to train it, or an empty space (nothing is written).
        """
        from embedspace.index import IndexSettings, choose_factory

        if factory is not None and not isinstance(factory, str):
            raise SpaceError(f"factory must be a FAISS factory string, got {factory!r}")
        chosen = factory or choose_factory(len(self), self.dim, IndexSettings(ann_threshold=1))
        try:
            validate_factory(chosen, self.dim)
        except ValueError as error:
            raise SpaceError(str(error)) from None
        if chosen in (AUTO, "Flat"):
            raise SpaceError(f"{chosen!r} needs no index build: search is exact; give an approximate factory such as 'IVF1024_HNSW32,PQ48'")
        if len(self) == 0:
            raise SpaceError(f"space {self.path} is empty; add items before building its index")
        if train_sample is not None and (isinstance(train_sample, bool) or not isinstance(train_sample, numbers.Integral) or train_sample < 1):
            raise SpaceError(f"train_sample must be a positive integer, got {train_sample!r}")
        add_batches = None
        if engine != "local":
            from embedspace.engine import sharded_index_filler

            add_batches = sharded_index_filler(self.path, engine=engine, workers=workers, address=address)
        self.refresh()
        try:
            self._ann.build(self._manifest, self._rows, chosen, train_sample, add_batches)
        except ValueError as error:
            raise SpaceError(f"cannot build index {chosen!r} for {len(self)} items: {error}") from None
        # record the factory when given, or when the size rule alone would search exactly (or the index built here would go unused)
        keep = factory if factory is not None else (chosen if self._ann.wanted(self._manifest, len(self)) != chosen else None)
        if keep is not None and keep != self.factory:
            with self.store.lock():
                self._begin_write()
                manifest = dict(self._manifest, revision=self.revision + 1, index={"factory": keep})
                self._commit(manifest, self._rows.parts, self._removed, self._manifest.get("counts", {}))
            self._ann.stamp = dict(self._ann.stamp, revision=self.revision)
            self._ann.save(self._manifest)
        return chosen

    def evaluate_index(self, queries: int | np.ndarray = 200, k: int = 10, seed: int = 0) -> IndexEvaluation:
        """Recall@k of the current index against exact search, queries/s of both, and index bytes per vector.

        ``queries``: a count (stored vectors of that many random live items) or ``(Q, D)`` query vectors.

        Raises:
            SpaceError: the space searches exactly (nothing to evaluate) or has no items.
        """
        index = self._ann.current(self._manifest, self._rows)
        if index is None:
            raise SpaceError(f"space {self.path} searches exactly (index {self.factory!r}, {len(self)} items); "
                             f"build an approximate index first: `embedspace index build {self.path}`")
        return evaluate_index(self._ann, index, self._rows, queries, k, seed)

    # -- queries -------------------------------------------------------------------------------

    def _row(self, item_id: int) -> pd.Series:
        position = self._position(item_id)
        return self._all_items.iloc[position]

    def _position(self, item_id: Any) -> int:
        if isinstance(item_id, bool) or not isinstance(item_id, numbers.Integral):
            raise SpaceError(f"item ids are integers, got {item_id!r}")
        position = int(self._rows.positions(np.array([item_id], np.int64))[0]) if -2**63 <= item_id < 2**63 else -1
        if position < 0:
            raise SpaceError(f"no item with id {item_id} in space {self.path}; see `embedspace info` or space.items for ids")
        return position

    def embed(self, query: Any) -> np.ndarray:
        """The ``(D,)`` float32 unit vector of a query.

        ``query`` is a string (text, or the path of an image or audio file), a
        :class:`pathlib.Path`, a PIL image, an item id (int), or a vector of length D.
        """
        if isinstance(query, numbers.Integral) and not isinstance(query, bool):
            return self._rows.gather(np.array([self._position(query)]))[0]
        if isinstance(query, Image.Image):
            try:
                return _finite(self.model.embed_images([load_image(query)])[0], "the query image")
            except ImageDecodeError as error:
                raise SpaceError(str(error)) from None
        if isinstance(query, (np.ndarray, list, tuple)) and not isinstance(query, str):
            try:
                return unit_vector(query, self.dim, "the query vector")
            except ValueError as error:
                raise SpaceError(str(error)) from None
        if isinstance(query, (str, Path)):
            path = Path(query)
            kind = modality_of(path)
            looks_like_file = isinstance(query, Path) or (kind is not None and " " not in str(query).strip())
            if looks_like_file or (len(str(query)) < 4096 and path.is_file()):
                if not path.is_file():
                    raise SpaceError(f"{path}: no such file; give an existing image or audio file, or plain text")
                try:
                    if kind == "image":
                        return _finite(self.model.embed_images([load_image(path)])[0], str(path))
                    if kind == "audio":
                        audio = self._decode_audio(path)
                        return _finite(self.model.embed_audio([(audio.samples, audio.sample_rate)])[0], str(path))
                except (ImageDecodeError, AudioDecodeError) as error:
                    raise SpaceError(str(error)) from None
                raise SpaceError(
                    f"{path}: unsupported file type {path.suffix!r}; images: {', '.join(sorted(IMAGE_SUFFIXES))}; audio: {', '.join(sorted(AUDIO_SUFFIXES))}"
                )
            if not str(query).strip():
                raise SpaceError("the query is empty; give some text, a file path, an item id or a vector")
            if not is_unicode(str(query)):
                raise SpaceError("the query text is not valid Unicode; give UTF-8 text")
            return _finite(self.model.embed_text([str(query)])[0], "the query text")
        raise SpaceError(f"cannot search with a {type(query).__name__}; give text, a file path, an item id, a PIL image or a vector")

    def _allowed(self, modality: str | None) -> np.ndarray | None:
        """``(N,)`` bool mask of live rows of ``modality`` (None: no restriction)."""
        if modality is None:
            return None
        if modality not in MODALITIES:
            raise SpaceError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
        key = f"allowed:{modality}"
        if key not in self._derived:
            self._derived[key] = self._live() & (self._all_items["modality"].to_numpy() == modality)
        return self._derived[key]

    def search(self, query: Any, k: int = 10, modality: str | None = None, per_modality: int | None = None) -> pd.DataFrame:
        """The ``k`` items most similar to ``query`` (see :meth:`embed`), best first.

        Args:
            query: text, a path to an image or audio file, an item id, a PIL image, or a ``(D,)`` vector.
            k: number of results (fewer if the space holds fewer).
            modality: restrict results to ``"text"``, ``"image"`` or ``"audio"``.
            per_modality: instead of one ranking, the best ``per_modality`` of each modality the
                space holds, grouped (text, image, audio), each group best first. Texts usually
                sit closer to a text query than any image or clip does (the modality gap), so
                this is how a search over all modalities shows all of them.

        Returns:
            DataFrame with columns ``id, modality, label, score, source`` and the items'
            metadata columns; ``score`` is cosine similarity in [-1, 1].
        """
        return self._search_grouped(self.embed(query), k, modality, per_modality, exclude=None)

    def neighbors(self, item_id: int, k: int = 10, modality: str | None = None, per_modality: int | None = None) -> pd.DataFrame:
        """The ``k`` nearest other items of ``item_id`` (same columns and options as :meth:`search`)."""
        self._position(item_id)
        return self._search_grouped(self.embed(item_id), k, modality, per_modality, exclude=int(item_id))

    def modality_gap(self, pair_column: str | None = "key") -> pd.DataFrame:
        """How far apart the space's modalities sit: per pair of modalities, matched vs unmatched cosine and centroid distance.

        Items of two modalities sharing a value of ``pair_column`` (the demo space's ``key``)
        are matched pairs. See :mod:`embedspace.modality_gap`.

        Returns:
            DataFrame with columns ``first, second, matched, unmatched, centroid_distance, pairs``
            (``matched`` is NaN for two modalities without pairs).
        """
        from embedspace.modality_gap import ModalityGap, modality_gap

        gaps = modality_gap(self.items, self.vectors_of, pair_column)
        return pd.DataFrame([asdict(gap) for gap in gaps], columns=[column.name for column in fields(ModalityGap)])

    def clusters(self, n_components: int = 2) -> pd.DataFrame:
        """The named clusters of the space's stored map, largest first.

        Found on the map's coordinates and named from the nearest text items in the
        embedding space when the map was computed (``embedspace project``); see
        :mod:`embedspace.clusters`. A map stale by a few items still lists its clusters.

        Returns:
            DataFrame with columns ``cluster, name, size, x, y`` (and ``z`` for a 3-D map).

        Raises:
            SpaceError: the space has no stored map of that dimension, or one computed before clusters were.
        """
        stored = self.store.read_map(n_components, revision=None, load_model=False)
        if stored is None:
            raise SpaceError(f"space {self.path} has no {n_components}-d map yet; compute it with `embedspace project {self.path}`")
        if stored.clusters is None:
            raise SpaceError(f"the {n_components}-d map of {self.path} was computed without clusters; recompute it with `embedspace project {self.path} --refit`")
        axes = ("x", "y", "z")[:n_components]
        rows = [{"cluster": info.cluster, "name": info.name, "size": info.size, **dict(zip(axes, info.centre))} for info in stored.cluster_info]
        return pd.DataFrame(rows, columns=["cluster", "name", "size", *axes])

    def _search_grouped(self, vector: np.ndarray, k: int, modality: str | None, per_modality: int | None, exclude: int | None) -> pd.DataFrame:
        if per_modality is None:
            return self._search_vector(vector, k, modality, exclude)
        if modality is not None:
            raise SpaceError("give either modality (results of one modality) or per_modality (the best of each), not both")
        counts = self._manifest.get("counts") or self.items["modality"].value_counts().to_dict()
        groups = [self._search_vector(vector, per_modality, name, exclude) for name in MODALITIES if counts.get(name, 0) > 0]
        return pd.concat(groups, ignore_index=True) if groups else self._search_vector(vector, per_modality, None, exclude)

    def _search_vector(self, vector: np.ndarray, k: int, modality: str | None, exclude: int | None) -> pd.DataFrame:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise SpaceError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        mask = self._allowed(modality)
        wanted = min(k + (exclude is not None), max(len(self), 1))
        index = self._ann.current(self._manifest, self._rows)
        if index is None:
            scores, positions = self._rows.exact(vector[None, :], wanted, mask)
        else:
            allowed_ids = None if mask is None else self._rows.ids[mask]
            scores, positions = self._ann.search(index, self._rows, vector[None, :], wanted, allowed_ids)
        scores, positions = scores[0], positions[0]
        keep = positions >= 0
        if exclude is not None:
            keep &= self._rows.ids[np.maximum(positions, 0)] != exclude
        scores, positions = scores[keep][:k], positions[keep][:k]
        columns = self._columns()
        result = {name: values[positions] for name, values in columns.items()}
        result["score"] = scores.astype(np.float32)
        order = ["id", "modality", "label", "score", "source"] + [name for name in columns if name not in BASE_COLUMNS]
        return pd.DataFrame({name: result[name] for name in order}, copy=False)

    def _columns(self) -> dict[str, np.ndarray]:
        """The items table as numpy columns (cached until the next write): cheap row gathers for search results."""
        if "columns" not in self._derived:
            self._derived["columns"] = {name: self._all_items[name].to_numpy() for name in self._all_items.columns}
        return self._derived["columns"]

    # -- generation ----------------------------------------------------------------------------

    def generate(
        self,
        query: Any,
        generator: Any = None,
        n: int = 4,
        seed: int | None = None,
        *,
        options: SamplingOptions | None = None,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        best_of: int = 1,
        **sampling: Any,
    ) -> GenerationResult:
        """Generate ``n`` images from the point of ``query`` (anything :meth:`search` accepts).

        Args:
            query: text, a file path, an item id, a PIL image or a ``(D,)`` vector.
            generator: a loaded :class:`embedspace.Generator`, or a name or folder for
                ``Generator.load``; it must have been trained for this space's model.
                None (default): :meth:`default_generator`, the one the space records
                (:meth:`set_generator`), else the one registered for the model
                (``emoji-mini`` for ``emoji-mini``).
            n: images, >= 1.
            seed: image k uses seed ``seed + k`` (default: ``options.seed``, 0).
            options: a :class:`embedspace.SamplingOptions` (guidance, temperature, top_k,
                top_p, plausibility, seed); keyword ``sampling`` values named like its
                fields (``guidance=2.0``) replace them.
            on_token, batch_size: see :meth:`embedspace.Generator.generate`.
            best_of: draw ``best_of * n`` images and keep the ``n`` whose embedding (by the
                space's model) is closest to the point, closest first (default 1: no
                reranking; each kept image keeps its own seed).

        Returns:
            The generator's ``GenerationResult``. Each image remembers its condition: passing
            the images to :meth:`add_images` records ``generated=True``, the condition and the
            fidelity (cosine between the image's embedding and its condition).

        Raises:
            SpaceError: no generator named and none registered for the model (the message
                says how to get one), or a bad query.
            ValueError: a generator for another model, or bad options.
        """
        from embedspace.generator import GenerationRequest

        options = _sampling_options(options, seed, sampling)
        generator = self._generator(generator)
        if isinstance(best_of, bool) or not isinstance(best_of, int) or best_of < 1:
            raise ValueError(f"best_of={best_of!r}: use an integer >= 1 (images drawn per image kept)")
        request = GenerationRequest(self.embed(query), n=n * best_of, descriptions=_describe(query))
        result = generator.generate(request, options, on_token=on_token, batch_size=batch_size)
        if best_of == 1:
            return result
        return result.closest(self.model.embed_images(result.images, progress=False), n * best_of, n)

    def generate_between(
        self,
        start: Any,
        end: Any,
        generator: Any = None,
        steps: int = 8,
        seed: int | None = None,
        *,
        options: SamplingOptions | None = None,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        **sampling: Any,
    ) -> GenerationResult:
        """One image at each of ``steps`` points on the slerp path from ``start`` to ``end`` (queries as in :meth:`search`).

        Every step uses the same seed, so the strip changes only as the condition moves.
        ``generator``, ``seed``, ``options`` and the rest are as in :meth:`generate`.
        Returns a ``GenerationResult`` with one image per step, in path order.
        """
        from embedspace.generator import GenerationRequest

        options = _sampling_options(options, seed, sampling)
        generator = self._generator(generator)
        request = GenerationRequest.between(self.embed(start), self.embed(end), steps, _describe(start), _describe(end))
        return generator.generate(request, options, on_token=on_token, batch_size=batch_size)

    def generate_composed(
        self,
        queries: Sequence[Any],
        generator: Any = None,
        n: int = 4,
        seed: int | None = None,
        *,
        options: SamplingOptions | None = None,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        **sampling: Any,
    ) -> GenerationResult:
        """``n`` images that answer to every one of ``queries`` at once (each as in :meth:`search`).

        Each query is a part of what is asked for ("red shape", "circle", "shape at the top
        left"), and reaches the generator's transformer as prefix tokens of its own, so a
        combination it never saw can be asked for one attribute at a time. The generator
        must be one trained to compose (the shipped ``shapes`` takes up to 3 points;
        ``emoji-mini`` takes 1). The images record the normalised sum of the queries' points
        as their condition. ``generator``, ``seed``, ``options`` and the rest are as in
        :meth:`generate`.

        Raises:
            SpaceError: no queries, or a bad one; as :meth:`generate` otherwise.
            ValueError: more queries than the generator takes (the message says how many).
        """
        from embedspace.generator import GenerationRequest

        if isinstance(queries, (str, bytes, Path)) or not isinstance(queries, Sequence) or len(queries) == 0:
            raise SpaceError("generate_composed takes a list of queries (e.g. ['red shape', 'circle']); for one query use generate")
        options = _sampling_options(options, seed, sampling)
        generator = self._generator(generator)
        parts = np.stack([self.embed(query) for query in queries])  # (K, D)
        request = GenerationRequest.composed(parts, n=n, descriptions=[_describe(query) for query in queries])
        return generator.generate(request, options, on_token=on_token, batch_size=batch_size)

    def edit(
        self,
        image: Any,
        query: Any,
        keep: str | np.ndarray = "top",
        generator: Any = None,
        n: int = 4,
        seed: int | None = None,
        *,
        options: SamplingOptions | None = None,
        on_token: OnToken | None = None,
        batch_size: int = 16,
        **sampling: Any,
    ) -> GenerationResult:
        """Redraw part of an image toward the point of ``query``, keeping the ``keep`` region token for token.

        Args:
            image: an image item's id, an image file path or a PIL image (an edited image
                can be edited again: a chain of edits).
            query: the new point, anything :meth:`search` accepts.
            keep: "top", "bottom", "left", "right", "centre" or a ``(grid, grid)`` boolean
                mask at the generator's token resolution; those tokens are kept exactly and
                the others are sampled one at a time seeing them.
            generator, n, seed, options, on_token, batch_size, sampling: as in :meth:`generate`.

        Returns:
            The generator's ``GenerationResult``, as :meth:`generate` returns it.

        Raises:
            SpaceError: an id that is not an image item of this space, a bad query, or no generator.
            ImageDecodeError: an image file that is missing or unreadable.
            ValueError: an unknown region or a mask of the wrong shape (the message names the shape).
        """
        from embedspace.generator import GenerationRequest

        options = _sampling_options(options, seed, sampling)
        generator = self._generator(generator)
        picture = self._image_to_edit(image)
        request = GenerationRequest(self.embed(query), n=n, descriptions=f"edit of {_describe(image)} toward {_describe(query)}")
        return generator.edit(picture, request, keep, options, on_token=on_token, batch_size=batch_size)

    def _image_to_edit(self, image: Any) -> Image.Image:
        """The pixels of an image item, of an image file, or a PIL image itself."""
        if isinstance(image, numbers.Integral) and not isinstance(image, bool):
            return self.item_image(int(image))
        return load_image(image)

    def item_image(self, item_id: int) -> Image.Image:
        """The RGB pixels of an image item: its file, or its stored thumbnail when the file is gone.

        Raises:
            SpaceError: the id is not an image item of this space, or neither its file nor a thumbnail exists.
            ImageDecodeError: the file is there but cannot be read.
        """
        row = self._row(int(item_id))
        if row["modality"] != "image":
            raise SpaceError(f"item {int(item_id)} is a {row['modality']} item; edit an image item, an image file or a PIL image")
        path = self.source_path(int(item_id))
        if path is None or not path.is_file():
            path = self.thumbnail_path(int(item_id))
        if path is None or not path.is_file():
            raise SpaceError(f"item {int(item_id)} has neither its image file nor a thumbnail in the space; edit the image file itself")
        return load_image(path)

    def set_generator(self, generator: str | Path | None) -> None:
        """Record the generator this space uses when none is named (``generate``, ``edit``, the dashboard).

        Args:
            generator: a shipped generator's name, a generator folder (it is used only while
                it holds the same files: see :mod:`embedspace.generator.recorded`), or None
                to forget the record (the model's registered generator applies again).

        Raises:
            SpaceError: no such name or folder, or a generator trained for another model.
        """
        from embedspace.generator.recorded import make_record

        record = None if generator is None else make_record(generator, self.path, self.model_id)
        with self.store.lock():
            self.store.write_generator_record(record)

    def default_generator(self) -> str | Path | None:
        """The generator used when none is named: the recorded one (a name or a checked folder), else the one
        registered for the space's model (``emoji-mini`` for ``emoji-mini``), else None.

        Raises:
            SpaceError: a recorded generator that cannot be used (a folder that is gone or changed; the message says what to do).
        """
        from embedspace.generator.recorded import resolve_record
        from embedspace.generator.registry import DEFAULT_GENERATORS

        record = self.store.read_generator_record()
        if record is not None:
            return resolve_record(record, self.path)
        return DEFAULT_GENERATORS.get(self.model_id)

    def _generator(self, generator: Any) -> Generator:
        """A loaded generator for this space's model: ``generator`` itself, loaded from a name or folder, or :meth:`default_generator`."""
        from embedspace.generator import Generator, default_generator

        if generator is None:
            generator = self.default_generator() or default_generator(self.model_id)
        if not isinstance(generator, Generator):
            generator = Generator.load(generator)
        generator.check_compatible(self.model_id)
        return generator

    # -- writes --------------------------------------------------------------------------------

    def add_texts(self, texts: Sequence[str], metadata: dict | Sequence[dict] | None = None) -> list[int]:
        """Embed and add strings; returns their new ids. Empty strings are refused (nothing is added)."""
        texts = _text_list(texts)
        rows = metadata_rows(metadata, len(texts))
        vectors = self.model.embed_text(texts) if texts else np.zeros((0, self.dim), np.float32)
        for row, text in zip(rows, texts):
            row.update(modality="text", label=text, source="")
        return self._append(_Batch(vectors, rows))

    def add_images(
        self,
        images: Sequence[str | Path | Image.Image],
        metadata: dict | Sequence[dict] | None = None,
        labels: Sequence[str] | None = None,
        on_error: str = "raise",
    ) -> list[int]:
        """Embed and add images (file paths or PIL images); returns their new ids.

        Args:
            images: paths to image files, or PIL images (stored inside the space under ``media/``).
            metadata: one dict per image, or one dict for all.
            labels: display labels; default the file name (or "image" for in-memory images).
            on_error: ``"raise"`` (default): if any image is unreadable, raise naming every bad
                file and add nothing. ``"skip"``: add the readable ones and log the bad ones by name.
        """
        _check_on_error(on_error)
        batch = self._prepare_images(_input_list(images, "images"), metadata, _label_list(labels))
        _handle_errors(batch.errors, on_error)
        return self._append(batch)

    def add_audio(
        self,
        sources: Sequence[str | Path | tuple[np.ndarray, int]],
        metadata: dict | Sequence[dict] | None = None,
        labels: Sequence[str] | None = None,
        on_error: str = "raise",
    ) -> list[int]:
        """Embed and add audio: file paths, or ``(samples, rate)`` arrays (stored inside the space under ``media/``).

        Returns their new ids. ``on_error`` as in :meth:`add_images`.
        """
        _check_on_error(on_error)
        batch = self._prepare_audio(_input_list(sources, "audio sources"), metadata, _label_list(labels))
        _handle_errors(batch.errors, on_error)
        return self._append(batch)

    def add_files(self, paths: Sequence[str | Path], texts: Sequence[str] = (), on_error: str = "raise") -> list[int]:
        """Add image and audio files (folders are searched recursively) and texts in one write.

        The modality comes from the file suffix; each item gets a ``folder`` metadata column
        (its parent folder's name). ``on_error`` as in :meth:`add_images`: with ``"raise"``
        nothing is added if any input is bad (every bad input is named).
        """
        _check_on_error(on_error)
        files, errors = collect_files(_input_list(paths, "paths"))
        images = [path for path in files if modality_of(path) == "image"]
        audio = [path for path in files if modality_of(path) == "audio"]
        texts = list(_input_list(texts, "texts"))
        kept_texts = []
        for position, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                errors.append(f"text #{position + 1} is {'empty' if isinstance(text, str) else 'not a string'}; give non-empty text")
            elif not is_unicode(text):
                errors.append(f"text #{position + 1} is not valid Unicode; give UTF-8 text")
            else:
                kept_texts.append(text)
        if errors and on_error == "raise":  # before any decoding: nothing will be added anyway
            _handle_errors(errors, on_error)
        image_batch = self._prepare_images(images, [{"folder": printable(path.parent.name)} for path in images], None)
        audio_batch = self._prepare_audio(audio, [{"folder": printable(path.parent.name)} for path in audio], None)
        text_vectors = self.model.embed_text(kept_texts) if kept_texts else np.zeros((0, self.dim), np.float32)
        text_batch = _Batch(text_vectors, [{"modality": "text", "label": text, "source": ""} for text in kept_texts])
        batch = _Batch.concat([image_batch, audio_batch, text_batch], self.dim).without_nonfinite()
        _handle_errors(errors + batch.errors, on_error)
        return self._append(batch)

    def _prepare_images(self, images: list, metadata: dict | Sequence[dict] | None, labels: list[str] | None) -> "_Batch":
        """Decode and embed images; unreadable ones are reported in ``errors``, not raised."""
        rows = metadata_rows(metadata, len(images))
        if labels is not None and len(labels) != len(images):
            raise SpaceError(f"got {len(labels)} labels for {len(images)} images")
        decoded, kept_rows, in_memory, errors = [], [], [], []
        for position, (image, row) in enumerate(zip(images, rows)):
            name = _input_name(image, position, "image")
            if isinstance(image, (str, Path)) and not is_unicode(str(image)):
                errors.append(f"{name}: the file name is not valid UTF-8, so it cannot be stored; rename the file")
                continue
            try:
                picture = load_image(image)
            except ImageDecodeError as error:
                errors.append(str(error))
                continue
            memory = isinstance(image, Image.Image)
            label = labels[position] if labels is not None else ("image" if memory else Path(image).stem)
            row.update(modality="image", label=str(label), source="" if memory else str(Path(image).resolve()))
            row.update(decode_notes(picture))
            decoded.append(picture)
            in_memory.append(memory)
            kept_rows.append(row)
        vectors = self.model.embed_images(decoded) if decoded else np.zeros((0, self.dim), np.float32)
        for row, picture, vector in zip(kept_rows, decoded, vectors):
            origin = provenance.read(picture)
            if origin is not None and np.isfinite(vector).all():  # made by a Generator: keep where it came from and how close it landed
                row.update(origin.columns(vector))
        return _Batch(vectors, kept_rows, pictures=decoded, in_memory=in_memory, errors=errors).without_nonfinite()

    def _decode_audio(self, source: Any) -> DecodedAudio:
        """A file path or ``(samples, rate)`` pair decoded at the model's rate (at most the read window of :mod:`embedspace.limits`).

        Raises:
            SpaceError: the space's model has no audio tower.
            AudioDecodeError: the input is not usable audio.
        """
        if self.model.audio is None:
            raise SpaceError(f"model {self.model_id!r} has no audio tower, so this space cannot hold audio")
        return decode_audio(source, self.model.audio.config.sample_rate)

    def _audio_notes(self, audio: DecodedAudio) -> dict[str, Any]:
        """Metadata saying how much of a long or loud clip the vector describes."""
        return audio_notes(audio.duration_seconds, audio.normalised, self.model.audio.config.max_seconds)

    def _prepare_audio(self, sources: list, metadata: dict | Sequence[dict] | None, labels: list[str] | None) -> "_Batch":
        """Decode and embed audio files or ``(samples, rate)`` pairs; unusable ones are reported in ``errors``, not raised."""
        rows = metadata_rows(metadata, len(sources))
        if labels is not None and len(labels) != len(sources):
            raise SpaceError(f"got {len(labels)} labels for {len(sources)} audio sources")
        if not sources:
            return _Batch(np.zeros((0, self.dim), np.float32), [])
        decoded, kept_rows, clips, errors = [], [], [], []
        for position, (source, row) in enumerate(zip(sources, rows)):
            name = _input_name(source, position, "audio")
            memory = isinstance(source, tuple)
            if not memory and not isinstance(source, (str, Path)):
                errors.append(f"{name}: give an audio file path or a (samples, rate) pair")
                continue
            if not memory and not is_unicode(str(source)):
                errors.append(f"{name}: the file name is not valid UTF-8, so it cannot be stored; rename the file")
                continue
            try:
                audio = self._decode_audio(source)
            except AudioDecodeError as error:
                errors.append(str(error))
                continue
            samples, rate = audio.samples, audio.sample_rate
            label = labels[position] if labels is not None else ("audio" if memory else Path(source).stem)
            row.update(modality="audio", label=str(label), source="" if memory else str(Path(source).resolve()))
            row.update(self._audio_notes(audio))
            if memory:
                clips.append((len(kept_rows), samples, rate))
            decoded.append((samples, rate))
            kept_rows.append(row)
        transcripts = self.model.transcribe(decoded) if decoded and self.model.transcriber is not None else None
        for row, transcript in zip(kept_rows, transcripts or ()):
            row["transcript"] = transcript  # what was said ("" for none), shown beside the clip and returned by search
        vectors = self.model.embed_audio(decoded, transcripts=transcripts) if decoded else np.zeros((0, self.dim), np.float32)
        return _Batch(vectors, kept_rows, clips=clips, errors=errors).without_nonfinite()

    def add_vectors(
        self,
        vectors: np.ndarray,
        labels: Sequence[str],
        modality: str = "text",
        metadata: dict | Sequence[dict] | None = None,
        model_id: str | None = None,
    ) -> list[int]:
        """Add precomputed ``(N, D)`` float32 vectors (normalised here). ``model_id``, if given, must be the space's model."""
        if model_id is not None and model_id != self.model_id:
            raise SpaceError(f"vectors from model {model_id!r} cannot go into space {self.path} built with {self.model_id!r}")
        if modality not in MODALITIES:
            raise SpaceError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
        try:
            matrix = unit_rows(vectors, self.dim)
        except ValueError as error:
            raise SpaceError(str(error)) from None
        labels = _label_list(labels) or []
        if len(labels) != len(matrix):
            raise SpaceError(f"got {len(labels)} labels for {len(matrix)} vectors")
        rows = metadata_rows(metadata, len(matrix))
        for row, label in zip(rows, labels):
            row.update(modality=modality, label=label, source="")
        return self._append(_Batch(matrix, rows))

    def _begin_write(self) -> None:
        """Under the lock: load what other processes wrote, then sweep what crashed writes left behind."""
        self.refresh()
        self.store.sweep(self._manifest)

    def _append(self, batch: "_Batch") -> list[int]:
        """Durably write one part (and its media) and the manifest that names it; then update memory.

        Files are written before the manifest; the store's pending marker names them first, so
        that if the process dies before the commit, the next write (which takes the lock) deletes them.
        Existing parts are never rewritten or copied (see :meth:`compact` for merging them).
        """
        vectors, rows = batch.vectors, batch.rows
        if not rows:
            return []
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(rows), self.dim)
        if not np.isfinite(vectors).all():
            bad = [rows[row]["label"] for row in np.flatnonzero(~np.isfinite(vectors).all(axis=1))]
            raise SpaceError(f"non-finite vectors for {', '.join(map(repr, bad[:5]))}; nothing was added")
        with self.store.lock():
            self._begin_write()
            start = int(self._manifest["next_id"])
            ids = np.arange(start, start + len(rows), dtype=np.int64)
            revision = self.revision + 1
            frame = pd.DataFrame(rows)
            frame.insert(0, "id", ids)
            frame = frame[list(BASE_COLUMNS) + [column for column in frame.columns if column not in BASE_COLUMNS]]
            _check_metadata_kinds(self._rows.parts, frame, self._derived.setdefault("kinds", {}))
            name = self.store.part_name(revision, compacted=False)
            self.store.reserve((int(ids[0]), int(ids[-1]) + 1), name)
            for slot, (picture, in_memory) in enumerate(zip(batch.pictures, batch.in_memory)):
                if in_memory:
                    frame.loc[slot, "source"] = self.store.write_image(int(ids[slot]), picture)
                self.store.write_thumbnail(int(ids[slot]), picture)
            for slot, samples, rate in batch.clips:
                frame.loc[slot, "source"] = self.store.write_audio(int(ids[slot]), samples, rate)
            stored = self.store.write_part(name, frame, vectors, self._vector_dtype)
            part = Part(name, stored, self.store.open_vectors(self.store.path / f"{name}.npy", len(stored), self.dim))
            parts, segments = self._compacted(self._rows.parts + (part,), revision)
            manifest = dict(self._manifest, revision=revision, next_id=int(ids[-1]) + 1, segments=segments)
            self._commit(manifest, parts, self._removed, _counted(self._manifest.get("counts", {}), stored["modality"], 1))
        return [int(item_id) for item_id in ids]

    @property
    def _vector_dtype(self) -> str:
        return self._manifest.get("vector_dtype", "float32")

    def _compacted(self, parts: tuple[Part, ...], revision: int) -> tuple[tuple[Part, ...], list[str]]:
        """``parts`` with runs of small neighbouring parts merged when there are more than the store allows; and their names."""
        runs = self.store.compaction_runs(parts)
        for run in reversed(runs):  # from the end, so earlier slots stay valid
            merged = self.store.merge_parts(self.store.part_name(revision, compacted=True, run=run[0]), parts[run[0] : run[-1] + 1],
                                            self._removed, self._vector_dtype, self.dim)
            parts = parts[: run[0]] + (merged,) + parts[run[-1] + 1 :]
        return parts, [part.name for part in parts]

    def _commit(self, manifest: dict[str, Any], parts: tuple[Part, ...], removed: np.ndarray, counts: dict[str, int]) -> None:
        """Durably replace the manifest with ``manifest`` (the acknowledgement), then adopt ``parts`` in memory."""
        manifest["counts"] = dict(counts, removed=int(len(removed)))
        manifest = self.store.commit(self._manifest, manifest)
        self._adopt(Snapshot(manifest, tuple(parts), removed))

    def remove(self, ids: int | Sequence[int]) -> int:
        """Tombstone items by id (ids are never reused); returns how many were removed.

        Args:
            ids: one id, or a list of ids (integers; strings are refused, not split into digits).

        Raises:
            SpaceError: an id is not an integer or not in the space (nothing is removed).
        """
        ids = _id_list(ids)
        with self.store.lock():
            self._begin_write()
            positions = np.array([self._position(item_id) for item_id in sorted(set(ids))], np.int64)
            removed = np.union1d(self._removed, np.asarray(ids, dtype=np.int64))
            revision = self.revision + 1
            manifest = dict(self._manifest, revision=revision, removed=self.store.write_tombstones(revision, removed))
            modalities = self._all_items["modality"].to_numpy()[positions]
            self._commit(manifest, self._rows.parts, removed, _counted(self._manifest.get("counts", {}), modalities, -1))
        return len(set(ids))

    def compact(self) -> int:
        """Merge every part into one, dropping removed items' rows; returns how many parts were merged.

        Readers keep working meanwhile: the old parts are retired, not deleted (see
        :mod:`embedspace.store`). Adds also merge runs of small parts on their own once a
        space holds more than :data:`~embedspace.store.MAX_SEGMENTS` parts.
        """
        with self.store.lock():
            self._begin_write()
            parts = self._rows.parts
            if len(parts) <= 1 and not len(self._removed):
                return len(parts)
            revision = self.revision + 1
            merged = self.store.merge_parts(self.store.part_name(revision, compacted=True), parts, self._removed, self._vector_dtype, self.dim)
            manifest = dict(self._manifest, revision=revision, segments=[merged.name])
            self._commit(manifest, (merged,), self._removed, self._manifest.get("counts", {}))
        return len(parts)

    # -- ingest (see embedspace.ingest) -------------------------------------------------------

    def ingest(
        self,
        inputs: str | Path | Sequence[str | Path],
        engine: str = "local",
        workers: int | None = None,
        address: str | None = None,
        on_error: str = "raise",
        progress: bool | None = None,
    ) -> "IngestResult":
        """Add folders, image/audio files and tables (CSV/Parquet with a ``text`` or ``path`` column) in blocks.

        ``engine="ray"`` encodes the blocks on a Ray actor pool (the model loaded once per
        actor), a local Ray by default or the cluster at ``address``; vectors equal the local
        engine's. Each block is one part, committed through the manifest; running the same
        ingest again after a crash skips the committed blocks. See :func:`embedspace.ingest.ingest`.

        Raises:
            SpaceError: missing inputs or bad rows (all named; nothing written) unless
                ``on_error="skip"``, a bad engine or worker count, or an unreachable address.
        """
        from embedspace.ingest import ingest

        return ingest(self, inputs, engine=engine, workers=workers, address=address, on_error=on_error, progress=progress)

    def begin_ingest(self, key: str, rows: int, block_rows: int) -> tuple[int, set[int]]:
        """Reserve ids ``[start, start + rows)`` for ingest ``key``, or find its earlier reservation (a re-run).

        Returns ``(start, done)``: the first reserved id and the blocks already committed. Block
        ``b`` holds ids ``start + b·block_rows`` up to ``start + (b + 1)·block_rows``.

        Raises:
            SpaceError: ``key`` is malformed, or was used with another plan.
        """
        if not self.store.is_ingest_key(key):
            raise SpaceError(f"an ingest key is 16 lowercase hex digits, got {key!r}")
        with self.store.lock():
            self._begin_write()
            record = self._manifest.get("ingests", {}).get(key)
            if record is not None:
                if (record["rows"], record["block_rows"]) != (rows, block_rows):
                    raise SpaceError(f"ingest {key} was planned with {record['rows']} rows in blocks of {record['block_rows']}, not {rows} in {block_rows}")
                return record["start"], set(record["done"])
            start = int(self._manifest["next_id"])
            record = {"start": start, "rows": int(rows), "block_rows": int(block_rows), "done": [], "finished": rows == 0}
            ingests = dict(self._manifest.get("ingests", {}), **{key: record})
            manifest = dict(self._manifest, revision=self.revision + 1, next_id=start + int(rows), ingests=ingests)
            self._commit(manifest, self._rows.parts, self._removed, self._manifest.get("counts", {}))
        return start, set()

    def commit_ingest(self, key: str, blocks: Sequence[int]) -> int:
        """Add the parts that ingest ``key`` wrote for ``blocks`` in one commit; blocks already committed are skipped.

        Returns how many items were added.

        Raises:
            SpaceError: no such ingest, a block out of its plan, or a part missing, damaged or holding ids outside its block.
        """
        with self.store.lock():
            self._begin_write()
            record = self._manifest.get("ingests", {}).get(key)
            if record is None:
                raise SpaceError(f"space {self.path} has no ingest {key!r}; start it with begin_ingest")
            blocks_total = -(-record["rows"] // record["block_rows"])
            new = sorted(set(int(block) for block in blocks) - set(record["done"]))
            added, counts, parts = 0, self._manifest.get("counts", {}), self._rows.parts
            for block in new:
                if not 0 <= block < blocks_total:
                    raise SpaceError(f"ingest {key} has blocks 0..{blocks_total - 1}, not {block}")
                name = self.store.ingest_part_name(key, block)
                try:
                    items, vectors = self.store.load_part(name, self.dim)
                except FileNotFoundError:
                    raise SpaceError(f"ingest {key}: block {block} has no part {name}; run the ingest again") from None
                low = record["start"] + block * record["block_rows"]
                ids = items["id"].to_numpy()
                if len(ids) and (ids[0] < low or ids[-1] >= min(low + record["block_rows"], record["start"] + record["rows"])):
                    raise SpaceError(f"{self.path / name}.parquet holds ids outside block {block} of ingest {key}")
                _check_metadata_kinds(parts, items, self._derived.setdefault("kinds", {}))
                if len(items):  # a block whose rows all failed wrote an empty part: done, but nothing to name
                    parts = parts + (Part(name, items, vectors),)
                counts = _counted(counts, items["modality"], 1)
                added += len(items)
            parts = tuple(sorted(parts, key=lambda part: part.first_id))
            revision = self.revision + 1
            parts, segments = self._compacted(parts, revision)
            done = sorted(set(record["done"]) | set(new))
            ingests = dict(self._manifest["ingests"], **{key: dict(record, done=done, finished=len(done) == blocks_total)})
            manifest = dict(self._manifest, revision=revision, segments=segments, ingests=ingests)
            self._commit(manifest, parts, self._removed, counts)
        return added

    def close(self) -> None:
        """Persist derived state (an approximate index caught up since it was saved). Spaces need no closing for durability."""
        if self._ann.index is not None and self._ann.unsaved:
            self._ann.save(self._manifest)

    def __enter__(self) -> "Space":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
