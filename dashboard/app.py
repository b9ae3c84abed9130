"""The Dash app factory and server entry point.

``create_app(space_path)`` builds the app for one space: it opens the space (failing early
with the library's message when there is none), lays out the panels and registers their
callbacks and the file routes, and checks every callback request before it runs
(:mod:`dashboard.guard`). With ``generator=`` the generation panel makes images from
points of the space (the generator is loaded on first use, once per process). Nothing is loaded when this module is imported. ``serve``
runs it with Flask's threaded server, debug mode off unless asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dash import Dash, dcc, html

from dashboard import guard, ids, routes
from dashboard.data import INLINE_HOVER_LIMIT, MAX_UPLOAD_BYTES, GeneratorSource, SpaceData, space_data
from dashboard.jobs import JobManager
from dashboard.panels import about, generate, map as map_panel, neighbors, search, selection, url
from embedspace.projection import Projection

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
TITLE = "embedspace"


def layout(data: SpaceData, source: GeneratorSource) -> html.Div:
    """The whole page: header with the about box, the map with the generation panel below it, and the side panels."""
    summary = f"This space: {data.count():,} items, model {data.space().model_id}."
    return html.Div(
        [
            url.layout(),
            dcc.Store(id=ids.STORE_CONFIG, data={"max_upload_bytes": data.max_upload_bytes}),
            html.Header([html.H1(TITLE), html.Span(summary, className="summary"), about.layout(summary)], className="header"),
            html.Main(
                [
                    html.Div([map_panel.layout(data), generate.layout(data, source)], className="main-column"),
                    html.Aside([search.layout(data), neighbors.layout(data), selection.layout(data)], className="sidebar"),
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
    warm_up: bool = True,
    model: Any = None,
    generator: Any = None,
    jobs: JobManager | None = None,
) -> Dash:
    """The dashboard for the space at ``space_path``.

    Args:
        space_path: a space folder (see :class:`embedspace.Space`).
        k: results per search and neighbours per item.
        max_upload_bytes: largest image or audio upload (default 20 MB).
        projection_factory: ``n_components -> Projection`` for maps not yet stored.
        inline_hover_limit: maps up to this many points carry labels for hover text.
        warm_up: load the model and start the 2-D map in the background now.
        model: an already loaded :class:`~embedspace.EmbeddingModel` of the space to share.
        generator: for the generation panel: a generator name (e.g. "emoji-mini"), a folder
            written by ``Generator.save_pretrained`` or a loaded ``Generator``; None turns
            generation off (the panel says how to turn it on). Loaded on first use.
        jobs: the :class:`~dashboard.jobs.JobManager` running generation jobs (default: two
            workers using ``generator``).

    Raises:
        embedspace.SpaceError: there is no space at ``space_path``.
    """
    space_path = Path(space_path).resolve()  # files are served by absolute path, whatever the working directory
    data = space_data(space_path, projection_factory=projection_factory, max_upload_bytes=max_upload_bytes, inline_hover_limit=inline_hover_limit, model=model)
    app = Dash(__name__, title=TITLE, update_title=None, assets_folder=str(ASSETS), serve_locally=True)
    source = GeneratorSource(generator, data.model_id())
    jobs = jobs if jobs is not None else JobManager(source.get)
    app.layout = lambda: layout(data, source)
    # uploads arrive base64-encoded inside a callback's JSON: allow the limit plus room for the rest
    app.server.config["MAX_CONTENT_LENGTH"] = max_upload_bytes * 4 // 3 + 1024 * 1024
    routes.register(app.server, data)
    url.register(app, data)
    map_panel.register(app, data)
    search.register(app, data, k)
    neighbors.register(app, data, k)
    selection.register(app, data)
    generate.register(app, data, jobs)
    guard.install(app, data)  # after every callback: malformed callback requests get 400 before any runs
    if warm_up:
        data.warm_up()
    return app


def serve(space_path: str | Path, host: str = "127.0.0.1", port: int = 8050, debug: bool = False, generator: Any = None) -> None:
    """Run the dashboard for ``space_path`` at ``http://host:port`` until interrupted (``generator`` as in :func:`create_app`)."""
    app = create_app(space_path, generator=generator)
    logger.info("serving %s at http://%s:%d", space_path, host, port)
    app.run(host=host, port=port, debug=debug)
