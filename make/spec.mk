# The executable specification and its report (README: "Running the specification").
# Included by the Makefile, which defines VENV, PY and STAMP (the .venv install stamp).
BEHAVE  := $(VENV)/bin/behave
RESULTS := reports/allure-results

# Each scenario links to the guide's section it proves. Locally: guide.html, the guide rendered beside
# the report (its "Proved by" links open the scenarios in the report); the formatter makes the path an
# absolute file:// URL. In GitHub Actions: the guide on GitHub, and the guide page's links to repository
# files go there too.
ifdef GITHUB_REPOSITORY
SPEC_LINKS := -D "AllureFormatter.link_pattern=$(GITHUB_SERVER_URL)/$(GITHUB_REPOSITORY)/blob/$(GITHUB_SHA)/docs/DEPLOYMENT.md\#{}"
REPORT_FLAGS := --repository-url $(GITHUB_SERVER_URL)/$(GITHUB_REPOSITORY)/blob/$(GITHUB_SHA)
else
SPEC_LINKS := -D "AllureFormatter.link_pattern=guide.html\#{}"
endif

# The sample app's release reviewed (`pgship review`, no database: every file, sizes unknown, replayed
# on the embedded server), as an epic "Release review" beside the specification in the same report.
# A migration that needs attention shows as broken there; it does not fail `make spec`.
REVIEW := env -u DATABASE_URL -u PGHOST -u PGDATABASE -u PGSERVICE $(VENV)/bin/pgship review \
	-m docker/postgres/migrations --replay --allure-results $(RESULTS)

.PHONY: spec spec-container spec-matrix spec-report spec-dry-run spec-embedded spec-pooler browser

# The specification runs in SPEC_WORKERS behave processes at once (pgship.testing.spec.parallel): each
# worker takes a share of the feature files and starts its own embedded server; their Allure results land
# in $(RESULTS) as one run's would, and the run fails if any worker failed. SPEC_WORKERS=1: one behave.
SPEC_WORKERS ?= 4
SPEC_RUN := $(PY) -m pgship.testing.spec.parallel --workers $(SPEC_WORKERS)
# `make test SPEC_PG=16` runs the embedded specification on that major with the matrix's result ids, so that
# `make spec-matrix SPEC_MAJORS="14 15 17 18" SPEC_MATRIX_KEEP=1` adds the other majors to the same report
# (.ci/run); empty: the embedded server's default major, plain result ids.
SPEC_PG ?=

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# every scenario on the embedded PostgreSQL, then the report; prints its path. Fails if a scenario
# failed, but builds the report first so the failure can be read there.
spec: $(STAMP) node_modules/.installed pgbouncer
	@status=0; $(SPEC_RUN) $(SPEC_LINKS) -D db=embedded || status=$$?; \
	$(REVIEW) > reports/release-review.txt || echo "release review: exit $$?, see reports/release-review.txt"; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) $(REPORT_FLAGS) || status=$$((status ? status : 1)); \
	exit $$status

# the same scenarios in a PostgreSQL container: PGSHIP_TEST_IMAGE, else postgres:16 when it can be
# pulled, else the offline pgship-local/postgres:15 (built when missing; scripts/pick-postgres-image.sh)
spec-container: $(STAMP) node_modules/.installed pgbouncer
	bash scripts/start-docker.sh
	@image=$$(bash scripts/pick-postgres-image.sh); \
	status=0; PGSHIP_TEST_IMAGE=$$image $(BEHAVE) $(SPEC_LINKS) -D db=container -f progress || status=$$?; \
	$(REVIEW) > reports/release-review.txt || echo "release review: exit $$?, see reports/release-review.txt"; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) $(REPORT_FLAGS) || status=$$((status ? status : 1)); \
	exit $$status

# every scenario on each PostgreSQL major the embedded server runs (binaries fetched on first use,
# src/pgship/testing/binaries.py), into one report: each result carries a "PostgreSQL" parameter and the
# report's environment lists every version. Runs them all, then fails if any run failed.
# SPEC_MATRIX_KEEP=1 adds to the results already there (CI: those of `make test SPEC_PG=16`) instead of
# starting afresh, so a major already run is not run twice (.ci/run).
SPEC_MAJORS ?= 14 15 16 17 18
SPEC_MATRIX_KEEP ?= 0
spec-matrix: $(STAMP) node_modules/.installed pgbouncer
	@status=0; keep=$(SPEC_MATRIX_KEEP); \
	for major in $(SPEC_MAJORS); do \
		echo "== the specification on embedded PostgreSQL $$major"; \
		$(SPEC_RUN) $(SPEC_LINKS) -D db=embedded -D pg=$$major -D pgship.keep_results=$$keep -f progress \
			|| status=$$?; \
		keep=1; \
	done; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) $(REPORT_FLAGS) || status=$$((status ? status : 1)); \
	exit $$status

# rebuild the report from the last run's results
spec-report: $(STAMP) node_modules/.installed
	$(PY) -m pgship.testing.spec.report $(RESULTS) $(REPORT_FLAGS)

# no undefined steps (exits non-zero on one), without touching a database
spec-dry-run: $(STAMP)
	$(BEHAVE) --dry-run -f null

# `make test`'s run: the results and report links as `make spec` writes them (no report built: no npm)
spec-embedded: $(STAMP) pgbouncer
	$(SPEC_RUN) $(SPEC_LINKS) -D db=embedded $(if $(SPEC_PG),-D pg=$(SPEC_PG)) -f progress

# the connection-pooler feature with every scenario through a real PgBouncer, in both pool modes
POOLER_FEATURE := features/deploying_through_a_connection_pooler.feature
spec-pooler: $(STAMP) pgbouncer
	$(BEHAVE) -D db=embedded+pgbouncer -D pool=transaction -f progress $(POOLER_FEATURE)
	$(BEHAVE) -D db=embedded+pgbouncer -D pool=session -f progress $(POOLER_FEATURE)

# Debian's chromium for tests/report/test_report_in_browser.py (installed only when missing)
browser:
	bash scripts/install-chromium.sh
