"""The Dash app factory and server entry point.

``create_app(space_path)`` builds the app for one space: it opens the space (failing early
with the library's message when there is none) with everything the app owns around it
(:class:`dashboard.services.Services`, kept as ``app.services``: space access, maps, the
generator source, generation jobs and the one background job runner), lays out the
panels and registers their callbacks (which get those parts by closure) and the file
routes, and checks every callback request before it runs (:mod:`dashboard.guard`). With
``generator=`` the generation panel makes images from points of the space (the generator
is loaded on first use, once per app). Nothing is loaded when this module is imported.
``serve`` runs it with Flask's threaded server, debug mode off unless asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dash import Dash, dcc, html

from dashboard import guard, ids, routes
from dashboard.access import MAX_UPLOAD_BYTES
from dashboard.density import LOD_POINTS, LOD_THRESHOLD
from dashboard.jobs import Job
from dashboard.maps import INLINE_HOVER_LIMIT
from dashboard.panels import about, generate, map as map_panel, neighbors, search, selection, url
from dashboard.runner import DEFAULT_WORKERS, GENERATION
from dashboard.services import Services
from embedspace import Space, SpaceError
from embedspace.projection import Projection

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
TITLE = "embedspace"
RECORDED = "recorded"
"""``generator=RECORDED``: the generator the space records, else the one registered for its model (:meth:`embedspace.Space.default_generator`)."""


def layout(services: Services) -> html.Div:
    """The whole page: header with the about box, the map with the generation panel below it, and the side panels."""
    access = services.access
    summary = f"This space: {access.count():,} items, model {access.model_id()}."
    return html.Div(
        [
            url.layout(),
            dcc.Store(id=ids.STORE_CONFIG, data={"max_upload_bytes": access.max_upload_bytes}),
            html.Header([html.H1(TITLE), html.Span(summary, className="summary"), about.layout(summary, access.modality_gap_lines())], className="header"),
            html.Main(
                [
                    html.Div([map_panel.layout(access), generate.layout(services.generator)], className="main-column"),
                    html.Aside([search.layout(access), neighbors.layout(), selection.layout()], className="sidebar"),
                ],
                className="main",
            ),
        ],
        className="page",
    )


def create_app(
    space_path: str | Path,
    k: int = 10,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    projection_factory: Callable[[int], Projection] | None = None,
    inline_hover_limit: int = INLINE_HOVER_LIMIT,
    lod_threshold: int = LOD_THRESHOLD,
    lod_points: int = LOD_POINTS,
    warm_up: bool = True,
    model: Any = None,
    generator: Any = RECORDED,
    refresh_seconds: float = 1.0,
    generation_workers: int = DEFAULT_WORKERS[GENERATION],
    on_generation_update: Callable[[Job], None] | None = None,
) -> Dash:
    """The dashboard for the space at ``space_path``.

    Args:
        space_path: a space folder (see :class:`embedspace.Space`).
        k: results per search and neighbours per item.
        max_upload_bytes: largest image or audio upload (default 20 MB).
        projection_factory: ``n_components -> Projection`` for maps not yet stored.
        inline_hover_limit: maps up to this many points carry labels for hover text.
        lod_threshold: maps with more points are drawn as a density image of every point
            under a sample of the points in view, refreshed on pan and zoom (see :mod:`dashboard.density`).
        lod_points: most points in that sample.
        warm_up: load the model and start the 2-D map in the background now.
        model: an already loaded :class:`~embedspace.EmbeddingModel` of the space to share.
        generator: for the generation panel: :data:`RECORDED` (the default: the space's
            recorded generator, else the one registered for its model, as ``space.generate``
            uses), a generator name (e.g. "emoji-mini"), a folder written by
            ``Generator.save_pretrained`` or a loaded ``Generator``; None turns generation off
            (the panel says how to turn it on). Loaded on first use.
        refresh_seconds: how often to look for writes to the space by other processes (0: at every read).
        generation_workers: generation jobs sampled at the same time (others wait in a queue).
        on_generation_update: ``on_generation_update(job)`` after every progress report of a
            generation job, from its worker thread (for logging or tests; keep it short).

    The app keeps what it owns as ``app.services`` (:class:`~dashboard.services.Services`);
    ``app.services.shutdown()`` stops its background work.

    Raises:
        embedspace.SpaceError: there is no space at ``space_path``.
    """
    space_path = Path(space_path).resolve()  # files are served by absolute path, whatever the working directory
    if isinstance(generator, str) and generator == RECORDED:
        generator = recorded_generator(space_path)
    services = Services.open(
        space_path,
        model=model,
        generator=generator,
        max_upload_bytes=max_upload_bytes,
        projection_factory=projection_factory,
        inline_hover_limit=inline_hover_limit,
        lod_threshold=lod_threshold,
        lod_points=lod_points,
        refresh_seconds=refresh_seconds,
        generation_workers=generation_workers,
        on_generation_update=on_generation_update,
    )
    access, maps = services.access, services.maps
    app = Dash(__name__, title=TITLE, update_title=None, assets_folder=str(ASSETS), serve_locally=True, compress=True)  # gzip/brotli: the scripts shrink ~4x
    app.services = services
    app.layout = lambda: layout(services)
    # uploads arrive base64-encoded inside a callback's JSON: allow the limit plus room for the rest
    app.server.config["MAX_CONTENT_LENGTH"] = max_upload_bytes * 4 // 3 + 1024 * 1024
    routes.register(app.server, access)
    url.register(app, access)
    map_panel.register(app, access, maps)
    search.register(app, access, k)
    neighbors.register(app, access, k)
    selection.register(app, access, maps)
    generate.register(app, access, services.jobs)
    guard.install(app, access.space().dim)  # after every callback: malformed callback requests get 400 before any runs
    if warm_up:
        services.warm_up()
    return app


def recorded_generator(space_path: Path) -> str | Path | None:
    """The space's :meth:`~embedspace.Space.default_generator`; None (generation off, with a warning) when the recorded one cannot be used."""
    space = Space.open(space_path)  # no space there: SpaceError, before anything starts
    try:
        return space.default_generator()
    except SpaceError as error:
        logger.warning("%s; generation is off (pass generator= to choose one)", error)
        return None


def serve(space_path: str | Path, host: str = "127.0.0.1", port: int = 8050, debug: bool = False, generator: Any = RECORDED, lod_threshold: int = LOD_THRESHOLD) -> None:
    """Run the dashboard for ``space_path`` at ``http://host:port`` until interrupted (``generator`` and ``lod_threshold`` as in :func:`create_app`)."""
    app = create_app(space_path, generator=generator, lod_threshold=lod_threshold)
    logger.info("serving %s at http://%s:%d", space_path, host, port)
    app.run(host=host, port=port, debug=debug)
