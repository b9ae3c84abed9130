"""Flask routes for item files: ``/thumbnail/<id>`` (PNG preview of an image item) and ``/media/<id>``.

``/media/<id>`` serves the file behind an image or audio item (what ``html.Audio`` plays).
A space folder is untrusted input (a shared or crafted space can name any path as an
item's ``source``), so the routes serve a file only under this rule:

* ``/thumbnail/<id>``: ``thumbnails/<id>.png`` of the space, when it resolves (links
  followed) inside the space's ``thumbnails/`` folder;
* ``/media/<id>``: the item's ``source``, when its name and the file it resolves to both end
  in an image or audio suffix (``.png``, ``.jpg``, …, ``.wav``, ``.flac``, …) and the file
  exists; a relative ``source`` (images added from memory: ``media/<id>.png``) must also
  resolve inside the space folder, so ``../`` cannot leave it. An absolute ``source`` is the
  original file of an item added from disk, as recorded at add time.

Everything else (unknown ids, text items, ``/etc/passwd``, ``../../secret.wav``, a link
named ``x.png`` pointing at a file without such a suffix) answers 404. Paths are absolute
(the space folder is resolved when the app is created): Flask's ``send_file`` would resolve a
relative path against the dashboard package, not the working directory.
"""

from __future__ import annotations

import mimetypes

from flask import Flask, abort, send_file
from werkzeug.wrappers import Response

from dashboard.access import SpaceAccess


def register(server: Flask, access: SpaceAccess) -> None:
    """Add the thumbnail and media routes to the Flask ``server``."""

    @server.route("/thumbnail/<int:item_id>")
    def thumbnail(item_id: int) -> Response:
        try:
            path = access.thumbnail_path(item_id)
        except ValueError:
            path = None
        if path is None:
            abort(404)
        return send_file(path, mimetype="image/png", max_age=3600)

    @server.route("/media/<int:item_id>")
    def media(item_id: int) -> Response:
        try:
            path = access.media_path(item_id)
        except ValueError:
            path = None
        if path is None:
            abort(404)
        mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return send_file(path, mimetype=mimetype, conditional=True, max_age=3600)
