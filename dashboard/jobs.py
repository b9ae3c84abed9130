"""Generation jobs for the dashboard: requests, per-session job state, and sampling on the app's job runner.

A page never waits for the generator. It submits a :class:`JobRequest` (built by
:func:`point_request`, :func:`path_request`, :func:`arithmetic_request` or :func:`edit_request`)
under its session id; the :class:`JobManager` queues it on the app's
:class:`~dashboard.runner.JobRunner` (lane :data:`~dashboard.runner.GENERATION`), whose
worker samples the images token by token with :meth:`embedspace.Generator.generate` (an
edit with :meth:`~embedspace.Generator.edit`), decoding partial code grids with
:meth:`~embedspace.Generator.preview` every ``preview_every`` tokens; the page polls
:meth:`JobManager.view` for progress and PNG data URIs. Each session has at most one job
(a new one cancels the old), and a session sees only its own job. Cancelling sets a flag
that the per-token callback turns into an exception, so sampling stops at the next token.

Generated images stay here, server-side, each remembering its condition under
:data:`embedspace.provenance.GENERATED_KEY` (stamped by the generator), so that adding one to the space records
``generated``, ``condition`` and ``fidelity`` (see :meth:`embedspace.Space.add_images`).
"""

from __future__ import annotations

import base64
import io
import logging
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from dashboard.runner import GENERATION, JobRunner
from embedspace.generator import GenerationRequest, SamplingOptions, arithmetic
from embedspace.generator.editing import KEEP_REGIONS
from embedspace.vectors import unit_vector

logger = logging.getLogger(__name__)

#: Most images one job may make from one point.
MAX_IMAGES = 8
#: Fewest and most points on an interpolation path (both ends included).
MIN_STEPS, MAX_STEPS = 2, 12
#: Allowed sampling temperatures and guidance scales (see embedspace.generator.sampling).
TEMPERATURE_RANGE = (0.0, 2.0)
GUIDANCE_RANGE = (0.0, 10.0)
#: Largest seed (torch seeds are 64-bit; keep to what JSON and the page show exactly).
MAX_SEED = 2**31 - 1
KINDS = ("point", "path", "arithmetic", "edit")
#: Job states; the last three are final.
QUEUED, RUNNING, DONE, CANCELLED, FAILED = "queued", "running", "done", "cancelled", "error"
FINAL_STATES = (DONE, CANCELLED, FAILED)


@dataclass(frozen=True)
class Settings:
    """How to sample: images per point, points on a path, seed, temperature and guidance (checked ranges)."""

    count: int = 4
    steps: int = 6
    seed: int = 0
    temperature: float = 1.0
    guidance: float = 3.0


def _number(value: object, name: str, low: float, high: float, whole: bool) -> float:
    kind = "a whole number" if whole else "a number"
    message = f"{name}: give {kind} from {low:g} to {high:g}"
    if value is None or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise ValueError(message)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not math.isfinite(number) or not low <= number <= high or (whole and number != int(number)):
        raise ValueError(message)
    return number


def parse_settings(count: object, steps: object, seed: object, temperature: object, guidance: object) -> Settings:
    """Settings from the page's inputs (numbers, numeric strings or None).

    Raises:
        ValueError: a value is missing or out of range; the message names it and the allowed range.
    """
    return Settings(
        count=int(_number(count, "number of images", 1, MAX_IMAGES, whole=True)),
        steps=int(_number(steps, "steps along the path", MIN_STEPS, MAX_STEPS, whole=True)),
        seed=int(_number(seed, "seed", 0, MAX_SEED, whole=True)),
        temperature=_number(temperature, "temperature", *TEMPERATURE_RANGE, whole=False),
        guidance=_number(guidance, "guidance", *GUIDANCE_RANGE, whole=False),
    )


@dataclass(frozen=True)
class Condition:
    """One point to generate from.

    Attributes:
        vector: ``(D,)`` float32 unit vector.
        description: what the point is, shown under its images and stored with them.
        count: images to make from it.
        seed: image ``j`` of this point uses seed ``seed + j``.
    """

    vector: np.ndarray
    description: str
    count: int
    seed: int


