"""`pgship serve` as a real process on a real database: every endpoint, status and code, and no leaks.

The health checks run as a read-only login role of their own (``pg_read_all_data``), so
the scans can look for a user name, a password and a host that appear nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from pgship.testing import EmbeddedPostgres, replace_dbname
from tests.conftest import MigrationsDir
from tests.integration.helpers import query, scalar
from tests.integration.serving import SilentServer, assert_no_secrets, start_serve
from tests.toolkit import run_cli

MEDIA_TYPE = "application/health+json"
PROBE_USER = "health_probe_user"
PROBE_PASSWORD = "Pr0be-" + secrets.token_urlsafe(10)
LEAKS = [PROBE_PASSWORD, PROBE_USER, "localhost", "127.0.0.1", "postgresql://", "Traceback", "to_jsonb"]


@pytest.fixture(scope="module")
def logged_pg() -> Iterator[EmbeddedPostgres]:
    """The health tests' own server: it logs every statement and connection, with application and database."""
    settings = {"log_statement": "all", "log_connections": "on", "log_line_prefix": "%a:%d:"}
    with EmbeddedPostgres(settings=settings) as server:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute(
                f"CREATE ROLE {PROBE_USER} LOGIN PASSWORD '{PROBE_PASSWORD}' IN ROLE pg_read_all_data"
            )
        yield server


class Database:
    """A fresh database on the logged server: migrated as the owner, checked as the probe role."""

    def __init__(self, server: EmbeddedPostgres, migrations: MigrationsDir) -> None:
        self.server = server
        self.migrations = migrations
        self.name = server.create_database(prefix="pgship_h")
        self.admin_url = server.url_for(self.name)
        self.probe_url = f"postgresql://{PROBE_USER}:{PROBE_PASSWORD}@localhost:{server.port}/{self.name}"
        self.forbidden = [*LEAKS, self.name, server.password]

    def migrate(self, *extra: str) -> None:
        result = run_cli("-d", self.admin_url, "-m", str(self.migrations), "migrate", *extra)
        assert result.code == 0, result.output

    def serve(self, *extra: str, env: dict[str, str] | None = None, url: str | None = None):
        return start_serve(
            url or self.probe_url, str(self.migrations), *extra, env=env, forbidden=self.forbidden
        )

    def connections_made(self) -> int:
        """Sessions the probe role opened on this database, from the connection log."""
        log = Path(self.server.log_file).read_text(errors="replace")
        return log.count(f"connection authorized: user={PROBE_USER} database={self.name}")

    def checks_run(self) -> int:
        """Health checks the server received for this database, counted from its statement log."""
        log = Path(self.server.log_file).read_text(errors="replace")
        return sum(
            1
            for line in log.splitlines()
            if line.startswith(f"pgship-health:{self.name}:") and "BEGIN READ ONLY" in line
        )


@pytest.fixture
def db(logged_pg, migrations) -> Iterator[Database]:
    migrations.write("001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);")
    migrations.write("002_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY);")
    migrations.write("003_index.sql", "CREATE INDEX orders_id ON orders (id);")
    database = Database(logged_pg, migrations)
    yield database
    logged_pg.drop_database(database.name)


@pytest.fixture
def servers() -> Iterator[list]:
    started: list = []
    yield started
    for server in started:
        _, err = server.stop()
        assert_no_secrets(err, [PROBE_PASSWORD], "the server's log")


def serve(db: Database, servers: list, *extra: str, **kwargs):
    server = db.serve(*extra, **kwargs)
    servers.append(server)
    return server


# -- statuses and codes ----------------------------------------------------------------
def test_an_in_sync_database_passes_on_all_three_endpoints(db, servers):
    db.migrate()
    server = serve(db, servers, "--release-id", "rel-42")
    live, ready, details = (server.get(p) for p in ("/health/live", "/health", "/health/database"))
    for answer in (live, ready, details):
        assert answer.status == 200 and answer.media_type == MEDIA_TYPE
        assert answer.body["status"] == "pass" and answer.body["releaseId"] == "rel-42"
    assert live.headers["cache-control"] == "no-store" and "checks" not in live.body
    assert set(ready.body["checks"]) == {"database:connection", "database:migrations"}
    assert all(
        set(entry) == {"componentType", "status", "time"}
        for entries in ready.body["checks"].values()
        for entry in entries
    )
    connection = details.body["checks"]["database:connection"][0]
    migrations = details.body["checks"]["database:migrations"][0]
    assert connection["serverVersion"].startswith(str(db.server.version))
    assert connection["observedUnit"] == "ms" and connection["observedValue"] >= 0
    assert migrations["shippedCount"] == 3 and migrations["latestShipped"] == "003"
    assert migrations["appliedCount"] == 3 and migrations["latestApplied"] == "003"
    assert migrations["pending"] == [] and migrations["table"] == "schema_migrations"
    assert details.headers["cache-control"].startswith("max-age=")


