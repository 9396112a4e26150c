# The executable specification and its report (README: "Running the specification").
# From a fresh clone these targets create .venv and node_modules themselves.
VENV       ?= .venv
PY         := $(VENV)/bin/python
BEHAVE     := $(VENV)/bin/behave
RESULTS    := reports/allure-results
REPORT     := reports/allure-report/index.html

# In GitHub Actions, link each scenario to the guide's section on GitHub instead of the relative path.
ifdef GITHUB_REPOSITORY
SPEC_LINKS := -D "AllureFormatter.link_pattern=$(GITHUB_SERVER_URL)/$(GITHUB_REPOSITORY)/blob/$(GITHUB_SHA)/docs/DEPLOYMENT.md\#{}"
endif

.PHONY: spec spec-container spec-report test lint pytest spec-dry-run spec-embedded browser

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

deps: $(VENV)/.installed node_modules/.installed

spec: deps  ## run every scenario on the embedded PostgreSQL, build the report, print its path
	@status=0; $(BEHAVE) $(SPEC_LINKS) -D db=embedded || status=$$?; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) || status=$$((status ? status : 1)); \
	exit $$status

spec-container: deps  ## the same scenarios in a PostgreSQL container (offline image when no registry)
	@if [ -f scripts/start-docker.sh ]; then bash scripts/start-docker.sh; fi
	@image=$${PGSHIP_TEST_IMAGE:-}; \
	if [ -z "$$image" ] && [ -f scripts/pick-postgres-image.sh ]; then image=$$(bash scripts/pick-postgres-image.sh); fi; \
	status=0; PGSHIP_TEST_IMAGE=$$image $(BEHAVE) $(SPEC_LINKS) -D db=container -f progress || status=$$?; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) || status=$$((status ? status : 1)); \
	exit $$status

spec-report: node_modules/.installed  ## rebuild the report from the last run's results
	$(PY) -m pgship.testing.spec.report $(RESULTS)

browser:  ## install Debian's chromium for the report-in-a-browser test (if missing)
	bash scripts/install-chromium.sh

lint: deps
	$(VENV)/bin/ruff check .

pytest: deps browser
	$(PY) -m pytest

spec-dry-run: deps  ## fail on undefined steps without touching a database
	$(BEHAVE) --dry-run -f null

spec-embedded: deps
	$(BEHAVE) -D db=embedded -f progress

test: lint pytest spec-dry-run spec-embedded  ## ruff, pytest, undefined-step check, every scenario on embedded
