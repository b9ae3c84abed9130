"""Flask routes for item files: ``/thumbnail/<id>`` (PNG preview of an image item) and ``/media/<id>``.

``/media/<id>`` serves the file behind an image or audio item (what ``html.Audio`` plays).
Only files the space itself names are served; unknown ids and text items answer 404.
"""

from __future__ import annotations

import mimetypes

from flask import Flask, abort, send_file
from werkzeug.wrappers import Response

from dashboard.data import SpaceData


def register(server: Flask, data: SpaceData) -> None:
    """Add the thumbnail and media routes to the Flask ``server``."""

    @server.route("/thumbnail/<int:item_id>")
    def thumbnail(item_id: int) -> Response:
        try:
            path = data.thumbnail_path(item_id)
        except ValueError:
            path = None
        if path is None:
            abort(404)
        return send_file(path, mimetype="image/png", max_age=3600)

    @server.route("/media/<int:item_id>")
    def media(item_id: int) -> Response:
        try:
            path = data.media_path(item_id)
        except ValueError:
            path = None
        if path is None:
            abort(404)
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return send_file(path, mimetype=mimetype, conditional=True, max_age=3600)
