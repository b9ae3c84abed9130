# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_SPACE ?= data/spaces/emoji
HOST ?= 127.0.0.1
PORT ?= 8050

.PHONY: setup demo test test-all test-fast browser bench abuse clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dashboard,data,train,scale,test]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install everything

browser:  ## Debian chromium for the browser tests (apt-get, as root)
	bash tests/install_browser.sh

demo: setup  ## build the demo space if missing or made with other weights, then serve it
	$(BIN)/embedspace demo build --out $(DEMO_SPACE) --if-needed
	$(BIN)/embedspace serve $(DEMO_SPACE) --host $(HOST) --port $(PORT)

test: setup browser  ## the suite CI runs: browser tests, notebooks and the fast abuse campaign included; not the long `slow` runs
	$(BIN)/python -m pytest -m "not slow"

test-all: setup browser  ## everything, the long runs too (17-minute generator training, the full abuse campaign, UMAP at size)
	$(BIN)/python -m pytest

test-fast: setup  ## everything but slow and browser tests
	$(BIN)/python -m pytest -m "not slow and not browser"

bench: setup
	$(BIN)/python bench/search.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/audio_tower.py

abuse: setup  ## the full reliability campaign, printing its table
	$(BIN)/python bench/abuse.py

clean:
	rm -rf $(VENV) .pytest_cache
