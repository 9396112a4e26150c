"""The container backend against a real Docker engine and a real PostgreSQL image.

Runs the image named by PGSHIP_TEST_IMAGE (``make test-container`` picks one that is on the
machine), else the offline ``pgship-local/postgres:15``. Both the official image and the offline
one must pass: these tests are what "behaves like the official image" means for the harness.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from pgship.testing import ContainerPostgres, ContainerServerError
from pgship.testing.container import OFFLINE_IMAGE

pytestmark = pytest.mark.container

IMAGE = os.environ.get("PGSHIP_TEST_IMAGE") or OFFLINE_IMAGE


@pytest.fixture(scope="module")
def server() -> Iterator[ContainerPostgres]:
    with ContainerPostgres(IMAGE) as started:
        yield started


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql).fetchall()


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def test_admin_url_is_loopback_with_a_generated_password(server: ContainerPostgres) -> None:
    assert server.admin_url.startswith(f"postgresql://postgres:{server.password}@127.0.0.1:{server.port}/")
    assert len(server.password) >= 16
    assert query(server.admin_url, "SELECT current_user, current_database()") == [("postgres", "postgres")]


def test_the_published_port_listens_on_loopback_only(server: ContainerPostgres) -> None:
    container = server._require_container()
    bindings = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
    assert {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}


def test_a_wrong_password_is_refused_over_tcp(server: ContainerPostgres) -> None:
    wrong = server.admin_url.replace(server.password, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        query(wrong, "SELECT 1")


def test_create_and_drop_a_database(server: ContainerPostgres) -> None:
    name = server.create_database(prefix="pgship_ct")
    execute(server.url_for(name), "CREATE TABLE t (id int)")
    assert query(server.admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == [(1,)]
    server.drop_database(name)
    assert query(server.admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == []


def test_a_database_cloned_from_a_template_has_its_tables(server: ContainerPostgres) -> None:
    template = server.create_database(prefix="pgship_tpl")
    try:
        execute(
            server.url_for(template), "CREATE TABLE shipped (version text); INSERT INTO shipped VALUES ('1')"
        )
        with server.fresh_database(template=template) as url:
            assert query(url, "SELECT version FROM shipped") == [("1",)]
    finally:
        server.drop_database(template)


def test_stop_takes_the_server_away_and_start_brings_it_back_with_its_data(server: ContainerPostgres) -> None:
    url_before = server.admin_url
    with server.fresh_database() as url:
        execute(url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        server.stop()
        with pytest.raises(psycopg.OperationalError):
            query(url, "SELECT 1")
        server.start()
        assert server.admin_url == url_before
        assert query(url, "SELECT n FROM kept") == [(42,)]


def test_immediate_restart_crashes_open_sessions_and_recovers(server: ContainerPostgres) -> None:
    started_before = query(server.admin_url, "SELECT pg_postmaster_start_time()")[0][0]
    with psycopg.connect(server.admin_url, autocommit=True) as session:
        server.restart(immediate=True)
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    assert query(server.admin_url, "SELECT pg_postmaster_start_time()")[0][0] > started_before
    # A power cut, not a shutdown: the server had to recover (fsync is off, so no data assertion).
    assert "not properly shut down" in server.logs(lines=200)


def test_graceful_restart_answers_again(server: ContainerPostgres) -> None:
    started_before = query(server.admin_url, "SELECT pg_postmaster_start_time()")[0][0]
    server.restart(immediate=False)
    assert query(server.admin_url, "SELECT pg_postmaster_start_time()")[0][0] > started_before


def test_the_server_log_never_shows_the_password(server: ContainerPostgres) -> None:
    assert server.password not in server.logs(lines=1000)


def test_the_image_honours_postgres_user_password_and_db() -> None:
    """The contract of the official image's entrypoint, which compose files and CI rely on."""
    from testcontainers.community.postgres import PostgresContainer

    from pgship.testing.container import apply_testcontainers_defaults

    apply_testcontainers_defaults()
    with PostgresContainer(
        IMAGE, username="shop_owner", password="s3cret'quoted\"$HOME", dbname="shop-db"
    ) as pg:
        url = pg.get_connection_url(driver=None)
        assert query(url, "SELECT current_user, current_database()") == [("shop_owner", "shop-db")]
        assert query(url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [(True,)]


def test_a_missing_image_says_how_to_get_one() -> None:
    server = ContainerPostgres("pgship-local/no-such-image:0")
    with pytest.raises(ContainerServerError, match=r"build-offline-postgres-image\.sh"):
        server.setup()
    server.close()