@dataclass(frozen=True)
class EditSource:
    """The image an edit job redraws: its pixels, what it is, and the region of tokens kept."""

    image: Image.Image
    description: str
    keep: str = "top"


@dataclass(frozen=True)
class JobRequest:
    """What a job makes: ``kind`` ("point", "path", "arithmetic", "edit"), a title, its conditions and sampling options.

    An "edit" job has one condition and an :class:`EditSource`: its images are that image
    with the kept region's tokens forced and the rest sampled toward the condition.
    """

    kind: str
    title: str
    conditions: tuple[Condition, ...]
    temperature: float = 1.0
    guidance: float = 3.0
    edit: EditSource | None = None

    @property
    def image_count(self) -> int:
        return sum(condition.count for condition in self.conditions)

    @property
    def vectors(self) -> np.ndarray:
        """``(M, D)`` float32: the conditions' vectors, in order (a path's points from start to end)."""
        return np.stack([condition.vector for condition in self.conditions]).astype(np.float32)


def point_request(vector: np.ndarray, description: str, settings: Settings) -> JobRequest:
    """``settings.count`` images from one point (a selected item or a query)."""
    vector = unit_vector(vector, name="the point to generate from")
    return JobRequest("point", description, (Condition(vector, description, settings.count, settings.seed),), settings.temperature, settings.guidance)


def path_request(start: np.ndarray, end: np.ndarray, start_description: str, end_description: str, settings: Settings) -> JobRequest:
    """One image at each of ``settings.steps`` points of the slerp path from ``start`` to ``end``.

    Every point uses the same seed, so along the strip only the condition changes
    (as :meth:`embedspace.Space.generate_between` does).
    """
    path = GenerationRequest.between(start, end, settings.steps, start_description, end_description)  # slerp; "a → b (i/steps)"
    conditions = tuple(Condition(point, description, 1, settings.seed) for point, description in zip(path.conditions, path.descriptions))
    return JobRequest("path", f"{start_description} → {end_description}", conditions, settings.temperature, settings.guidance)


def arithmetic_request(vectors: tuple[np.ndarray, np.ndarray, np.ndarray], descriptions: tuple[str, str, str], settings: Settings) -> JobRequest:
    """``settings.count`` images from ``a − b + c`` (renormalised)."""
    a, b, c = descriptions
    title = f"{a} − {b} + {c}"
    return JobRequest("arithmetic", title, (Condition(arithmetic(*vectors), title, settings.count, settings.seed),), settings.temperature, settings.guidance)


def edit_request(source: EditSource, vector: np.ndarray, description: str, settings: Settings) -> JobRequest:
    """``settings.count`` edits of ``source.image``: its ``source.keep`` region kept token for token, the rest redrawn toward one point."""
    if source.keep not in KEEP_REGIONS:
        raise ValueError(f"keep {source.keep!r}: choose one of {', '.join(KEEP_REGIONS)}")
    vector = unit_vector(vector, name="the point to edit toward")
    title = f"{source.description} → {description} (keeping the {source.keep})"
    return JobRequest("edit", title, (Condition(vector, title, settings.count, settings.seed),), settings.temperature, settings.guidance, source)


