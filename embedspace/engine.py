"""Engines for batch stages: ``"local"`` (a plain loop in this process) or ``"ray"`` (Ray, local or a cluster).

Every batch stage (ingest, the map's ``transform``, index shards) runs its work through
one of two engines with the same code:

- ``"local"``: a plain loop in this process, no Ray needed.
- ``"ray"``: Ray tasks and Ray Data actor pools. Without an address a local Ray is started
  in this process with ``workers`` CPUs (and shut down again when the stage ends); with
  ``address`` (``"host:port"`` of a head node's GCS, ``"ray://host:port"`` for Ray Client,
  or ``"auto"``) the stage joins that cluster.

:func:`ray_session` connects; :func:`map_batches` runs a function over a list of batches
in parallel and returns the results in order; :func:`sharded_index_filler` fills a trained
index from shards built on workers. Ray comes with ``pip install 'embedspace[scale]'``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from embedspace.errors import MissingDependencyError, SpaceError

if TYPE_CHECKING:
    from embedspace.index import VectorIndex
    from embedspace.rows import StoredRows

logger = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Object store of a local Ray started here (bytes): ingest moves only small block descriptions through it.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2
#: Seconds to wait for a TCP connection to a cluster's address before calling it unreachable.
CONNECT_TIMEOUT_SECONDS = 5.0
#: Rows per index shard filled on a worker (its codes travel back through the object store: about 60 B a row).
SHARD_ROWS = 262_144

Batch = TypeVar("Batch")
Result = TypeVar("Result")


def check_engine(engine: Any, workers: Any = None, address: Any = None) -> None:
    """Refuse an unknown engine, a non-positive worker count, or an address given to the local engine.

    Raises:
        SpaceError: naming the bad argument and the allowed values.
    """
    if engine not in ENGINES:
        raise SpaceError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SpaceError(f"workers must be a positive integer (or None for one per CPU), got {workers!r}")
    if address is not None and engine != "ray":
        raise SpaceError(f"an address ({address!r}) is for the Ray engine; add --engine ray (engine='ray')")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise SpaceError(f"address must be 'host:port', 'ray://host:port' or 'auto', got {address!r}")


def import_ray() -> Any:
    """The ``ray`` module, or a MissingDependencyError naming the extra that brings it."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "scale", "the Ray engine (--engine ray)") from None
    return ray


def _check_reachable(address: str) -> None:
    """A one-line SpaceError when nothing answers at ``address`` (``host:port`` or ``ray://host:port``); ``auto`` is left to Ray."""
    target = address.split("://", 1)[-1]
    if address == "auto" or ":" not in target:
        return
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        raise SpaceError(f"Ray address {address!r} has no port number; give 'host:port' (the head node's `ray start --head` prints it)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise SpaceError(f"cannot reach a Ray cluster at {address} ({reason}); start one with `ray start --head` or check the address (nothing was written)") from None


@contextmanager
def ray_session(workers: int | None = None, address: str | None = None) -> Iterator[Any]:
    """Connect to Ray for one stage and yield the ``ray`` module.

    Joins the Ray this process is already connected to, if any; else joins the cluster at
    ``address``; else starts a local Ray with ``workers`` CPUs (default: all), without the
    dashboard and with a small object store. A Ray started or joined here is shut down on exit.

    Raises:
        SpaceError: ``address`` is unreachable (one line; checked before anything is written).
        MissingDependencyError: Ray is not installed.
    """
    ray = import_ray()
    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    if address is not None:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise SpaceError(f"cannot join the Ray cluster at {address}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    else:
        cpus = workers or os.cpu_count() or 1
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


def worker_count(ray: Any, workers: int | None) -> int:
    """``workers``, or the CPUs of the connected Ray cluster when None (at least 1)."""
    return workers or max(1, int(ray.cluster_resources().get("CPU", 1)))


def map_batches(
    function: Callable[[Batch], Result],
    batches: Sequence[Batch],
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
) -> list[Result]:
    """``[function(batch) for batch in batches]``, in parallel on Ray when ``engine == "ray"``.

    The results come back in the order of ``batches``. On Ray each batch is one task (one
    CPU, retried when its worker dies), at most ``workers`` running at once; ``function``
    and the batches travel through Ray's object store (in memory, never written to disk),
    so they must be picklable by Ray: a module-level function or a callable object.

    Raises:
        SpaceError: a bad engine or worker count, or an unreachable ``address``.
    """
    check_engine(engine, workers, address)
    batches = list(batches)
    if engine == "local" or not batches:
        return [function(batch) for batch in batches]
    with ray_session(workers, address) as ray:
        limit = worker_count(ray, workers)
        task = ray.remote(num_cpus=1, max_retries=3)(_call)
        shared = ray.put(function)
        pending: dict[Any, int] = {}
        results: list[Any] = [None] * len(batches)
        for position, batch in enumerate(batches):
            if len(pending) >= limit:
                _collect(ray, pending, results)
            pending[task.remote(shared, batch)] = position
        while pending:
            _collect(ray, pending, results)
    return results


def _call(function: Callable[[Batch], Result], batch: Batch) -> Result:
    return function(batch)


def _collect(ray: Any, pending: dict[Any, int], results: list[Any]) -> None:
    """Wait for one finished task of ``pending`` and store its result at its batch's position."""
    done, _ = ray.wait(list(pending), num_returns=1)
    for reference in done:
        results[pending.pop(reference)] = ray.get(reference)


def sharded_index_filler(
    path: str | Path, engine: str = "ray", workers: int | None = None, address: str | None = None
) -> Callable[["VectorIndex", "StoredRows"], "VectorIndex"]:
    """A filler for :meth:`SpaceIndex.build`: shards of the live rows are added on workers and merged.

    Every worker starts from the same trained empty index (its bytes travel through the object
    store), reads its shard's vectors from the space at ``path`` by id (memory-mapped parts:
    nothing but ids and codes moves between machines that share the folder), adds them and
    returns the filled shard; the driver merges the shards' inverted lists in id order (FAISS
    ``merge_from``), so the result equals an index filled in one process.

    Raises:
        SpaceError: a bad engine or worker count, or an unreachable ``address`` (checked now,
            before the index is trained).
    """
    check_engine(engine, workers, address)
    if address is not None:
        _check_reachable(address)

    def fill(index: "VectorIndex", rows: "StoredRows") -> "VectorIndex":
        from embedspace.index import VectorIndex

        ids = rows.ids[rows.live_positions()]
        shards = np.array_split(ids, max(workers or 1, math.ceil(len(ids) / SHARD_ROWS)))
        build = functools.partial(_fill_shard, str(path), index.empty_copy().serialize(), index.dim, index.factory)
        for data in map_batches(build, [shard for shard in shards if len(shard)], engine, workers, address):
            index.merge_from(VectorIndex.deserialize(data, index.dim, index.factory))
        return index

    return fill


def _fill_shard(path: str, empty: bytes, dim: int, factory: str, ids: np.ndarray) -> bytes:
    """Add the stored vectors of ``ids`` (read from the space at ``path``) to a copy of the trained empty index."""
    from embedspace.index import VectorIndex
    from embedspace.rows import StoredRows
    from embedspace.store import SpaceStore

    index = VectorIndex.deserialize(empty, dim, factory)
    rows = StoredRows(SpaceStore(path).read())
    positions = rows.positions(ids)
    positions = positions[positions >= 0]  # removed since the build began: left out, as the index's catch-up expects
    for start in range(0, len(positions), 65_536):
        chunk = positions[start : start + 65_536]
        index.add(rows.gather(chunk), rows.ids[chunk])
    return index.serialize()
