# Every target bootstraps what it needs: a fresh clone runs `make run` or `make test` directly.
SHELL := /bin/bash
PYTHON ?= $(shell cd $(CURDIR) && (command -v python3.13 >/dev/null && echo python3.13 || echo python3))
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint unit integration e2e browser sam-validate sam-build bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m aijobs.local

# unit, integration (moto; includes `sam validate --lint` and `sam build`) and e2e (the local stack), one run on
# PYTEST_WORKERS processes (pytest-xdist; worksteal evens out the long SAM and e2e tests; 0: one process)
PYTEST_WORKERS ?= 2
# The SAM CLI's own venv is installed in the background (it waits on PyPI more than on the CPU; scripts/sam.sh
# takes a lock, so the SAM tests wait for it), while the checks run and Chromium is installed; then every test.
test: $(STAMP)
	bash scripts/sam.sh --version > /dev/null 2>&1 &
	$(MAKE) --no-print-directory -j2 lint browser
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

e2e: $(STAMP) browser
	$(PY) -m pytest -q tests/e2e

# Debian's headless Chromium and chromedriver for the console's browser tests (tests/e2e/test_console.py); quick
# when installed
browser:
	bash scripts/browser.sh

sam-validate:
	bash scripts/sam.sh validate --lint

sam-build:
	bash scripts/sam.sh build

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .mypy_cache .ruff_cache
