"""The local stack end to end: real images, real compose, real PostgreSQL.

Proves the deployment order the docs promise: the app starts only after migrations succeeded,
and a failing migration keeps the app from ever starting. Needs the pgship CLI, a Docker engine
and a compose implementation; builds the pgship image (scripts/build-pgship-image.sh) and uses
the database image from scripts/pick-postgres-image.sh.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_compose import COMPOSE_FILE, compose_command

pytestmark = pytest.mark.container
pytest.importorskip("pgship.cli", reason="the stack runs `pgship migrate` and `pgship serve`")

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "pgship-local/pgship:stack-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    command = compose_command()
    assert command, "no compose implementation: run scripts/start-docker.sh"
    subprocess.run(
        ["bash", str(ROOT / "scripts/build-pgship-image.sh"), IMAGE],
        check=True, env={**os.environ, "PYTHON": sys.executable},
    )  # fmt: skip
    db_image = subprocess.run(
        ["bash", str(ROOT / "scripts/pick-postgres-image.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return {
        **os.environ,
        "POSTGRES_PASSWORD": "stack-" + secrets.token_hex(8),
        "PGSHIP_DB_IMAGE": db_image,
        "PGSHIP_IMAGE": IMAGE,
        "PGSHIP_RELEASE_ID": "stack-test",
    }


class Stack:
    def __init__(self, env: dict[str, str], *extra_files: Path) -> None:
        self.project = "pgship_stack_" + secrets.token_hex(4)
        self.app_port = free_port()
        self.env = {**env, "PGSHIP_DB_PORT": str(free_port()), "PGSHIP_APP_PORT": str(self.app_port)}
        files = [COMPOSE_FILE, *extra_files]
        self.base = [*compose_command(), "-p", self.project, *(arg for f in files for arg in ("-f", str(f)))]

    def compose(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.base, *args], capture_output=True, text=True, env=self.env, cwd=ROOT, check=check
        )

    def state(self, service: str) -> dict:
        ids = (
            self.compose("ps", "-a", "-q", service).stdout.split()
            or self.compose("ps", "-q", service).stdout.split()
        )
        if not ids:
            return {}
        inspect = subprocess.run(
            ["docker", "inspect", "--format", "{{json .State}}", ids[0]],
            capture_output=True,
            text=True,
            check=True,
        )
        import json

        return json.loads(inspect.stdout)

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans")


@pytest.fixture
def make_stack(stack_env: dict[str, str]) -> Iterator:
    stacks: list[Stack] = []

    def make(*extra_files: Path) -> Stack:
        stacks.append(Stack(stack_env, *extra_files))
        return stacks[-1]

    yield make
    for stack in stacks:
        stack.down()


def test_the_app_answers_after_the_database_is_healthy_and_migrations_ran(make_stack) -> None:
    stack = make_stack()
    up = stack.compose("up", "-d")
    assert up.returncode == 0, up.stderr
    assert stack.state("db")["Health"]["Status"] == "healthy"
    migrate = stack.state("migrate")
    assert migrate["Status"] == "exited" and migrate["ExitCode"] == 0
    deadline = time.monotonic() + 30
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{stack.app_port}/health/live", timeout=2)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert response.status_code == 200


def test_a_failing_migration_keeps_the_app_from_starting(make_stack, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_broken.sql").write_text("CREATE TABLE broken (;\n")
    migrations.chmod(0o755)
    (migrations / "001_broken.sql").chmod(0o644)
    override = tmp_path / "broken-release.yml"
    override.write_text(f"services:\n  migrate:\n    volumes:\n      - {migrations}:/app/migrations:ro\n")
    stack = make_stack(override)
    up = stack.compose("up", "-d")
    assert up.returncode != 0
    migrate = stack.state("migrate")
    assert migrate["Status"] == "exited" and migrate["ExitCode"] != 0
    assert stack.state("app").get("StartedAt", "0001-01-01T00:00:00Z").startswith("0001-01-01")
