"""The dashboard's one background job runner: maps, the model's first load and generation never run in a request.

A :class:`JobRunner` runs callables on daemon worker threads grouped in *lanes*, each with
its own queue and number of workers: :data:`MAPS` (loading or computing maps, loading the
model at start) and :data:`GENERATION` (sampling images). A long UMAP fit so never holds
up generation, nor the other way round. Work in a lane runs in the order it was queued.

The runner only runs work; each job keeps its own state (progress, message, cancel flag:
:class:`dashboard.maps.MapJob`, :class:`dashboard.jobs.Job`) and pages poll that. Workers
are daemon threads started on first use, so stopping the server never waits for a map.
Each app owns one runner (:class:`dashboard.services.Services`, built by ``create_app``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

#: Lane for loading and computing maps (and the model's first load).
MAPS = "maps"
#: Lane for generation jobs.
GENERATION = "generation"
#: Workers per lane: a 2-D and a 3-D map and the model load at once; two generation jobs at once.
DEFAULT_WORKERS = {MAPS: 3, GENERATION: 2}

_STOP = None  # queued once per worker by shutdown()


class JobRunner:
    """Runs background work on daemon threads, in lanes with their own queue and worker count.

    Args:
        workers: lane name -> number of worker threads (each at least 1); default
            :data:`DEFAULT_WORKERS`.

    Raises:
        ValueError: a lane has fewer than one worker.
    """

    def __init__(self, workers: Mapping[str, int] | None = None):
        self.workers = dict(DEFAULT_WORKERS if workers is None else workers)
        for lane, count in self.workers.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"lane {lane!r} needs at least one worker, got {count!r}")
        self._queues: dict[str, queue.SimpleQueue] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, lane: str, work: Callable[[], None], name: str = "job") -> None:
        """Queue ``work()`` on ``lane`` and return at once (workers start on the lane's first job).

        ``work`` reports through its own job object and handles the errors a user can cause;
        anything it lets escape is logged with ``name`` and the worker carries on.

        Raises:
            ValueError: ``lane`` is not one of the runner's lanes.
            RuntimeError: the runner was shut down.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the dashboard's job runner was shut down; restart the app")
            if lane not in self.workers:
                raise ValueError(f"unknown job lane {lane!r}; use one of {', '.join(sorted(self.workers))}")
            lane_queue = self._queues.get(lane)
            if lane_queue is None:
                lane_queue = self._queues[lane] = queue.SimpleQueue()
                for number in range(self.workers[lane]):
                    thread = threading.Thread(target=self._work, args=(lane_queue,), name=f"embedspace-{lane}-{number}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            lane_queue.put((name, work))

    @staticmethod
    def _work(lane_queue: queue.SimpleQueue) -> None:
        while True:
            task = lane_queue.get()
            if task is _STOP:
                return
            name, work = task
            try:
                work()
            except Exception:  # a bug in the job: keep the worker for the next one
                logger.exception("background job %s failed", name)

    def shutdown(self, timeout: float | None = None) -> None:
        """Refuse new work and stop the workers once the queued work is done.

        Waits up to ``timeout`` seconds in all (None: until they stop). Cancel running jobs
        first for a quick stop (:meth:`dashboard.jobs.JobManager.shutdown` does).
        """
        with self._lock:
            self._closed = True
            for lane, lane_queue in self._queues.items():
                for _ in range(self.workers[lane]):
                    lane_queue.put(_STOP)
            threads = list(self._threads)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
