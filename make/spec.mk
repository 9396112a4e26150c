# The executable specification and its report (README: "Running the specification").
# Included by the Makefile, which defines VENV, PY and STAMP (the .venv install stamp).
BEHAVE  := $(VENV)/bin/behave
RESULTS := reports/allure-results

# In GitHub Actions, link each scenario to the guide's section on GitHub instead of the relative path.
ifdef GITHUB_REPOSITORY
SPEC_LINKS := -D "AllureFormatter.link_pattern=$(GITHUB_SERVER_URL)/$(GITHUB_REPOSITORY)/blob/$(GITHUB_SHA)/docs/DEPLOYMENT.md\#{}"
endif

.PHONY: spec spec-container spec-report spec-dry-run spec-embedded spec-pooler browser

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# every scenario on the embedded PostgreSQL, then the report; prints its path. Fails if a scenario
# failed, but builds the report first so the failure can be read there.
spec: $(STAMP) node_modules/.installed
	@status=0; $(BEHAVE) $(SPEC_LINKS) -D db=embedded || status=$$?; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) || status=$$((status ? status : 1)); \
	exit $$status

# the same scenarios in a PostgreSQL container: PGSHIP_TEST_IMAGE, else postgres:16 when it can be
# pulled, else the offline pgship-local/postgres:15 (built when missing; scripts/pick-postgres-image.sh)
spec-container: $(STAMP) node_modules/.installed
	bash scripts/start-docker.sh
	@image=$$(bash scripts/pick-postgres-image.sh); \
	status=0; PGSHIP_TEST_IMAGE=$$image $(BEHAVE) $(SPEC_LINKS) -D db=container -f progress || status=$$?; \
	$(PY) -m pgship.testing.spec.report $(RESULTS) || status=$$((status ? status : 1)); \
	exit $$status

# rebuild the report from the last run's results
spec-report: $(STAMP) node_modules/.installed
	$(PY) -m pgship.testing.spec.report $(RESULTS)

# no undefined steps (exits non-zero on one), without touching a database
spec-dry-run: $(STAMP)
	$(BEHAVE) --dry-run -f null

spec-embedded: $(STAMP)
	$(BEHAVE) -D db=embedded -f progress

# the connection-pooler feature with every scenario through a real PgBouncer, in both pool modes
POOLER_FEATURE := features/deploying_through_a_connection_pooler.feature
spec-pooler: $(STAMP) pgbouncer
	$(BEHAVE) -D db=embedded+pgbouncer -D pool=transaction -f progress $(POOLER_FEATURE)
	$(BEHAVE) -D db=embedded+pgbouncer -D pool=session -f progress $(POOLER_FEATURE)

# Debian's chromium for tests/report/test_report_in_browser.py (installed only when missing)
browser:
	bash scripts/install-chromium.sh
