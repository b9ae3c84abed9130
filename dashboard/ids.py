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
SELECTION_CLUSTER = "selection-cluster"  #: dropdown of the map's named clusters
SELECTION_PREV = "selection-prev"  #: previous page of the table
SELECTION_NEXT = "selection-next"  #: next page of the table
STORE_SELECTION = "store-selection"  #: {"dims", "revision", "shape" | "cluster" | "ids", "page"} or None

# -- generation panel --------------------------------------------------------------------------
STORE_SESSION = "store-session"  #: this page's session id (memory store: a new one per page load)
STORE_SLOTS = "store-slots"  #: the picked points A, B, C: {"a": {"description", "vector"} | None, ...}
STORE_GENERATE_JOB = "store-generate-job"  #: {"id": job id, "kind", "title"} of this session's latest job, or None
STORE_GENERATE_SEEN = "store-generate-seen"  #: [job id, version] of the job view shown (skips unchanged polls)
STORE_GENERATE_OVERLAY = "store-generate-overlay"  #: what the map draws for generation (see panels.generate)
GENERATE_SOURCE = "generate-source"  #: where to generate from: selected, query, path, arithmetic
GENERATE_COUNT = "generate-count"
GENERATE_STEPS = "generate-steps"
GENERATE_SEED = "generate-seed"
GENERATE_TEMPERATURE = "generate-temperature"
GENERATE_GUIDANCE = "generate-guidance"
GENERATE_BUTTON = "generate-button"
GENERATE_CANCEL = "generate-cancel"
GENERATE_INTERVAL = "generate-interval"
GENERATE_STATUS = "generate-status"
GENERATE_PROGRESS = "generate-progress"
GENERATE_MESSAGE = "generate-message"
GENERATE_IMAGES = "generate-images"  #: the images of the current job (a strip for a path)
GENERATE_ADDED = "generate-added"  #: where the images added to the space landed
GENERATE_HINT = "generate-hint"  #: which generator the page uses, or why there is none
STORE_EDIT = "store-edit"  #: the image an edit redraws: {"kind": "item", "id", "description"} or {"kind": "generated", "job", "index", "description"}, or None
EDIT_SELECTED = "edit-selected"  #: "edit the selected image"
EDIT_CLEAR = "edit-clear"  #: "stop editing"
EDIT_KEEP = "edit-keep"  #: the region an edit keeps: top, bottom, left, right, centre
EDIT_LABEL = "edit-label"  #: what is being edited

# -- about -------------------------------------------------------------------------------------
ABOUT = "about"
ABOUT_GAP = "about-gap"

#: type of the pattern-matching "pick this item" buttons in result lists
PICK = "pick-item"


#: type of the pattern-matching "put the selection / query into slot A, B or C" buttons
SLOT = "generate-slot"
#: type of the pattern-matching "add this generated image to the space" buttons
ADD_GENERATED = "generate-add"
#: type of the pattern-matching "edit this generated image" buttons
EDIT_GENERATED = "generate-edit"
#: type of the pattern-matching labels showing what each slot holds
SLOT_LABEL = "generate-slot-label"


def pick(item_id: int) -> dict[str, object]:
    """Id of the button that selects ``item_id`` (result rows in search and neighbours)."""
    return {"type": PICK, "index": int(item_id)}


def slot(name: str, source: str) -> dict[str, object]:
    """Id of the button that puts the ``source`` ("selected" / "query") point into slot ``name`` ("a", "b", "c")."""
    return {"type": SLOT, "slot": name, "source": source}


def slot_label(name: str) -> dict[str, object]:
    """Id of the text saying what slot ``name`` holds."""
    return {"type": SLOT_LABEL, "slot": name}


def edit_generated(index: int) -> dict[str, object]:
    """Id of the "edit" button of generated image ``index`` of the current job."""
    return {"type": EDIT_GENERATED, "index": int(index)}


def add_generated(index: int) -> dict[str, object]:
    """Id of the "add to space" button of generated image ``index`` of the current job."""
    return {"type": ADD_GENERATED, "index": int(index)}
