# pgship: `make spec` runs the specification and builds the report; `make test` is everything CI checks.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv lint format pytest test-report test clean pgbouncer

include make/infra.mk
include make/faults.mk
include make/spec.mk
include bench/bench.mk

# also the system library the embedded PostgreSQL's uuid-ossp loads (scripts/install-postgres-libs.sh)
$(STAMP): pyproject.toml
	bash scripts/install-postgres-libs.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

LINTED := src tests steps environment.py bench tools

lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

# pytest in PYTEST_WORKERS processes (pytest-xdist; each has its own embedded PostgreSQL), without the
# checks that need npm and a browser (marked `browser`: tests/report, the guide's diagrams)
PYTEST_WORKERS ?= 4
PYTEST_FLAGS ?= -q
pytest: $(STAMP) pgbouncer
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_FLAGS) -m 'not container and not browser'

# the report opened in Chromium and the guide's diagrams rendered: needs Allure (npm) and Debian's
# chromium (make/spec.mk); .ci/run runs it
test-report: $(STAMP) node_modules/.installed browser pgbouncer
	$(PY) -m pytest -n $(PYTEST_WORKERS) $(PYTEST_FLAGS) -m 'browser and not container'

# Debian's pgbouncer for the pooler tests and the embedded+pgbouncer spec backend (only when missing)
pgbouncer:
	bash scripts/install-pgbouncer.sh

test: lint pytest spec-dry-run spec-embedded

clean:
	rm -rf $(VENV) node_modules reports/allure-results reports/allure-report .pytest_cache .mypy_cache
