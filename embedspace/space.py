"""Space: a folder holding items and their vectors from one model, searchable with FAISS.

This module is the only code that knows the on-disk format::

    SPACE/
      manifest.json            format version, model id + fingerprint, dimension, metric,
                               index factory string, revision, next id, segment list, counts
      segments/<rev>.parquet   items added in one write: id, modality, label, source, metadata...
      segments/<rev>.npy       their vectors, float32 (n, D), L2-normalised, row-aligned
      removed-<rev>.npy        tombstoned ids (int64), if any
      thumbnails/<id>.png      small previews of image items
      media/<id>.png           images added from memory (e.g. generated ones)
      index.faiss, index.json  derived FAISS index (only for non-Flat factories) and its revision

Vectors and items are the source of truth; the index is rebuilt when missing or stale.
A write is acknowledged when ``manifest.json`` naming it has been durably replaced
(temporary file, fsync, rename), so a crash at any moment leaves the last
acknowledged state readable. Ids are int64, increasing, and never reused.
"""

from __future__ import annotations

import json
import logging
import numbers
import time
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from embedspace.durable import exclusive_lock, write_atomic, write_bytes_atomic
from embedspace.index import VectorIndex, as_matrix, default_factory
from embedspace.models import DEFAULT_MODEL, EmbeddingModel
from embedspace.models.audio import AudioDecodeError, load_audio
from embedspace.models.model import ImageDecodeError, load_image

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MODALITIES = ("text", "image", "audio")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"})
BASE_COLUMNS = ("id", "modality", "label", "source")
RESULT_COLUMNS = ("id", "modality", "label", "score", "source")
THUMBNAIL_SIZE = 96
#: Above this many segments, a write merges them into one.
MAX_SEGMENTS = 64


class SpaceError(ValueError):
    """Misuse of a Space a user can fix: missing folder, wrong model, unknown id..."""


#: Key in a generated PIL image's ``info`` holding its condition (set by :meth:`Space.generate`).
GENERATED_KEY = "embedspace_condition"


def _describe(query: Any) -> str:
    """A short human-readable description of a query, stored with generated images."""
    if isinstance(query, numbers.Integral):
        return f"item {int(query)}"
    if isinstance(query, Image.Image):
        return "image"
    if isinstance(query, (np.ndarray, list, tuple)):
        return "vector"
    return str(query)