def image_uri(image: Image.Image) -> str:
    """A PIL image as a PNG ``data:`` URI (what an ``<img src>`` shows)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class SlotView:
    """One image of a job as the page shows it.

    ``caption`` is short ("3/6" along a path, else the image's seed); ``uri`` is a PNG data URI (the partial preview while sampling, the image when
    ``finished``), or "" before its first token; ``added`` is its item id once added.
    """

    description: str
    caption: str
    uri: str
    finished: bool
    added: int | None = None


@dataclass(frozen=True)
class JobView:
    """A snapshot of a job: state, progress in [0, 1], a message, its images, and a version that changes with them."""

    id: str
    kind: str
    title: str
    state: str
    progress: float
    message: str
    slots: tuple[SlotView, ...]
    version: int

    @property
    def running(self) -> bool:
        return self.state not in FINAL_STATES


class _Cancelled(Exception):
    """Raised inside the per-token callback to stop sampling."""


@dataclass
class Job:
    """A job's mutable state (guarded by ``lock``; read it through :meth:`view`)."""

    session: str
    request: JobRequest
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = QUEUED
    progress: float = 0.0
    message: str = "waiting for a free worker"
    version: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    previews: list[str] = field(default_factory=list)
    images: list[Image.Image | None] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    added: dict[int, int] = field(default_factory=dict)
    descriptions: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        count = self.request.image_count
        self.previews, self.uris, self.images = [""] * count, [""] * count, [None] * count
        conditions = self.request.conditions
        self.descriptions = [condition.description for condition in conditions for _ in range(condition.count)]
        if self.request.kind == "path":
            self.captions = [f"{step + 1}/{len(conditions)}" for step in range(len(conditions))]
        else:
            self.captions = [f"seed {condition.seed + j}" for condition in conditions for j in range(condition.count)]

    def update(self, **changes: object) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(self, name, value)
            self.version += 1

    def view(self) -> JobView:
        with self.lock:
            slots = tuple(
                SlotView(description, caption, uri or preview, bool(uri), self.added.get(index))
                for index, (description, caption, preview, uri) in enumerate(zip(self.descriptions, self.captions, self.previews, self.uris))
            )
            return JobView(self.id, self.request.kind, self.request.title, self.state, self.progress, self.message, slots, self.version)


