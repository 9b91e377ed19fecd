# Two commands on a fresh machine with Python >= 3.10:
#   make train   train on the bundled MovieLens latest-small (extra settings: make train ARGS="encoder=gru")
#   make test    ruff (lint + format check), then the default test suite on one worker per core
#                (make test JOBS=0 PYTEST_ARGS="-m slow" for the slow tests, one at a time)
# The first run makes the virtual environment .venv and installs the project with its dev extra;
# later runs reuse it (and reinstall only when pyproject.toml changed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per core, at most 4; each takes whole test files, so a module's
# fixtures run once. JOBS=0 runs the tests in this process, one after another.
JOBS ?= $(shell $(PYTHON) -c "import os; print(min(4, os.cpu_count() or 1))")

.PHONY: train test install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

train: $(STAMP)
	$(BIN)/seqrec-train $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(JOBS) --dist loadfile $(PYTEST_ARGS)
