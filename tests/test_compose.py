"""docker-compose.yml: it parses, and the stack starts in the documented order.

db (healthy) -> migrate (one-shot, exits 0) -> app. The file is checked twice: as Compose itself
resolves it (`docker compose config` / `docker-compose config`, when either is installed; .ci/run
installs Debian's docker-compose) and as plain YAML, which needs nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from graphlib import TopologicalSorter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PASSWORD = "compose-test-password"


def compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def resolved_by_compose() -> dict:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (scripts/start-docker.sh)")
    env = {**os.environ, "POSTGRES_PASSWORD": PASSWORD}
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def plain_yaml() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(params=["compose", "yaml"])
def services(request: pytest.FixtureRequest) -> dict:
    config = resolved_by_compose() if request.param == "compose" else plain_yaml()
    return config["services"]


def start_order(services: dict) -> list[str]:
    graph = {name: set(spec.get("depends_on") or {}) for name, spec in services.items()}
    return list(TopologicalSorter(graph).static_order())


def test_services_start_db_then_migrate_then_app(services: dict) -> None:
    order = start_order(services)
    assert order.index("db") < order.index("migrate") < order.index("app")


def test_migrate_waits_for_a_healthy_database(services: dict) -> None:
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])


def test_app_starts_only_after_migrations_succeeded(services: dict) -> None:
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"


def test_commands_are_pgship_migrate_and_serve(services: dict) -> None:
    assert services["migrate"]["command"][0] == "migrate"
    assert services["app"]["command"][0] == "serve"
    assert services["migrate"]["image"] == services["app"]["image"]


def test_published_ports_listen_on_loopback_only(services: dict) -> None:
    for name, spec in services.items():
        for port in spec.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
            assert text.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_no_password_is_written_in_the_file() -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"postgres(ql)?://[^@\s]*:[^@\s]*@", text), "a password inside a URL"
    for match in re.finditer(r"(POSTGRES_PASSWORD|PGPASSWORD):\s*(\S+)", text):
        assert match.group(2).startswith("${POSTGRES_PASSWORD"), match.group(0)


def test_compose_refuses_to_start_without_a_password() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (scripts/start-docker.sh)")
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True, text=True, env=env, cwd="/", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
