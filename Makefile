# pgship: `make spec` runs the specification and builds the report; `make test` is everything CI checks.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv lint format pytest test clean

include make/infra.mk
include make/faults.mk

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

pytest: $(STAMP)
	$(PY) -m pytest

test: lint pytest

clean:
	rm -rf $(VENV) reports/allure-results reports/allure-report .pytest_cache
