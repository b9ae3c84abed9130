"""What one dashboard app owns: space access, maps, the generator source, generation jobs and the one job runner.

:func:`dashboard.app.create_app` opens one :class:`Services` per app, keeps it as
``app.services`` and hands its parts to the panels' callbacks by closure. Nothing is kept
in module globals, so two apps in one process (tests, a server hosting several spaces)
share nothing by accident, and dropping an app drops everything it loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.access import MAX_UPLOAD_BYTES, SpaceAccess
from dashboard.generator_source import GeneratorSource
from dashboard.jobs import Job, JobManager
from dashboard.density import LOD_POINTS, LOD_THRESHOLD
from dashboard.maps import INLINE_HOVER_LIMIT, SpaceMaps
from dashboard.runner import DEFAULT_WORKERS, GENERATION, MAPS, JobRunner
from embedspace.projection import Projection


@dataclass(frozen=True)
class Services:
    """The server-side objects of one app; build them with :meth:`open`.

    Attributes:
        access: the space, its records, searches and writes (:mod:`dashboard.access`).
        maps: the 2-D and 3-D maps, computed on ``runner`` (:mod:`dashboard.maps`).
        generator: the generator, loaded on first use (:mod:`dashboard.generator_source`).
        jobs: the sessions' generation jobs, sampled on ``runner`` (:mod:`dashboard.jobs`).
        runner: the one background job runner (:mod:`dashboard.runner`).
    """

    access: SpaceAccess
    maps: SpaceMaps
    generator: GeneratorSource
    jobs: JobManager
    runner: JobRunner

    @classmethod
    def open(
        cls,
        space_path: str | Path,
        model: Any = None,
        generator: Any = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        projection_factory: Callable[[int], Projection] | None = None,
        inline_hover_limit: int = INLINE_HOVER_LIMIT,
        lod_threshold: int = LOD_THRESHOLD,
        lod_points: int = LOD_POINTS,
        refresh_seconds: float = 1.0,
        generation_workers: int = DEFAULT_WORKERS[GENERATION],
        on_generation_update: Callable[[Job], None] | None = None,
    ) -> Services:
        """Open the space at ``space_path`` and build the parts around it (nothing runs in the background yet).

        ``generator`` is as in :func:`dashboard.app.create_app`; ``on_generation_update(job)``
        runs after every progress report of a generation job, in its worker (keep it short).

        Raises:
            embedspace.SpaceError: there is no space at ``space_path``.
        """
        access = SpaceAccess(space_path, model=model, max_upload_bytes=max_upload_bytes, refresh_seconds=refresh_seconds)
        space = access.space()  # fail now, with the library's message, if there is no space there
        runner = JobRunner({MAPS: DEFAULT_WORKERS[MAPS], GENERATION: generation_workers})
        source = GeneratorSource(generator, space.model_id)
        return cls(
            access=access,
            maps=SpaceMaps(access, runner, projection_factory, inline_hover_limit, lod_threshold, lod_points),
            generator=source,
            jobs=JobManager(source.get, runner, on_update=on_generation_update),
            runner=runner,
        )

    def warm_up(self) -> None:
        """Start loading the model and the 2-D map in the background (call once at start)."""
        self.runner.submit(MAPS, self.access.warm_up, name="load the model")
        self.maps.status("2d")

    def shutdown(self, timeout: float | None = None) -> None:
        """Cancel the generation jobs and stop the runner's workers (waiting up to ``timeout`` seconds for each)."""
        self.jobs.shutdown(timeout)
        self.runner.shutdown(timeout)
