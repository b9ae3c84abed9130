"""Component ids of the dashboard, spelled once.

Every layout and callback refers to components through these constants; pattern-matching
ids are built with the helper functions at the bottom.
"""

from __future__ import annotations

# -- shared state (dcc.Store) and the URL ------------------------------------------------------
URL_IN = "url-in"  #: dcc.Location read on load and on back/forward (restores the view)
URL_OUT = "url-out"  #: dcc.Location written as the view changes (refresh=False: no reload)
STORE_CONFIG = "store-config"  #: {"max_upload_bytes": int}, read by the client-side upload check
STORE_SELECTED = "store-selected"  #: selected item id (int) or None
STORE_NEIGHBORS = "store-neighbors"  #: {"id": int, "results": [record, ...]} or None
STORE_QUERY = "store-query"  #: the current search: description, vector, results (see panels.search)
STORE_SEARCH_REQUEST = "store-search-request"  #: {"text": str} asked for by the URL
STORE_UPLOAD = "store-upload"  #: an upload that passed the size check, or its error
STORE_MAP_READY = "store-map-ready"  #: {"dims": "2d", "revision": int} once that map is ready, else None
STORE_FIGURE_META = "store-figure-meta"  #: what the drawn figure shows: dims, revision, colour, base trace count

# -- map panel ---------------------------------------------------------------------------------
MAP_GRAPH = "map-graph"
MAP_STATUS = "map-status"
MAP_PROGRESS = "map-progress"
MAP_INTERVAL = "map-interval"
MAP_VIEW = "map-view"  #: "2d" / "3d" toggle
MAP_COLOUR = "map-colour"  #: colour-by dropdown
MAP_HOVER = "map-hover"  #: preview of the hovered point (label, thumbnail, audio)

# -- search panel ------------------------------------------------------------------------------
SEARCH_TEXT = "search-text"
SEARCH_BUTTON = "search-button"
SEARCH_MODALITY = "search-modality"
SEARCH_IMAGE_UPLOAD = "search-image-upload"
SEARCH_AUDIO_UPLOAD = "search-audio-upload"
SEARCH_MESSAGE = "search-message"
SEARCH_RESULTS = "search-results"
SEARCH_RESULT_LIST = "search-result-list"  #: the ordered list of results inside SEARCH_RESULTS

# -- neighbours panel --------------------------------------------------------------------------
NEIGHBORS_PANEL = "neighbors-panel"
NEIGHBOR_LIST = "neighbor-list"  #: the ordered list of neighbours inside NEIGHBORS_PANEL

# -- selection panel ---------------------------------------------------------------------------
SELECTION_TABLE = "selection-table"

# -- about -------------------------------------------------------------------------------------
ABOUT = "about"

#: type of the pattern-matching "pick this item" buttons in result lists
PICK = "pick-item"


def pick(item_id: int) -> dict[str, object]:
    """Id of the button that selects ``item_id`` (result rows in search and neighbours)."""
    return {"type": PICK, "index": int(item_id)}