def test_pending_migrations_fail_readiness_and_details_while_liveness_stays_up(db, servers):
    db.migrate("--target", "1")
    server = serve(db, servers)
    ready, details = server.get("/health"), server.get("/health/database")
    assert ready.status == 503 and ready.body["status"] == "fail"
    assert details.status == 503 and details.body["output"] == "2 pending migrations: 002, 003"
    assert details.body["checks"]["database:migrations"][0]["pending"] == ["002", "003"]
    assert server.get("/health/live").status == 200


def test_a_database_without_the_tracking_table_has_everything_pending(db, servers):
    server = serve(db, servers)
    details = server.get("/health/database")
    assert details.status == 503
    assert details.body["checks"]["database:migrations"][0]["pending"] == ["001", "002", "003"]
    assert details.body["checks"]["database:connection"][0]["status"] == "pass"


def test_the_shipped_migrations_are_the_files_present_when_the_server_started(db, servers):
    db.migrate()
    server = serve(db, servers, "--cache-ttl", "0")
    db.migrations.write("004_later.sql", "CREATE TABLE later (id int);")
    assert server.get("/health/database").body["checks"]["database:migrations"][0]["shippedCount"] == 3
    restarted = serve(db, servers, "--cache-ttl", "0")
    details = restarted.get("/health/database")
    assert details.status == 503 and details.body["checks"]["database:migrations"][0]["shippedCount"] == 4


def test_an_edited_applied_migration_warns_with_200(db, servers):
    db.migrate()
    db.migrations.write("002_orders.sql", "CREATE TABLE orders (id bigint PRIMARY KEY);")
    server = serve(db, servers)
    details, ready = server.get("/health/database"), server.get("/health")
    assert details.status == 200 and details.body["status"] == "warn"
    assert details.body["checks"]["database:migrations"][0]["checksumMismatches"] == ["002"]
    assert ready.status == 200 and ready.body["status"] == "warn"


def test_applied_migrations_without_a_file_warn_with_200(db, servers):
    db.migrate()
    (db.migrations.path / "003_index.sql").unlink()  # e.g. the application was rolled back
    details = serve(db, servers).get("/health/database")
    assert details.status == 200 and details.body["status"] == "warn"
    assert details.body["checks"]["database:migrations"][0]["appliedWithoutFile"] == ["003"]


def test_a_table_that_is_not_a_tracking_table_fails_generically(db, servers):
    query(db.admin_url, "CREATE TABLE not_tracking (id int); INSERT INTO not_tracking VALUES (1)")
    details = serve(db, servers, "--table", "not_tracking").get("/health/database")
    assert details.status == 503
    assert details.body["output"] == "the configured tracking table has no version column"


