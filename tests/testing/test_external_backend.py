"""The url backend: an existing server, here a real embedded one standing in for a CI service."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from pgship.testing import EmbeddedPostgres, ExternalPostgres, ExternalServerError, ServerControlUnsupported


@pytest.fixture(scope="module")
def existing_server() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server


def test_creates_and_drops_only_its_own_databases(existing_server: EmbeddedPostgres) -> None:
    external = ExternalPostgres(existing_server.admin_url)
    before = _databases(existing_server.admin_url)
    with external.fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            name = conn.execute("SELECT current_database()").fetchone()[0]
        assert name.startswith("pgship_t_")
        assert _databases(existing_server.admin_url) == before | {name}
    assert _databases(existing_server.admin_url) == before


def test_cannot_stop_a_server_it_did_not_start(existing_server: EmbeddedPostgres) -> None:
    external = ExternalPostgres(existing_server.admin_url)
    assert external.backend == "url"
    assert not external.can_control
    for action in (external.stop, external.start, external.restart):
        with pytest.raises(ServerControlUnsupported):
            action()
    external.close()  # a no-op: the server keeps running
    assert existing_server.server_version()


def test_from_env_reads_database_url(
    monkeypatch: pytest.MonkeyPatch, existing_server: EmbeddedPostgres
) -> None:
    monkeypatch.setenv("DATABASE_URL", existing_server.admin_url)
    assert ExternalPostgres.from_env().server_version() == existing_server.server_version()


@pytest.mark.parametrize("bad", ["host=db user=app password=hunter2", "mysql://app:hunter2@db/x", ""])
def test_rejects_what_is_not_a_postgresql_url_without_repeating_it(bad: str) -> None:
    with pytest.raises(ExternalServerError) as caught:
        ExternalPostgres(bad)
    assert "hunter2" not in str(caught.value)


def test_missing_database_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(ExternalServerError, match="DATABASE_URL"):
        ExternalPostgres.from_env()


def test_importing_pgship_testing_does_not_import_testcontainers() -> None:
    code = (
        "import sys, pgship, pgship.testing\n"
        "from pgship.testing import ExternalPostgres\n"
        "assert 'testcontainers' not in sys.modules and 'docker' not in sys.modules, sorted(sys.modules)\n"
        "from pgship.testing import ContainerPostgres\n"
        "assert ContainerPostgres.backend == 'container'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _databases(admin_url: str) -> set[str]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