def modality_of(path: Path) -> str | None:
    """``"image"`` or ``"audio"`` from a file's suffix, or None."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    return None


def _metadata_rows(metadata: dict | Sequence[dict] | None, count: int) -> list[dict]:
    if metadata is None:
        return [{} for _ in range(count)]
    if isinstance(metadata, dict):
        return [dict(metadata) for _ in range(count)]
    rows = [dict(row) for row in metadata]
    if len(rows) != count:
        raise SpaceError(f"got {len(rows)} metadata rows for {count} items; give one dict per item, or one dict for all")
    for row in rows:
        for key, value in row.items():
            if key in RESULT_COLUMNS:
                raise SpaceError(f"metadata key {key!r} is reserved; reserved names are {', '.join(RESULT_COLUMNS)}")
            if value is not None and not isinstance(value, (str, numbers.Number, bool)):
                row[key] = json.dumps(value)
    return rows


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


def collect_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[str]]:
    """Image and audio files under ``paths`` (folders searched recursively, sorted), and errors for bad paths."""
    files, errors = [], []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(child for child in path.rglob("*") if child.is_file() and modality_of(child) is not None)
        elif path.is_file():
            if modality_of(path) is None:
                errors.append(f"{path}: unsupported file type {path.suffix!r}; give images ({', '.join(sorted(IMAGE_SUFFIXES))}) or audio ({', '.join(sorted(AUDIO_SUFFIXES))})")
            else:
                files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


@dataclass
class _Batch:
    """Embedded items ready to be written: ``(n, D)`` vectors row-aligned with item rows."""

    vectors: np.ndarray
    rows: list[dict]
    pictures: list[Image.Image] = field(default_factory=list)  # the first len(pictures) rows are images
    in_memory: list[bool] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @staticmethod
    def concat(batches: list["_Batch"], dim: int) -> "_Batch":
        vectors = np.concatenate([batch.vectors.reshape(-1, dim) for batch in batches])
        return _Batch(
            vectors,
            [row for batch in batches for row in batch.rows],
            pictures=[picture for batch in batches for picture in batch.pictures],
            in_memory=[flag for batch in batches for flag in batch.in_memory],
        )


class Space:
    """Items and vectors from one model, with cosine-similarity search.

    Use :meth:`create` or :meth:`open`; the constructor is internal.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], model: EmbeddingModel | None = None):
        self.path = Path(path)
        self._manifest = manifest
        self._model = model
        self._load_tables()

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, model: str | EmbeddingModel = DEFAULT_MODEL, factory: str | None = None) -> "Space":
        """Create an empty space at ``path`` (a new or empty folder) for ``model`` (a name, folder or loaded model)."""
        path = Path(path)
        if (path / MANIFEST).exists():
            raise SpaceError(f"{path} already holds a space; open it with Space.open({str(path)!r})")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise SpaceError(f"{path} exists and is not an empty folder; choose a new path for the space")
        if isinstance(model, EmbeddingModel):
            loaded, source = model, model.model_id
        else:
            loaded, source = EmbeddingModel.load(model), str(model)
        factory = factory or default_factory(0)
        VectorIndex(loaded.embed_dim, factory)  # validates the factory string before anything is written
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": {"id": loaded.model_id, "source": source, "fingerprint": loaded.fingerprint, "embed_dim": loaded.embed_dim},
            "metric": "inner_product",
            "index": {"factory": factory},
            "revision": 0,
            "next_id": 0,
            "segments": [],
            "removed": None,
            "counts": {},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for folder in ("segments", "thumbnails", "media"):
            (path / folder).mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path / MANIFEST, json.dumps(manifest, indent=2).encode())
        logger.info("created space %s with model %s", path, loaded.model_id)
        return cls(path, manifest, loaded)

    @classmethod
    def open(cls, path: str | Path, model: EmbeddingModel | None = None) -> "Space":
        """Open an existing space. ``model`` optionally shares an already loaded model (it must match)."""
        path = Path(path)
        manifest = cls._read_manifest(path)
        space = cls(path, manifest)
        if model is not None:
            space._check_model(model)
            space._model = model
        return space

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any]:
        if not path.is_dir():
            raise SpaceError(f"no space at {path}: the folder does not exist; create one with `embedspace create {path}`")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except FileNotFoundError:
            raise SpaceError(f"{path} is not a space (no {MANIFEST}); create one with `embedspace create {path}`") from None
        except json.JSONDecodeError as error:
            raise SpaceError(f"{path / MANIFEST} is not valid JSON ({error})") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise SpaceError(f"{path} has space format {manifest.get('format_version')!r}; this embedspace reads format {FORMAT_VERSION}")
        return manifest

    def _load_tables(self) -> None:
        frames, blocks = [], []
        for name in self._manifest["segments"]:
            frames.append(pd.read_parquet(self.path / f"{name}.parquet"))
            blocks.append(np.load(self.path / f"{name}.npy"))
        dim = self.dim
        self._all_items = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"id": np.zeros(0, np.int64), "modality": [], "label": [], "source": []})
        self._all_vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim), np.float32)
        removed = self._manifest.get("removed")
        self._removed = np.load(self.path / removed) if removed else np.zeros(0, np.int64)
        self._index: VectorIndex | None = None
        self._derived: dict[str, Any] = {}

    def refresh(self) -> bool:
        """Reload from disk if another process wrote to the space; returns True when it did."""
        manifest = self._read_manifest(self.path)
        if manifest["revision"] == self._manifest["revision"]:
            return False
        self._manifest = manifest
        self._load_tables()
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
            model = EmbeddingModel.load(self._manifest["model"]["source"])
            self._check_model(model)
            self._model = model
        return self._model

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

    def _live(self) -> np.ndarray:
        """Boolean mask over stored rows: True where not removed."""
        if "live" not in self._derived:
            self._derived["live"] = ~np.isin(self._all_items["id"].to_numpy(), self._removed)
        return self._derived["live"]

    @property
    def items(self) -> pd.DataFrame:
        """Live items: columns ``id, modality, label, source`` plus metadata columns; row-aligned with :attr:`vectors`."""
        return self._all_items[self._live()].reset_index(drop=True)

    @property
    def vectors(self) -> np.ndarray:
        """Live vectors, ``(N, D)`` float32, L2-normalised, row-aligned with :attr:`items`."""
        return self._all_vectors[self._live()]

    def __len__(self) -> int:
        return int(self._live().sum())

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
            "items": len(self),
            "by_modality": {modality: int(counts.get(modality, 0)) for modality in MODALITIES},
            "removed": int(len(self._removed)),
            "revision": self.revision,
        }

    def source_path(self, item_id: int) -> Path | None:
        """The file behind an image or audio item (absolute), or None for text."""
        source = self._row(item_id)["source"]
        if not source:
            return None
        path = Path(source)
        return path if path.is_absolute() else self.path / path

    def thumbnail_path(self, item_id: int) -> Path | None:
        """The stored preview of an image item, or None."""
        path = self.path / "thumbnails" / f"{int(item_id)}.png"
        return path if path.is_file() else None

    # -- the index -----------------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        """The FAISS index over live items, loaded or rebuilt when missing or stale."""
        if self._index is None:
            self._index = self._load_or_build_index()
        return self._index

    def _load_or_build_index(self) -> VectorIndex:
        stamp = self.path / "index.json"
        if self.factory != "Flat" and stamp.is_file():
            saved = json.loads(stamp.read_text())
            if saved.get("revision") == self.revision and saved.get("factory") == self.factory:
                return VectorIndex.load(self.path / "index.faiss", self.dim, self.factory)
            logger.info("index of %s is stale (revision %s, space at %s); rebuilding", self.path, saved.get("revision"), self.revision)
        live = self._live()
        return VectorIndex.build(self._all_vectors[live], self._all_items["id"].to_numpy()[live], self.factory)

    def save_index(self) -> None:
        """Persist a non-Flat index so that the next open skips rebuilding it (Flat indexes are rebuilt in milliseconds)."""
        if self.factory == "Flat":
            return
        with exclusive_lock(self.path / ".lock"):
            self.index.save(self.path / "index.faiss")
            write_bytes_atomic(self.path / "index.json", json.dumps({"revision": self.revision, "factory": self.factory}).encode())

    # -- queries -------------------------------------------------------------------------------

    def _row(self, item_id: int) -> pd.Series:
        position = self._position(item_id)
        return self._all_items.iloc[position]

    def _position(self, item_id: Any) -> int:
        if isinstance(item_id, bool) or not isinstance(item_id, numbers.Integral):
            raise SpaceError(f"item ids are integers, got {item_id!r}")
        ids = self._all_items["id"].to_numpy()
        position = int(np.searchsorted(ids, item_id))
        if position >= len(ids) or ids[position] != item_id or item_id in self._removed:
            raise SpaceError(f"no item with id {item_id} in space {self.path}; see `embedspace info` or space.items for ids")
        return position

    def embed(self, query: Any) -> np.ndarray:
        """The ``(D,)`` float32 unit vector of a query.

        ``query`` is a string (text, or the path of an image or audio file), a
        :class:`pathlib.Path`, a PIL image, an item id (int), or a vector of length D.
        """
        if isinstance(query, numbers.Integral) and not isinstance(query, bool):
            return self._all_vectors[self._position(query)].copy()
        if isinstance(query, Image.Image):
            return self.model.embed_images([query])[0]
        if isinstance(query, (np.ndarray, list, tuple)) and not isinstance(query, str):
            vector = as_matrix(np.asarray(query, dtype=np.float32), self.dim, "query vector")[0]
            norm = float(np.linalg.norm(vector))
            if norm == 0.0:
                raise SpaceError("the query vector is all zeros; give a non-zero vector")
            return vector / norm
        if isinstance(query, (str, Path)):
            path = Path(query)
            kind = modality_of(path)
            looks_like_file = isinstance(query, Path) or (kind is not None and " " not in str(query).strip())
            if looks_like_file or (len(str(query)) < 4096 and path.is_file()):
                if not path.is_file():
                    raise SpaceError(f"{path}: no such file; give an existing image or audio file, or plain text")
                if kind == "image":
                    return self.model.embed_images([path])[0]
                if kind == "audio":
                    return self.model.embed_audio([path])[0]
                raise SpaceError(
                    f"{path}: unsupported file type {path.suffix!r}; images: {', '.join(sorted(IMAGE_SUFFIXES))}; audio: {', '.join(sorted(AUDIO_SUFFIXES))}"
                )
            if not str(query).strip():
                raise SpaceError("the query is empty; give some text, a file path, an item id or a vector")
            return self.model.embed_text([str(query)])[0]
        raise SpaceError(f"cannot search with a {type(query).__name__}; give text, a file path, an item id, a PIL image or a vector")

    def _allowed(self, modality: str | None) -> np.ndarray | None:
        if modality is None:
            return None
        if modality not in MODALITIES:
            raise SpaceError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
        key = f"allowed:{modality}"
        if key not in self._derived:
            items = self._all_items
            mask = self._live() & (items["modality"].to_numpy() == modality)
            self._derived[key] = items["id"].to_numpy()[mask]
        return self._derived[key]

    def search(self, query: Any, k: int = 10, modality: str | None = None) -> pd.DataFrame:
        """The ``k`` items most similar to ``query`` (see :meth:`embed`), best first.

        Args:
            query: text, a path to an image or audio file, an item id, a PIL image, or a ``(D,)`` vector.
            k: number of results (fewer if the space holds fewer).
            modality: restrict results to ``"text"``, ``"image"`` or ``"audio"``.

        Returns:
            DataFrame with columns ``id, modality, label, score, source`` and the items'
            metadata columns; ``score`` is cosine similarity in [-1, 1].
        """
        return self._search_vector(self.embed(query), k, modality, exclude=None)

    def neighbors(self, item_id: int, k: int = 10, modality: str | None = None) -> pd.DataFrame:
        """The ``k`` nearest other items of ``item_id`` (same columns as :meth:`search`)."""
        return self._search_vector(self.embed(item_id), k, modality, exclude=int(item_id))

    def _search_vector(self, vector: np.ndarray, k: int, modality: str | None, exclude: int | None) -> pd.DataFrame:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise SpaceError(f"k must be a positive integer, got {k!r}")
        allowed = self._allowed(modality)
        wanted = k + (exclude is not None)
        scores, ids = self.index.search(vector[None, :], min(wanted, max(len(self), 1)), allowed)
        scores, ids = scores[0], ids[0]
        keep = ids >= 0
        if exclude is not None:
            keep &= ids != exclude
        scores, ids = scores[keep][:k], ids[keep][:k]
        columns = self._columns()
        positions = np.searchsorted(columns["id"], ids)
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

    def generate(self, query: Any, generator: Any, n: int = 4, seed: int = 0, **sampling: Any):
        """Generate ``n`` images from the point of ``query`` (anything :meth:`search` accepts).

        Args:
            generator: a loaded :class:`embedspace.Generator`, or a name or folder for ``Generator.load``;
                it must have been trained for this space's model.
            sampling: passed to ``Generator.generate`` (guidance, temperature, top_k, top_p, on_token...).

        Returns:
            The generator's ``GenerationResult``. Each image remembers its condition: passing
            the images to :meth:`add_images` records ``generated=True``, the condition and the
            fidelity (cosine between the image's embedding and its condition).
        """
        from embedspace.generator import Generator

        if not isinstance(generator, Generator):
            generator = Generator.load(generator)
        generator.check_compatible(self.model_id)
        vector = self.embed(query)
        result = generator.generate(vector, n=n, seed=seed, **sampling)
        description = _describe(query)
        for image, condition in zip(result.images, result.conditions):
            image.info[GENERATED_KEY] = {"condition": description, "vector": np.asarray(condition, np.float32)}
        return result

    def generate_between(self, start: Any, end: Any, generator: Any, steps: int = 8, seed: int = 0, **sampling: Any):
        """One image at each of ``steps`` points on the slerp path from ``start`` to ``end`` (queries as in :meth:`search`).

        Every step uses the same seed, so the strip changes only as the condition moves.
        Returns a ``GenerationResult`` with one image per step, in path order.
        """
        from embedspace.generator import Generator, interpolate

        if not isinstance(generator, Generator):
            generator = Generator.load(generator)
        generator.check_compatible(self.model_id)
        path = interpolate(self.embed(start), self.embed(end), steps)
        result = generator.generate(path, n=1, seeds=[seed] * len(path), **sampling)
        description = f"{_describe(start)} → {_describe(end)}"
        for step, (image, point) in enumerate(zip(result.images, path)):
            image.info[GENERATED_KEY] = {"condition": f"{description} ({step + 1}/{steps})", "vector": np.asarray(point, np.float32)}
        return result

    # -- writes --------------------------------------------------------------------------------

    def add_texts(self, texts: Sequence[str], metadata: dict | Sequence[dict] | None = None) -> list[int]:
        """Embed and add strings; returns their new ids. Empty strings are refused (nothing is added)."""
        texts = list(texts)
        rows = _metadata_rows(metadata, len(texts))
        vectors = self.model.embed_text(texts)
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
        batch = self._prepare_images(list(images), metadata, labels)
        _handle_errors(batch.errors, on_error)
        return self._append(batch)

    def add_audio(
        self,
        sources: Sequence[str | Path],
        metadata: dict | Sequence[dict] | None = None,
        labels: Sequence[str] | None = None,
        on_error: str = "raise",
    ) -> list[int]:
        """Embed and add audio files; returns their new ids. ``on_error`` as in :meth:`add_images`."""
        batch = self._prepare_audio([Path(source) for source in sources], metadata, labels)
        _handle_errors(batch.errors, on_error)
        return self._append(batch)

    def add_files(self, paths: Sequence[str | Path], texts: Sequence[str] = (), on_error: str = "raise") -> list[int]:
        """Add image and audio files (folders are searched recursively) and texts in one write.

        The modality comes from the file suffix; each item gets a ``folder`` metadata column
        (its parent folder's name). ``on_error`` as in :meth:`add_images`: with ``"raise"``
        nothing is added if any input is bad (every bad input is named).
        """
        files, errors = collect_files(paths)
        images = [path for path in files if modality_of(path) == "image"]
        audio = [path for path in files if modality_of(path) == "audio"]
        texts = list(texts)
        for position, text in enumerate(texts):
            if not text.strip():
                errors.append(f"text #{position + 1} is empty; give non-empty text")
        texts = [text for text in texts if text.strip()]
        image_batch = self._prepare_images(images, [{"folder": path.parent.name} for path in images], None)
        audio_batch = self._prepare_audio(audio, [{"folder": path.parent.name} for path in audio], None)
        _handle_errors(errors + image_batch.errors + audio_batch.errors, on_error)
        text_batch = _Batch(self.model.embed_text(texts), [{"modality": "text", "label": text, "source": ""} for text in texts])
        return self._append(_Batch.concat([image_batch, audio_batch, text_batch], self.dim))

    def _prepare_images(self, images: list, metadata: dict | Sequence[dict] | None, labels: Sequence[str] | None) -> "_Batch":
        """Decode and embed images; unreadable ones are reported in ``errors``, not raised."""
        rows = _metadata_rows(metadata, len(images))
        labels = list(labels) if labels is not None else [Path(image).stem if not isinstance(image, Image.Image) else "image" for image in images]
        decoded, kept_rows, in_memory, errors = [], [], [], []
        for image, row, label in zip(images, rows, labels):
            try:
                decoded.append(load_image(image))
            except ImageDecodeError as error:
                errors.append(str(error))
                continue
            in_memory.append(isinstance(image, Image.Image))
            row.update(modality="image", label=str(label), source="" if in_memory[-1] else str(Path(image).resolve()))
            kept_rows.append(row)
        vectors = self.model.embed_images(decoded) if decoded else np.zeros((0, self.dim), np.float32)
        for row, picture, vector in zip(kept_rows, decoded, vectors):
            origin = picture.info.get(GENERATED_KEY)
            if origin is not None:  # made by Space.generate: keep where it came from and how close it landed
                row.update(generated=True, condition=origin["condition"], fidelity=float(vector @ origin["vector"]))
        return _Batch(vectors, kept_rows, pictures=decoded, in_memory=in_memory, errors=errors)

    def _prepare_audio(self, sources: list[Path], metadata: dict | Sequence[dict] | None, labels: Sequence[str] | None) -> "_Batch":
        """Decode and embed audio files; unreadable ones are reported in ``errors``, not raised."""
        rows = _metadata_rows(metadata, len(sources))
        labels = list(labels) if labels is not None else [source.stem for source in sources]
        if not sources:
            return _Batch(np.zeros((0, self.dim), np.float32), [])
        if self.model.audio is None:
            raise SpaceError(f"model {self.model_id!r} has no audio tower, so this space cannot hold audio")
        rate = self.model.audio.config.sample_rate
        decoded, kept_rows, errors = [], [], []
        for source, row, label in zip(sources, rows, labels):
            try:
                decoded.append((load_audio(source, rate), rate))
            except AudioDecodeError as error:
                errors.append(str(error))
                continue
            row.update(modality="audio", label=str(label), source=str(source.resolve()))
            kept_rows.append(row)
        vectors = self.model.embed_audio(decoded) if decoded else np.zeros((0, self.dim), np.float32)
        return _Batch(vectors, kept_rows, errors=errors)

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
        matrix = as_matrix(vectors, self.dim)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if (norms == 0).any():
            raise SpaceError("some vectors are all zeros; give non-zero vectors")
        labels = list(labels)
        if len(labels) != len(matrix):
            raise SpaceError(f"got {len(labels)} labels for {len(matrix)} vectors")
        rows = _metadata_rows(metadata, len(matrix))
        for row, label in zip(rows, labels):
            row.update(modality=modality, label=str(label), source="")
        return self._append(_Batch(matrix / norms, rows))

    def _append(self, batch: "_Batch") -> list[int]:
        """Durably write one segment and the manifest that names it; then update memory."""
        vectors, rows = batch.vectors, batch.rows
        if not rows:
            return []
        with exclusive_lock(self.path / ".lock"):
            self.refresh()
            start = int(self._manifest["next_id"])
            ids = np.arange(start, start + len(rows), dtype=np.int64)
            revision = self.revision + 1
            for slot, (picture, in_memory) in enumerate(zip(batch.pictures, batch.in_memory)):
                item_id = int(ids[slot])
                if in_memory:
                    write_atomic(self.path / "media" / f"{item_id}.png", lambda handle, p=picture: p.save(handle, format="PNG"))
                    rows[slot]["source"] = f"media/{item_id}.png"
                thumbnail = picture.copy()
                thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
                write_atomic(self.path / "thumbnails" / f"{item_id}.png", lambda handle, t=thumbnail: t.save(handle, format="PNG"))
            frame = pd.DataFrame(rows)
            frame.insert(0, "id", ids)
            frame = frame[list(BASE_COLUMNS) + [column for column in frame.columns if column not in BASE_COLUMNS]]
            name = f"segments/{revision:08d}"
            write_atomic(self.path / f"{name}.parquet", lambda handle: frame.to_parquet(handle, index=False))
            write_atomic(self.path / f"{name}.npy", lambda handle: np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32)))
            manifest = dict(self._manifest, revision=revision, next_id=int(ids[-1]) + 1, segments=self._manifest["segments"] + [name])
            items = pd.concat([self._all_items, frame], ignore_index=True) if len(self._all_items) else frame
            all_vectors = np.concatenate([self._all_vectors, vectors.astype(np.float32)])
            if len(manifest["segments"]) > MAX_SEGMENTS:
                manifest = self._compact(manifest, items, all_vectors)
            self._commit(manifest, items, all_vectors, self._removed)
            if self._index is not None:
                self._index.add(vectors, ids)
        return [int(item_id) for item_id in ids]

    def _compact(self, manifest: dict[str, Any], items: pd.DataFrame, vectors: np.ndarray) -> dict[str, Any]:
        """Merge all segments into one (written before the manifest that names it)."""
        name = f"segments/{manifest['revision']:08d}-all"
        write_atomic(self.path / f"{name}.parquet", lambda handle: items.to_parquet(handle, index=False))
        write_atomic(self.path / f"{name}.npy", lambda handle: np.save(handle, vectors))
        return dict(manifest, segments=[name])

    def _commit(self, manifest: dict[str, Any], items: pd.DataFrame, vectors: np.ndarray, removed: np.ndarray) -> None:
        """Durably replace the manifest (the acknowledgement), then adopt the new state in memory."""
        live = ~np.isin(items["id"].to_numpy(), removed)
        modalities = items["modality"].to_numpy()
        manifest["counts"] = {
            "items": int(live.sum()),
            "removed": int(len(removed)),
            **{modality: int(((modalities == modality) & live).sum()) for modality in MODALITIES},
        }
        old_segments = set(self._manifest["segments"]) - set(manifest["segments"])
        old_removed = self._manifest.get("removed")
        write_bytes_atomic(self.path / MANIFEST, json.dumps(manifest, indent=2).encode())
        self._manifest = manifest
        self._all_items, self._all_vectors, self._removed = items, vectors, removed
        self._derived = {}
        for name in old_segments:  # only after the new manifest is durable
            for suffix in (".parquet", ".npy"):
                (self.path / f"{name}{suffix}").unlink(missing_ok=True)
        if old_removed and old_removed != manifest.get("removed"):
            (self.path / old_removed).unlink(missing_ok=True)

    def remove(self, ids: Sequence[int]) -> int:
        """Tombstone items by id (ids are never reused); returns how many were removed.

        Raises:
            SpaceError: an id is not in the space (nothing is removed).
        """
        ids = [int(item_id) for item_id in ids]
        with exclusive_lock(self.path / ".lock"):
            self.refresh()
            for item_id in ids:
                self._position(item_id)
            removed = np.union1d(self._removed, np.asarray(ids, dtype=np.int64))
            revision = self.revision + 1
            name = f"removed-{revision:08d}.npy"
            write_atomic(self.path / name, lambda handle: np.save(handle, removed))
            manifest = dict(self._manifest, revision=revision, removed=name)
            self._commit(manifest, self._all_items, self._all_vectors, removed)
            if self._index is not None and not self._index.remove(np.asarray(ids, dtype=np.int64)):
                self._index = None  # rebuilt without the removed items on next search
        return len(set(ids))

    def close(self) -> None:
        """Persist derived state (a non-Flat index). Spaces need no closing for durability."""
        stamp = self.path / "index.json"
        saved = json.loads(stamp.read_text()) if stamp.is_file() else {}
        if self.factory != "Flat" and saved.get("revision") != self.revision:
            self.save_index()

    def __enter__(self) -> "Space":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
