"""Shared fixtures: one embedded PostgreSQL per test session, one fresh database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.toolkit import run_cli

ROOT = Path(__file__).resolve().parents[1]


class MigrationsDir:
    """A scratch migrations directory a test writes files into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, sql: str | bytes) -> Path:
        target = self.path / name
        if isinstance(sql, bytes):
            target.write_bytes(sql)
        else:
            target.write_text(sql, encoding="utf-8")
        return target

    def __str__(self) -> str:
        return str(self.path)


#: tests that need Allure (npm) and Debian's chromium: `make test-report` runs them, `make pytest` does not
BROWSER_TESTS = ("tests/report/", "tests/docs/test_diagrams.py::test_every_diagram_renders")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(BROWSER_TESTS):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    from pgship.testing import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture
def database_url(pg_server) -> Iterator[str]:
    with pg_server.fresh_database() as url:
        yield url


@pytest.fixture
def migrations(tmp_path: Path) -> MigrationsDir:
    return MigrationsDir(tmp_path / "migrations")


@pytest.fixture
def cli():
    return run_cli
