"""Ingest: many inputs into a space in blocks of rows, on the local engine or on Ray.

An ingest runs in four steps:

1. **Discover** (:func:`discover`): folders and files as ``add`` takes them (images and
   audio; folders searched recursively), and tables (``.csv``, ``.parquet``) with a ``text``
   or a ``path`` column (paths relative to the table's folder; an optional ``label`` column;
   the other columns are kept as metadata), into one list of :class:`InputRow` in input order.
   Missing inputs and bad rows are found here, before anything is written.
2. **Plan** (:class:`IngestPlan`): the rows cut into blocks of ``block_rows`` rows; its
   ``key`` (16 hex characters) hashes the rows and the block size, so the same inputs give
   the same plan. ``space.begin_ingest(key, rows)`` reserves one id per row (row ``r`` gets
   id ``start + r``) or, for a plan begun before (a crashed run), returns the same start and
   the blocks already committed, which are skipped.
3. **Blocks** (:class:`BlockEncoder`): decode, encode and write one block as one part
   (``SpaceStore.ingest_part_name(key, block)``). A retried block rewrites the same part, so
   each part lands exactly once. Rows that cannot be decoded are absent (their ids stay unused).
4. **Commit**: the driver hands finished blocks to ``space.commit_ingest`` as they arrive,
   several per manifest commit; the plan is finished when its last block is committed.

The local engine runs the blocks in a plain loop in this process; the Ray engine runs the
same :class:`BlockEncoder` as a Ray Data actor pool (``map_batches``: the encoder is loaded
once per actor; blocks stream through the actors; a killed actor is restarted and its block
retried). Ids are assigned by row order, so both engines give the same ids, labels and vectors.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from embedspace import provenance
from embedspace.engine import check_engine, ray_session, worker_count
from embedspace.inputs import audio_notes, collect_files, decode_notes, is_unicode, metadata_rows, modality_of, printable
from embedspace.errors import AudioDecodeError, ImageDecodeError, SpaceError
from embedspace.store import BASE_COLUMNS, SpaceStore

if TYPE_CHECKING:
    from embedspace.models.model import EmbeddingModel

logger = logging.getLogger(__name__)

#: Rows per block (one part each). Large enough to amortise a manifest commit, small enough to retry cheaply.
#: The setting ``EMBEDSPACE_INGEST_BLOCK_ROWS`` changes the default.
BLOCK_ROWS = 4096
#: The driver commits finished blocks when this many are waiting, or :data:`COMMIT_SECONDS` after the oldest arrived.
COMMIT_BLOCKS = 8
COMMIT_SECONDS = 5.0
TABLE_SUFFIXES = frozenset({".csv", ".parquet", ".pq"})
#: Table columns with a meaning of their own; every other column is metadata.
TABLE_COLUMNS = ("text", "path", "label")


@dataclass(frozen=True)
class InputRow:
    """One item to ingest: a text, or an image or audio file (absolute path), with its metadata.

    ``origin`` names where it came from in errors ("notes.csv row 3", or the file's path);
    ``error`` is set when the row is already known to be unusable (it is skipped, its id unused).
    """

    modality: str
    value: str
    label: str
    metadata: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    error: str | None = None

    def to_json(self) -> list:
        return [self.modality, self.value, self.label, self.metadata, self.origin, self.error]

    @staticmethod
    def from_json(values: list) -> "InputRow":
        return InputRow(*values)


@dataclass(frozen=True)
class IngestPlan:
    """The rows of an ingest cut into blocks: block ``b`` is rows ``[b * block_rows, (b + 1) * block_rows)``."""

    rows: tuple[InputRow, ...]
    block_rows: int = BLOCK_ROWS

    @property
    def key(self) -> str:
        """16 lowercase hex characters: the same rows and block size give the same key."""
        digest = hashlib.sha256(json.dumps([self.block_rows, [row.to_json() for row in self.rows]], sort_keys=True).encode())
        return digest.hexdigest()[:16]

    @property
    def blocks(self) -> int:
        return math.ceil(len(self.rows) / self.block_rows)

    def block(self, block: int) -> list[InputRow]:
        return list(self.rows[block * self.block_rows : (block + 1) * self.block_rows])

    @property
    def errors(self) -> list[str]:
        """What is wrong with the rows known to be unusable, one line each."""
        return [row.error for row in self.rows if row.error]


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did. Ids ``[start, start + rows)`` were reserved; rows that were skipped left their id unused.

    added: items written by this run (a resumed run counts only the blocks it wrote).
    resumed_blocks: blocks committed by an earlier, interrupted run of the same plan.
    skipped: one line per input that could not be used.
    """

    key: str
    start: int
    rows: int
    blocks: int
    added: int
    resumed_blocks: int
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class BlockTask:
    """What every block worker of one ingest needs (small: it travels to each Ray actor)."""

    space_path: str
    model_source: str
    model_id: str
    fingerprint: str
    dim: int
    key: str
    start: int
    block_rows: int
    dtype: str = "float32"


@dataclass(frozen=True)
class BlockResult:
    """One written block: how many items its part holds and the rows it could not use (one line each)."""

    block: int
    written: int
    errors: tuple[str, ...]


def default_block_rows() -> int:
    """``EMBEDSPACE_INGEST_BLOCK_ROWS`` when set (a positive integer), else :data:`BLOCK_ROWS`."""
    value = os.environ.get("EMBEDSPACE_INGEST_BLOCK_ROWS", "").strip()
    if not value:
        return BLOCK_ROWS
    if not value.isdigit() or int(value) < 1:
        raise SpaceError(f"EMBEDSPACE_INGEST_BLOCK_ROWS must be a positive integer, got {value!r}")
    return int(value)


# -- discovery ---------------------------------------------------------------------------------


def discover(inputs: str | Path | Sequence[str | Path]) -> tuple[list[InputRow], list[str]]:
    """The rows of ``inputs`` in order, and one line per input that does not exist or cannot be read.

    Inputs are folders (images and audio inside, recursively, sorted), image or audio files,
    tables (``.csv``, ``.parquet``) and glob patterns of those. Rows known to be bad (an empty
    text, a missing file a table names) are returned with their ``error`` set, in their place.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    rows: list[InputRow] = []
    errors: list[str] = []
    for given in inputs:
        if not isinstance(given, (str, Path)):
            errors.append(f"input {given!r} is a {type(given).__name__}; give file or folder paths")
            continue
        paths = [Path(match) for match in sorted(glob.glob(str(given), recursive=True))] if glob.has_magic(str(given)) else [Path(given)]
        if not paths:
            errors.append(f"{printable(str(given))}: no file matches this pattern")
        for path in paths:
            if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
                table_rows, table_errors = _table_rows(path)
                rows += table_rows
                errors += table_errors
            else:  # a folder or a media file, found as `add` finds them
                files, problems = collect_files([path])
                rows += [_file_row(file, modality_of(file)) for file in files]
                errors += [printable(problem) for problem in problems]
    return rows, errors


def _file_row(path: Path, modality: str | None, label: str | None = None, metadata: dict | None = None, origin: str | None = None) -> InputRow:
    """A row for an image or audio file, with the ``folder`` metadata ``add`` gives files; ``error`` set when it is unusable."""
    name = printable(str(path))
    row_metadata = {"folder": printable(path.parent.name)} if metadata is None else metadata
    error = None
    if not is_unicode(str(path)):
        error = f"{name}: the file name is not valid UTF-8, so it cannot be stored; rename the file"
    elif modality is None:
        error = f"{origin or name}: {name} is not an image or audio file"
    elif not path.is_file():
        error = f"{origin or name}: {name}: no such file"
    else:
        error = _header_error(path, modality, origin or name)
    return InputRow(modality or "image", str(path.resolve()) if error is None else name, label or path.stem, row_metadata, origin or name, error)


def _header_error(path: Path, modality: str, name: str) -> str | None:
    """A line saying why ``path`` is not a readable image or audio file, from its header only (cheap), or None."""
    import soundfile

    try:
        if modality == "image":
            with Image.open(path) as picture:
                picture.size  # noqa: B018 - reads the header
        else:
            soundfile.info(str(path))
    except Exception as error:  # PIL and libsndfile raise many types for damaged files
        return f"{name}: not a readable {modality} file ({str(error).splitlines()[0][:120] if str(error) else type(error).__name__})"
    return None


def _table_rows(path: Path) -> tuple[list[InputRow], list[str]]:
    """Rows of a CSV or Parquet table with a ``text`` or ``path`` column; errors for an unreadable or unusable table."""
    name = printable(str(path))
    try:
        table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except Exception as error:  # pandas / pyarrow raise many types for damaged tables
        return [], [f"{name}: not a readable table ({str(error).splitlines()[0][:160] if str(error) else type(error).__name__})"]
    if "text" not in table.columns and "path" not in table.columns:
        return [], [f"{name}: has no 'text' or 'path' column (columns: {', '.join(map(str, table.columns))}); name the column of texts 'text' or of files 'path'"]
    columns = [column for column in table.columns if column not in TABLE_COLUMNS]
    records = table[columns].astype(object).where(table[columns].notna(), None).to_dict("records") if columns else [{} for _ in range(len(table))]
    try:
        records = metadata_rows(records, len(table))
    except SpaceError as error:
        return [], [f"{name}: {error}"]
    texts = table["text"].tolist() if "text" in table.columns else [None] * len(table)
    paths = table["path"].tolist() if "path" in table.columns else [None] * len(table)
    labels = table["label"].tolist() if "label" in table.columns else [None] * len(table)
    rows = []
    for number, (text, file, label, metadata) in enumerate(zip(texts, paths, labels, records), start=1):
        origin = f"{name} row {number}"
        label = None if label is None or (isinstance(label, float) and math.isnan(label)) else str(label)
        if isinstance(file, str) and file.strip():
            target = Path(file) if Path(file).is_absolute() else path.parent / file
            rows.append(_file_row(target, modality_of(target), label, metadata, origin))
        elif isinstance(text, str) and text.strip() and is_unicode(text):
            rows.append(InputRow("text", text, label or text, metadata, origin))
        else:
            problem = "has neither a text nor a path" if text is None or (isinstance(text, float) and math.isnan(text)) else "holds an empty or non-text value"
            rows.append(InputRow("text", "", "", metadata, origin, f"{origin} {problem}; give a non-empty text or a file path"))
    return rows, []


# -- the block worker --------------------------------------------------------------------------


class BlockEncoder:
    """Decode, encode and write blocks of one ingest: one part per block.

    On Ray this is the actor class of ``map_batches`` (constructed once per actor, so the
    model is loaded once per actor); the local engine builds one and calls it in a loop.
    """

    def __init__(self, task: BlockTask, model: EmbeddingModel | None = None):
        from embedspace.models.model import EmbeddingModel

        if model is None:
            model = EmbeddingModel.load(task.model_source)
        if model.model_id != task.model_id or model.fingerprint != task.fingerprint:
            raise SpaceError(f"the model loaded from {task.model_source!r} ({model.model_id} {model.fingerprint}) is not the space's ({task.model_id} {task.fingerprint}); install the same model on every worker")
        self.task = task
        self.model = model
        self.store = SpaceStore(task.space_path)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data batch ``{"block": (B,) int, "rows": (B,) JSON}`` -> ``{"block", "written", "errors" (JSON)}``."""
        results = [self.write_block(int(block), [InputRow.from_json(row) for row in json.loads(rows)]) for block, rows in zip(batch["block"], batch["rows"])]
        return {
            "block": np.array([result.block for result in results], dtype=np.int64),
            "written": np.array([result.written for result in results], dtype=np.int64),
            "errors": np.array([json.dumps(result.errors) for result in results], dtype=object),
        }

    def write_block(self, block: int, rows: list[InputRow]) -> BlockResult:
        """Decode and encode ``rows`` (block ``block`` of the plan) and write them as the block's part.

        Row ``i`` gets id ``start + block * block_rows + i``. Rewriting a block writes the same part again.
        """
        first = self.task.start + block * self.task.block_rows
        decoded, errors = [], []  # rows known to be bad were reported by the driver
        for offset, row in enumerate(rows):
            if row.error is None:
                item = self._decode(first + offset, row)
                (errors if isinstance(item, str) else decoded).append(item)
        vectors = self._encode(decoded)
        finite = np.isfinite(vectors).all(axis=1)
        errors += [f"{item.row.origin}: the model gave a non-finite vector for it, so it cannot be stored" for item, ok in zip(decoded, finite) if not ok]
        kept = [item for item, ok in zip(decoded, finite) if ok]
        for item in kept:
            if item.picture is not None:
                self.store.write_thumbnail(item.item_id, item.picture)
        frame = pd.DataFrame([{"id": item.item_id, **item.columns} for item in kept], columns=None if kept else list(BASE_COLUMNS))
        frame = frame[list(BASE_COLUMNS) + [column for column in frame.columns if column not in BASE_COLUMNS]].astype({"id": np.int64})
        # every block writes its part, empty when all its rows failed, so commit_ingest knows the block ran
        self.store.write_part(SpaceStore.ingest_part_name(self.task.key, block), frame, vectors[finite].reshape(-1, self.task.dim), self.task.dtype)
        return BlockResult(block, len(kept), tuple(errors))

    def _decode(self, item_id: int, row: InputRow) -> "_Decoded | str":
        """The row ready to encode, or a line saying why it cannot be used."""
        from embedspace.models.audio import decode_audio
        from embedspace.models.model import load_image
        columns = {"modality": row.modality, "label": row.label, "source": "" if row.modality == "text" else row.value, **row.metadata}
        if row.modality == "text":
            return _Decoded(item_id, row, columns, text=row.value)
        try:
            if row.modality == "image":
                picture = load_image(row.value)
                return _Decoded(item_id, row, {**columns, **decode_notes(picture)}, picture=picture)
            audio = decode_audio(row.value, self.model.audio.config.sample_rate)
        except (ImageDecodeError, AudioDecodeError) as error:
            return f"{row.origin}: {error}" if row.origin not in str(error) else str(error)
        notes = audio_notes(audio.duration_seconds, audio.normalised, self.model.audio.config.max_seconds)
        return _Decoded(item_id, row, {**columns, **notes}, clip=(audio.samples, audio.sample_rate))

    def _encode(self, decoded: list["_Decoded"]) -> np.ndarray:
        """``(len(decoded), D)`` float32 vectors, row-aligned with ``decoded`` (each modality encoded as one batch)."""
        vectors = np.zeros((len(decoded), self.task.dim), np.float32)
        for modality, embed in (("text", self.model.embed_text), ("image", self.model.embed_images)):
            positions = [position for position, item in enumerate(decoded) if item.row.modality == modality]
            if positions:
                vectors[positions] = embed([decoded[position].payload for position in positions], progress=False)
        positions = [position for position, item in enumerate(decoded) if item.row.modality == "audio"]
        if positions:
            vectors[positions] = self._embed_audio([decoded[position] for position in positions])
        for item, vector in zip(decoded, vectors):
            origin = provenance.read(item.picture) if item.picture is not None else None
            if origin is not None and np.isfinite(vector).all():  # made by a Generator: keep where it came from
                item.columns.update(origin.columns(vector))
        return vectors

    def _embed_audio(self, items: list["_Decoded"]) -> np.ndarray:
        """Audio vectors of decoded clips; with a transcriber, each item's ``transcript`` column is set too."""
        clips = [item.clip for item in items]
        if self.model.transcriber is None:
            return self.model.embed_audio(clips, progress=False)
        transcripts = self.model.transcribe(clips, progress=False)
        for item, transcript in zip(items, transcripts):
            item.columns["transcript"] = transcript  # what was said ("" for none), as Space.add_audio stores it
        return self.model.embed_audio(clips, progress=False, transcripts=transcripts)


@dataclass
class _Decoded:
    """A decoded row: its id, the columns of its item, and what the model encodes (a text, a picture or a clip)."""

    item_id: int
    row: InputRow
    columns: dict[str, Any]
    text: str | None = None
    picture: Image.Image | None = None
    clip: tuple[np.ndarray, int] | None = None

    @property
    def payload(self) -> Any:
        return self.text if self.text is not None else self.picture if self.picture is not None else self.clip


# -- the driver --------------------------------------------------------------------------------


class _Committer:
    """Commits finished blocks in groups (:data:`COMMIT_BLOCKS`, or after :data:`COMMIT_SECONDS`), each block once."""

    def __init__(self, space: Any, key: str, on_error: str, bar: tqdm):
        self.space, self.key, self.on_error, self.bar = space, key, on_error, bar
        self.waiting: list[int] = []
        self.committed: set[int] = set()
        self.since = time.monotonic()
        self.added = 0
        self.errors: list[str] = []

    def add(self, result: BlockResult) -> None:
        if result.block in self.committed or result.block in self.waiting:
            return  # a retried block reported twice: its part was rewritten, not duplicated
        self.bar.update(1)
        self.errors += result.errors
        if result.errors and self.on_error == "raise":
            return  # not committed: the ingest stays unfinished, and a later run redoes this block
        if not self.waiting:
            self.since = time.monotonic()
        self.waiting.append(result.block)
        self.added += result.written
        if len(self.waiting) >= COMMIT_BLOCKS or time.monotonic() - self.since >= COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.waiting:
            self.space.commit_ingest(self.key, sorted(self.waiting))
            self.committed.update(self.waiting)
            self.waiting = []


def ingest(
    space: Any,
    inputs: str | Path | Sequence[str | Path],
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_error: str = "raise",
    block_rows: int | None = None,
    progress: bool | None = None,
) -> IngestResult:
    """Add every row of ``inputs`` to ``space`` in blocks, on the local engine or on Ray.

    Args:
        space: an open Space (refreshed at the end, so it shows the new items).
        inputs: folders, image/audio files, tables (``.csv`` / ``.parquet`` with a ``text`` or
            ``path`` column; other columns become metadata) or glob patterns.
        engine: ``"local"`` (a loop in this process) or ``"ray"``.
        workers: Ray actors (each loads the model once); default one per CPU of the cluster.
        address: a Ray cluster to join (``"host:port"``, ``"ray://host:port"`` or ``"auto"``);
            default a local Ray started for this call.
        on_error: ``"raise"``: one SpaceError naming every missing input and bad row, before
            anything is written. ``"skip"``: ingest the usable rows; the others are logged and
            listed in the result (their ids stay unused).
        block_rows: rows per block (one part each); default ``EMBEDSPACE_INGEST_BLOCK_ROWS`` or :data:`BLOCK_ROWS`.
        progress: show a progress bar (default: when writing to a terminal).

    Running the same ingest again (same inputs and block size) resumes it: blocks that an
    interrupted run committed are skipped, so every row lands exactly once.

    Raises:
        SpaceError: bad arguments, missing inputs or bad rows (with ``on_error="raise"``), an
            unreachable ``address``, or rows that failed to decode during the run (with
            ``"raise"``; the blocks holding them are not committed, the others are, and a
            re-run finishes the ingest).
    """
    check_engine(engine, workers, address)
    if on_error not in ("raise", "skip"):
        raise SpaceError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if block_rows is None:
        block_rows = default_block_rows()
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise SpaceError(f"block_rows must be a positive integer, got {block_rows!r}")
    rows, errors = discover(inputs)
    plan = IngestPlan(tuple(rows), block_rows)
    source, has_audio = _model_facts(space)
    if not has_audio:
        plan = IngestPlan(tuple(_without_audio(row, space.model_id) for row in plan.rows), block_rows)
    errors += plan.errors
    if errors and on_error == "raise":
        raise SpaceError(f"{len(errors)} input(s) could not be used, nothing was added: " + "; ".join(errors))
    for error in errors:
        logger.warning("skipped %s", error)
    if not any(row.error is None for row in plan.rows):
        return IngestResult(plan.key, int(space._manifest["next_id"]), 0, 0, 0, 0, tuple(errors))
    with ray_session(workers, address) if engine == "ray" else nullcontext(None) as ray:  # connects before anything is written
        start, done = space.begin_ingest(plan.key, len(plan.rows), block_rows)
        todo = [block for block in range(plan.blocks) if block not in done]
        task = BlockTask(str(space.path), str(source), space.model_id, space._manifest["model"]["fingerprint"], space.dim, plan.key, start, block_rows, space._vector_dtype)
        logger.info("ingest %s: %d rows in %d blocks (%d committed before) into %s", plan.key, len(plan.rows), plan.blocks, len(done), space.path)
        with tqdm(total=plan.blocks, initial=len(done), unit="block", desc="ingest", disable=None if progress is None else not progress) as bar:
            committer = _Committer(space, plan.key, on_error, bar)
            results = _run_ray(ray, plan, task, todo, workers) if ray is not None else _run_local(space, plan, task, todo)
            for result in results:
                committer.add(result)
            committer.flush()
    run_errors = committer.errors
    if run_errors and on_error == "raise":
        space.refresh()
        raise SpaceError(
            f"{len(run_errors)} input(s) could not be decoded, so the blocks holding them were not added: " + "; ".join(run_errors)
            + "; fix or remove them and run the same ingest again (it resumes), or skip them (--skip-bad)"
        )
    for error in run_errors:
        logger.warning("skipped %s", error)
    space.refresh()
    return IngestResult(plan.key, start, len(plan.rows), plan.blocks, committer.added, len(done), tuple(errors + run_errors))


def _model_facts(space: Any) -> tuple[str, bool]:
    """Where workers load the space's model from, and whether it has an audio tower (read from its config, not loaded)."""
    from embedspace.models.registry import resolve_model

    source = space._model_source()
    config, _ = resolve_model(source)
    return str(source), config.audio is not None


def _without_audio(row: InputRow, model_id: str) -> InputRow:
    if row.modality != "audio" or row.error:
        return row
    return InputRow(row.modality, row.value, row.label, row.metadata, row.origin, f"{row.origin}: model {model_id!r} has no audio tower, so this space cannot hold audio")


def _run_local(space: Any, plan: IngestPlan, task: BlockTask, todo: list[int]) -> Iterator[BlockResult]:
    """The blocks in a plain loop in this process, with the space's model."""
    encoder = BlockEncoder(task, space.model)
    for block in todo:
        yield encoder.write_block(block, plan.block(block))


def _run_ray(ray: Any, plan: IngestPlan, task: BlockTask, todo: list[int], workers: int | None) -> Iterator[BlockResult]:
    """The blocks through a Ray Data actor pool of :class:`BlockEncoder`, yielded as they finish (in any order)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = False
    actors = min(worker_count(ray, workers), max(1, len(todo)))
    items = [{"block": block, "rows": json.dumps([row.to_json() for row in plan.block(block)])} for block in todo]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    encoded = dataset.map_batches(
        BlockEncoder,
        fn_constructor_args=(task,),
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
    )  # Ray Data restarts a killed actor and retries its block (max_restarts = max_task_retries = -1 by default)
    for batch in encoded.iter_batches(batch_size=1, batch_format="numpy"):
        for block, written, errors in zip(batch["block"], batch["written"], batch["errors"]):
            yield BlockResult(int(block), int(written), tuple(json.loads(errors)))