class JobManager:
    """Generation jobs on the runner's :data:`~dashboard.runner.GENERATION` lane, one current job per session.

    Args:
        load_generator: returns the loaded :class:`embedspace.Generator` (called in the
            worker, so a first, slow load never blocks a request; a ``ValueError`` it
            raises becomes the job's message).
        runner: the app's job runner; its generation lane's workers are the jobs sampled at
            the same time (others wait in its queue).
        preview_every: tokens between partial previews (default: one row of the code grid).
        max_sessions: finished jobs of at most this many sessions are kept (oldest dropped).
        on_update: ``on_update(job)`` after every progress report, from the worker thread
            (for logging or tests; it runs between tokens, so keep it short).
    """

    def __init__(
        self,
        load_generator: Callable[[], object],
        runner: JobRunner,
        preview_every: int | None = None,
        max_sessions: int = 64,
        on_update: Callable[[Job], None] | None = None,
    ):
        self.load_generator = load_generator
        self.runner = runner
        self.preview_every = preview_every
        self.max_sessions = max_sessions
        self.on_update = on_update
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def submit(self, session: str, request: JobRequest) -> Job:
        """Queue ``request`` as the session's job (cancelling the session's running one) and return it."""
        if not session:
            raise ValueError("this page has no session id; reload the page")
        if not request.conditions:
            raise ValueError("nothing to generate from; pick a point first")
        job = Job(session, request)
        with self._lock:
            previous = self._jobs.pop(session, None)
            if previous is not None:
                previous.cancel.set()
            self._jobs[session] = job
            self._evict()
        self.runner.submit(GENERATION, lambda: self._run(job), name=f"generation {job.id}")
        return job

    def _evict(self) -> None:
        finished = [session for session, job in self._jobs.items() if job.done.is_set()]
        while len(self._jobs) > self.max_sessions and finished:
            del self._jobs[finished.pop(0)]

    def job(self, session: str | None) -> Job | None:
        """The session's current job, or None."""
        with self._lock:
            return self._jobs.get(session) if session else None

    def view(self, session: str | None) -> JobView | None:
        """A snapshot of the session's current job, or None."""
        job = self.job(session)
        return job.view() if job is not None else None

    def cancel(self, session: str | None) -> bool:
        """Ask the session's job to stop at its next token; False when none is running."""
        job = self.job(session)
        if job is None or job.done.is_set():
            return False
        job.cancel.set()
        job.update(message="cancelling…")
        return True

    def image(self, session: str | None, job_id: str, index: int) -> Image.Image:
        """Finished image ``index`` of the session's job ``job_id`` (with its condition in ``info``).

        Raises:
            ValueError: no such job for this session (a newer one replaced it) or no such finished image.
        """
        job = self.job(session)
        if job is None or job.id != job_id:
            raise ValueError("that image belongs to an earlier generation; generate again")
        with job.lock:
            image = job.images[index] if 0 <= index < len(job.images) else None
        if image is None:
            raise ValueError(f"image {index + 1} is not finished")
        return image

    def mark_added(self, session: str | None, job_id: str, index: int, item_id: int) -> None:
        """Remember that image ``index`` of the job was added to the space as ``item_id``."""
        job = self.job(session)
        if job is not None and job.id == job_id:
            with job.lock:
                job.added[index] = int(item_id)
                job.version += 1

    def wait(self, session: str, timeout: float | None = None) -> JobView | None:
        """Block until the session's current job is finished (for scripts and tests; pages poll instead)."""
        job = self.job(session)
        if job is None:
            return None
        job.done.wait(timeout)
        return job.view()

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel every job and wait (up to ``timeout`` seconds each) until they have stopped; the runner keeps running."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel.set()
        for job in jobs:
            job.done.wait(timeout)

    # -- the worker ------------------------------------------------------------------------

    def _notify(self, job: Job) -> None:
        if self.on_update is not None:
            self.on_update(job)

    def _run(self, job: Job) -> None:
        try:
            if job.cancel.is_set():
                raise _Cancelled
            job.update(state=RUNNING, message="loading the generator")
            generator = self.load_generator()
            self._sample(job, generator)
            job.update(state=DONE, progress=1.0, message=f"{len(job.images)} image{'s' if len(job.images) != 1 else ''} from {job.request.title}")
        except _Cancelled:
            finished = sum(image is not None for image in job.images)
            job.update(state=CANCELLED, message=f"cancelled ({finished} of {len(job.images)} images finished)")
        except ValueError as error:  # a generator that is missing or does not fit the space, bad options
            job.update(state=FAILED, message=str(error))
        except Exception as error:  # keep serving; the page shows what happened
            logger.exception("generation job %s failed", job.id)
            job.update(state=FAILED, message=f"generation failed: {error}")
        finally:
            job.done.set()
            self._notify(job)

    def _sample(self, job: Job, generator: object) -> None:
        """Sample every condition of the job in turn, reporting progress and previews per token."""
        grid = generator.prior.config.grid_size
        tokens_per_image = grid * grid
        every = max(1, self.preview_every or grid)
        total = job.request.image_count * tokens_per_image
        first = 0  # index of the condition's first image
        job.update(message="sampling")
        for condition in job.request.conditions:
            slots = range(first, first + condition.count)

            def on_token(step: int, tokens: object, slots: range = slots) -> None:
                if job.cancel.is_set():
                    raise _Cancelled
                generated = step + 1
                if generated % every and generated != tokens_per_image:
                    return
                uris = [image_uri(image) for image in generator.preview(tokens)]
                with job.lock:
                    job.previews[slots.start : slots.stop] = uris
                    job.progress = (slots.start * tokens_per_image + generated * len(slots)) / total
                    job.version += 1
                self._notify(job)

            request = GenerationRequest(condition.vector, n=condition.count, descriptions=condition.description)
            options = SamplingOptions(guidance=job.request.guidance, temperature=job.request.temperature, seed=condition.seed)
            edit = job.request.edit
            if edit is None:
                result = generator.generate(request, options, on_token=on_token, batch_size=condition.count)  # images carry their provenance
            else:
                result = generator.edit(edit.image, request, edit.keep, options, on_token=on_token, batch_size=condition.count)
            uris = [image_uri(image) for image in result.images]
            with job.lock:
                job.images[slots.start : slots.stop] = result.images
                job.uris[slots.start : slots.stop] = uris
                job.version += 1
            first += condition.count