def test_a_role_without_read_rights_gets_a_generic_sqlstate_class(db, servers):
    db.migrate()
    role = f"no_rights_{secrets.token_hex(3)}"
    password = "N0-rights-" + secrets.token_hex(6)
    query(db.admin_url, f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    url = f"postgresql://{role}:{password}@localhost:{db.server.port}/{db.name}"
    try:
        server = db.serve(url=url)
        server.forbidden += [role, password]
        servers.append(server)
        details = server.get("/health/database")
        assert details.status == 503
        assert details.body["output"] == (
            "the health query failed (SQLSTATE class 42: syntax error or access rule violation)"
        )
    finally:
        for running in servers:
            running.stop()
        servers.clear()
        query(db.admin_url, f"DROP ROLE {role}")


def test_a_wrong_password_is_reported_by_class_without_user_or_password(db, servers):
    db.migrate()
    wrong = db.probe_url.replace(PROBE_PASSWORD, "Wr0ng-pw-" + secrets.token_hex(4))
    server = db.serve(url=wrong)
    server.forbidden.append(wrong.split(":")[2].split("@")[0])
    servers.append(server)
    details = server.get("/health/database")
    assert details.status == 503
    assert details.body["output"] == (
        "cannot connect to the database (SQLSTATE class 28: invalid authorization specification)"
    )
    assert server.get("/health").status == 503 and server.get("/health/live").status == 200


def test_unknown_paths_and_methods_are_refused(db, servers):
    server = serve(db, servers)
    assert httpx.get(server.base_url + "/health/other").status_code == 404
    assert httpx.post(server.base_url + "/health").status_code == 405


# -- the bearer token ------------------------------------------------------------------
def test_the_token_protects_the_details_only(db, servers):
    db.migrate()
    token = "T0ken-" + secrets.token_urlsafe(12)
    server = serve(db, servers, env={"PGSHIP_HEALTH_TOKEN": token})
    server.forbidden.append(token)
    anonymous = httpx.get(server.base_url + "/health/database")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="pgship-health"'
    assert anonymous.headers["cache-control"] == "no-store"
    wrong = httpx.get(server.base_url + "/health/database", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = httpx.get(server.base_url + "/health/database", auth=("user", token))
    assert basic.status_code == 401
    details = server.get("/health/database", token=token)
    assert details.status == 200 and details.body["status"] == "pass"
    assert details.headers["cache-control"].startswith("private, max-age=")
    assert server.get("/health").status == 200 and server.get("/health/live").status == 200


def test_the_schema_comparison_is_opt_in_token_only_and_reports_hand_made_changes(db, servers):
    db.migrate()
    open_server = serve(db, servers)
    refused = open_server.get("/health/database?schema=1")
    assert refused.status == 403 and "health token" in refused.body["message"]

    token = "Sch3ma-" + secrets.token_urlsafe(12)
    server = serve(db, servers, env={"PGSHIP_HEALTH_TOKEN": token})
    server.forbidden.append(token)
    assert "database:schema" not in server.get("/health/database", token=token).body["checks"]
    same = server.get("/health/database?schema=1", token=token, timeout=60)
    [check] = same.body["checks"]["database:schema"]
    assert same.status == 200 and check["status"] == "pass" and check["observedValue"] == 0

    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
    drifted = server.get("/health/database?schema=1", token=token, timeout=60)
    [check] = drifted.body["checks"]["database:schema"]
    assert drifted.status == 200 and drifted.body["status"] == "warn" and check["status"] == "warn"
    assert check["observedValue"] == 1 and "users.nickname" in check["differences"][0]
    assert not any("ALTER" in message for message in check["differences"])  # words, not SQL


def test_a_token_from_another_variable_and_the_access_log_never_show_it(db, servers):
    db.migrate()
    token = "Acc3ss-" + secrets.token_urlsafe(12)
    server = serve(
        db, servers, "--token-env", "MY_HEALTH_TOKEN", "--access-log", env={"MY_HEALTH_TOKEN": token}
    )
    assert server.get("/health/database", token=token).status == 200
    httpx.get(server.base_url + f"/health/database?token={token}")  # a client doing it wrong
    servers.remove(server)
    out, err = server.stop()
    assert '"GET /health/database HTTP/1.1" 200' in out  # the access log is there...
    assert_no_secrets(out + err, [token, PROBE_PASSWORD], "the server's log")  # ...without the token


# -- caching ---------------------------------------------------------------------------
def test_one_check_per_cache_period_however_many_requests(db, servers):
    db.migrate()
    server = serve(db, servers, "--cache-ttl", "60")
    assert server.get("/health").status == 200  # shares the start-up check, or makes the first one
    before = db.checks_run()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            paths = ["/health", "/health/database"] * 50
            responses = await asyncio.gather(*(client.get(path) for path in paths))
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 100
    assert before == 1 and db.checks_run() == 1
    cache_control = server.get("/health/database").headers["cache-control"]
    assert cache_control.startswith("max-age=") and 0 < int(cache_control.split("=")[1]) <= 60


def test_without_a_cache_every_request_checks_the_database_over_pooled_sessions(db, servers):
    db.migrate()
    server = serve(db, servers, "--cache-ttl", "0")
    server.get("/health")  # after this no check is in flight (not even the start-up one)
    before = db.checks_run()
    for _ in range(10):
        answer = server.get("/health/database")
        assert answer.status == 200 and answer.headers["cache-control"] == "no-store"
    assert db.checks_run() - before == 10
    # the first check connects directly and starts the pool (one session); checks then reuse it
    assert 1 <= db.connections_made() <= 2


def test_checks_are_read_only_transactions_of_one_statement(db, servers):
    db.migrate()
    server = serve(db, servers, "--cache-ttl", "0")
    server.get("/health/database")
    log = Path(db.server.log_file).read_text(errors="replace")
    lines = [line for line in log.splitlines() if line.startswith(f"pgship-health:{db.name}:")]
    assert lines and all("statement: BEGIN READ ONLY;" in line for line in lines)


# -- a database that goes away or hangs --------------------------------------------------
@pytest.fixture
def own_server() -> Iterator[EmbeddedPostgres]:
    """A server this test alone may stop, start or freeze."""
    with EmbeddedPostgres() as server:
        yield server


def test_a_stopped_database_gives_503_within_the_bound_then_200_when_back(own_server, migrations, servers):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    url = replace_dbname(own_server.admin_url, "postgres")
    assert run_cli("-d", url, "-m", str(migrations), "migrate").code == 0
    server = start_serve(
        url, str(migrations), "--cache-ttl", "0.2", "--check-timeout", "2", forbidden=[own_server.password]
    )
    servers.append(server)
    assert server.get("/health/database").status == 200
    own_server.stop()
    time.sleep(0.3)  # let the cached pass expire
    down = server.get("/health/database", timeout=5)  # the bound is 2 s: a hung probe would time out here
    assert down.status == 503 and down.body["output"].startswith("cannot connect to the database")
    assert server.get("/health", timeout=5).status == 503 and server.get("/health/live").status == 200
    own_server.start()
    back = server.wait_until("/health/database", lambda a: a.status == 200, timeout=30)
    assert back.status == 200 and back.body["status"] == "pass"


def test_a_database_that_accepts_but_never_answers_gives_503_within_the_bound(migrations, servers):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    with SilentServer() as silent:
        url = f"postgresql://app:Hung-Pw-123@localhost:{silent.port}/app"
        server = start_serve(url, str(migrations), "--check-timeout", "1", forbidden=["Hung-Pw-123", "app:"])
        servers.append(server)
        answer = server.get("/health/database", timeout=4)  # bound 1 s; httpx gives up at 4 s
        assert answer.status == 503
        assert answer.body["output"] == "the database did not answer within 1 s"
        assert server.get("/health/live", timeout=2).status == 200
        assert silent.accepted  # the probe did connect, and got no answer


def test_a_frozen_backend_gives_503_and_the_next_check_recovers(own_server, migrations, servers):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    url = own_server.admin_url
    assert run_cli("-d", url, "-m", str(migrations), "migrate").code == 0
    server = start_serve(url, str(migrations), "--cache-ttl", "0", "--check-timeout", "1")
    servers.append(server)
    assert server.get("/health/database").status == 200  # the pool now holds a connection
    pids = [
        row[0]
        for row in query(url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgship-health'")
    ]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        frozen = server.get("/health/database", timeout=4)
        assert frozen.status == 503 and frozen.body["output"] == "the database did not answer within 1 s"
        # the frozen session is abandoned: the next check uses a new one
        recovered = server.wait_until("/health/database", lambda a: a.status == 200, timeout=20)
        assert recovered.status == 200
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


# -- mounted in another application ------------------------------------------------------
def test_the_app_mounts_inside_another_starlette_app(database_url, migrations):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from pgship.health import create_app

    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    assert run_cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    health = create_app(database_url=database_url, migrations_dir=migrations.path, release_id="r9")
    outer = Starlette(routes=[Mount("/ops", app=health)])

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=outer)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get("/ops/health/database")
        await health.state.health.probe.close()
        return response

    response = asyncio.run(call())
    assert response.status_code == 200 and response.json()["releaseId"] == "r9"
    assert response.json()["checks"]["database:migrations"][0]["latestApplied"] == "001"
    assert scalar(database_url, "SELECT count(*) FROM schema_migrations") == 1
