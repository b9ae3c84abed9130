"""embedspace dashboard: a Dash app to explore a space (UMAP map, search, neighbours, selection, generation).

Start it with ``dashboard.serve(space_path)`` (the CLI's ``embedspace serve SPACE``), or
build the app with ``dashboard.create_app(space_path)`` to run it under another server.
"""

from dashboard.app import create_app, serve

__all__ = ["create_app", "serve"]
