"""Deploying through PgBouncer (issue 17): detection, the lease, sessions without session state.

Real PgBouncer (Debian's package, :mod:`pgship.testing.pgbouncer`) in front of the embedded
server; concurrency and kills use real ``pgship`` processes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from pgship.testing.pgbouncer import PgBouncer
from tests.integration.helpers import applied_versions, query, scalar, table_exists
from tests.toolkit import spawn_cli, spawn_cli_loaded, wait_until

RUNS = "CREATE TABLE runs (version text NOT NULL);\n"


@pytest.fixture(scope="module")
def transaction_bouncer(pg_server) -> Iterator[PgBouncer]:
    with PgBouncer(pg_server.admin_url, pool_mode="transaction") as running:
        yield running


@pytest.fixture(scope="module")
def session_bouncer(pg_server) -> Iterator[PgBouncer]:
    with PgBouncer(pg_server.admin_url, pool_mode="session") as running:
        yield running


@pytest.fixture(scope="module")
def statement_bouncer(pg_server) -> Iterator[PgBouncer]:
    with PgBouncer(pg_server.admin_url, pool_mode="statement") as running:
        yield running


def _through(bouncer: PgBouncer, url: str) -> str:
    return bouncer.url_for(url.rsplit("/", 1)[1])


def migrate(cli, url, migrations, *extra):
    return cli("-d", url, "-m", str(migrations), "migrate", *extra)


def runs(url: str) -> list[str]:
    return [row[0] for row in query(url, "SELECT version FROM runs ORDER BY version")]


def _counting_migrations(migrations, count: int = 4) -> None:
    migrations.write("001_runs.sql", RUNS)
    for n in range(2, count + 1):
        migrations.write(
            f"{n:03d}_step.sql", f"INSERT INTO runs VALUES ('{n:03d}');\nCREATE TABLE t{n} (id int);\n"
        )


# -- 1. know where you are -------------------------------------------------------------------------
def test_a_direct_connection_reports_direct_and_locks_as_before(cli, database_url, migrations):
    _counting_migrations(migrations, 2)
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert "connection:" not in result.output, "a direct connection must not add a note"
    as_json = json.loads(cli("--json", "-d", database_url, "-m", str(migrations), "migrate").stdout)
    assert as_json["connection"]["mode"] == "direct"
    assert as_json["connection"]["lock"] == "advisory"
    assert not table_exists(database_url, "schema_migrations_lease")


def test_transaction_pooling_is_reported_and_locks_with_a_lease(
    cli, transaction_bouncer, database_url, migrations
):
    _counting_migrations(migrations, 3)
    url = _through(transaction_bouncer, database_url)
    result = cli("--json", "-d", url, "-m", str(migrations), "migrate")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert document["connection"]["mode"] == "transaction"
    assert document["connection"]["pinned"] is False
    assert document["connection"]["lock"] == "lease"
    assert document["connection"]["reason"]
    assert applied_versions(database_url) == ["001", "002", "003"]
    assert scalar(database_url, "SELECT count(*) FROM schema_migrations_lease") == 0, (
        "the lease was not released"
    )
    text = migrate(cli, url, migrations)
    assert "transaction pooler" in text.stdout and "lease" in text.stdout


def test_session_pooling_behaves_like_a_direct_connection(cli, session_bouncer, database_url, migrations):
    migrations.write("001_t.sql", "CREATE TABLE t (id int);\n")
    migrations.write("002_index.sql", "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n")
    result = cli("--json", "-d", _through(session_bouncer, database_url), "-m", str(migrations), "migrate")
    assert result.code == 0, result.output
    connection = json.loads(result.stdout)["connection"]
    assert (connection["mode"], connection["pinned"], connection["lock"]) == ("session", True, "advisory")
    assert applied_versions(database_url) == ["001", "002"]
    assert not table_exists(database_url, "schema_migrations_lease")


def test_statement_pooling_is_refused_before_anything_changes(
    cli, statement_bouncer, database_url, migrations
):
    _counting_migrations(migrations, 2)
    result = cli("--json", "-d", _through(statement_bouncer, database_url), "-m", str(migrations), "migrate")
    assert result.code == 2, result.output
    assert "statement mode" in result.output
    assert not table_exists(database_url, "schema_migrations")


# -- 2. a lock that works through the pooler -------------------------------------------------------
@pytest.mark.parametrize("trial", range(6))
def test_two_deploys_through_the_transaction_pooler_apply_each_migration_once(
    trial, transaction_bouncer, database_url, migrations
):
    _counting_migrations(migrations, 6)
    url = _through(transaction_bouncer, database_url)
    args = ("-d", url, "-m", str(migrations), "migrate", "--lock-wait", "60", "--lease-ttl", "5")
    first, second = spawn_cli(*args), spawn_cli(*args)
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    assert (first.returncode, second.returncode) == (0, 0), outputs
    assert runs(database_url) == [f"{n:03d}" for n in range(2, 7)], "a migration ran twice or never"
    assert applied_versions(database_url) == [f"{n:03d}" for n in range(1, 7)]


def test_a_lease_that_stays_taken_exits_4_naming_the_holder(
    cli, transaction_bouncer, database_url, migrations
):
    from pgship import lease as leases
    from pgship.history import TrackingTable

    _counting_migrations(migrations, 2)
    holder = leases.Lease(TrackingTable("schema_migrations", "public"), holder="the other deploy", ttl_s=600)
    with __import__("psycopg").connect(database_url, autocommit=True) as conn:
        holder.ensure_table(conn)
        assert holder.try_acquire(conn)
    result = migrate(cli, _through(transaction_bouncer, database_url), migrations, "--lock-wait", "0.5")
    assert result.code == 4, result.output
    assert "the other deploy" in result.output
    assert not table_exists(database_url, "runs")


def test_a_migration_that_deletes_the_lease_row_is_rolled_back(
    cli, transaction_bouncer, database_url, migrations
):
    migrations.write("001_runs.sql", RUNS)
    migrations.write(
        "002_thief.sql", "INSERT INTO runs VALUES ('002');\nDELETE FROM schema_migrations_lease;\n"
    )
    result = migrate(cli, _through(transaction_bouncer, database_url), migrations)
    assert result.code == 1, result.output
    assert "lost its migration lease" in result.output
    assert "PGL01" in result.output or "rolled back" in result.output
    assert applied_versions(database_url) == ["001"]
    assert runs(database_url) == []


def test_a_killed_runner_blocks_the_next_deploy_only_until_its_lease_expires(
    transaction_bouncer, database_url, migrations
):
    migrations.write("001_runs.sql", RUNS + "CREATE TABLE slow_marker ();\n")
    migrations.write(
        "002_slow.sql",
        "SELECT pg_sleep(CASE WHEN to_regclass('slow_marker') IS NULL THEN 0 ELSE 120 END);\n"
        "INSERT INTO runs SELECT '002';\n",
    )
    migrations.write("003_after.sql", "INSERT INTO runs SELECT '003';\n")
    url = _through(transaction_bouncer, database_url)
    args = ("-d", url, "-m", str(migrations), "migrate", "--lease-ttl", "2", "--lock-wait", "60")
    victim = spawn_cli(*args)
    # the next deploy, loaded before the kill: the dead lease (2 s) outlives the gap between the kill and
    # its first look at the lease, however long an interpreter takes to start on a loaded machine
    gate = migrations.path.parent / "next-deploy"
    after = spawn_cli_loaded(*args, gate=gate)
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE strpos(query, 'pg_sleep(CASE') > 0 "
        "AND state = 'active' AND pid <> pg_backend_pid()"
    )
    wait_until(lambda: scalar(database_url, sleeping) > 0, "the runner in pg_sleep", timeout=60)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    query(database_url, "DROP TABLE slow_marker")
    dead = query(
        database_url,
        "SELECT holder, expires_at, clock_timestamp() FROM schema_migrations_lease WHERE name = 'migrate'",
    )
    assert dead, "the killed runner's lease row is gone: it was never held"
    holder, expires_at, killed_at = dead[0]
    assert f"pid {victim.pid}" in holder
    assert (expires_at - killed_at).total_seconds() <= 2.5, "a dead runner's lease outlives one lease length"
    query(database_url, "CREATE TABLE seen (at timestamptz)")
    migrations.write("004_when.sql", "INSERT INTO seen SELECT clock_timestamp();\n")
    gate.touch()
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, out + err
    assert f"pid {victim.pid}" in out + err, "the next deploy did not say whose lease it waited for"
    assert runs(database_url) == ["002", "003"]
    assert applied_versions(database_url) == ["001", "002", "003", "004"]
    assert scalar(database_url, "SELECT min(at) FROM seen") >= expires_at, (
        "it ran before the dead lease expired"
    )


# -- 3. sessions without session state -------------------------------------------------------------
def test_a_no_transaction_migration_through_the_pooler_needs_the_direct_url(
    cli, transaction_bouncer, database_url, migrations
):
    migrations.write("001_t.sql", "CREATE TABLE t (id int);\n")
    migrations.write("002_index.sql", "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n")
    url = _through(transaction_bouncer, database_url)
    refused = migrate(cli, url, migrations)
    assert refused.code == 2, refused.output
    assert "--direct-url" in refused.output and "002_index.sql" in refused.output
    assert not table_exists(database_url, "t"), "something was applied before the refusal"
    result = cli("--json", "-d", url, "-m", str(migrations), "migrate", "--direct-url", database_url)
    assert result.code == 0, result.output
    connection = json.loads(result.stdout)["connection"]
    assert (connection["mode"], connection["direct_url"], connection["lock"]) == (
        "transaction",
        True,
        "advisory",
    )
    assert applied_versions(database_url) == ["001", "002"]
    assert scalar(
        database_url, "SELECT count(*) FROM pg_index WHERE indexrelid = 't_id'::regclass AND indisvalid"
    )


def test_the_direct_url_may_come_from_the_environment(cli, transaction_bouncer, database_url, migrations):
    migrations.write("001_t.sql", "CREATE TABLE t (id int);\n")
    migrations.write("002_index.sql", "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n")
    url = _through(transaction_bouncer, database_url)
    result = cli("-d", url, "-m", str(migrations), "migrate", env={"PGSHIP_DIRECT_URL": database_url})
    assert result.code == 0, result.output
    assert "direct URL" in result.stdout


def test_settings_a_migration_leaves_behind_do_not_reach_the_next_one(
    cli, transaction_bouncer, database_url, migrations
):
    """A migration's session-level SET stays on a shared backend: the next migration starts clean."""
    migrations.write("001_schema.sql", "CREATE SCHEMA elsewhere;\nCREATE TABLE elsewhere.t (id int);\n")
    migrations.write(
        "002_leaks.sql",
        "SET search_path = elsewhere;\nSET statement_timeout = '1ms';\n"
        "SET default_transaction_read_only = on;\nSET lock_timeout = '1ms';\n",
    )
    migrations.write(
        "003_clean.sql",
        "CREATE TABLE public.seen AS SELECT current_setting('search_path') AS path, "
        "current_setting('statement_timeout') AS timeout;\nSELECT pg_sleep(0.05);\n",
    )
    result = migrate(cli, _through(transaction_bouncer, database_url), migrations)
    assert result.code == 0, result.output
    path, timeout = query(database_url, "SELECT path, timeout FROM public.seen")[0]
    assert "elsewhere" not in path
    assert timeout == "0"
    assert scalar(database_url, "SELECT count(*) FROM schema_migrations_lease") == 0, "lease not released"


def test_baseline_and_repair_lock_with_the_lease_through_the_pooler(
    cli, transaction_bouncer, database_url, migrations
):
    _counting_migrations(migrations, 3)
    url = _through(transaction_bouncer, database_url)
    result = cli("--json", "-d", url, "-m", str(migrations), "baseline", "002")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["connection"]["lock"] == "lease"
    assert applied_versions(database_url) == ["001", "002"]
    migrations.write("001_runs.sql", RUNS + "-- a comment\n")
    repaired = cli("--json", "-d", url, "-m", str(migrations), "repair")
    assert repaired.code == 0, repaired.output
    assert json.loads(repaired.stdout)["connection"]["lock"] == "lease"
    assert scalar(database_url, "SELECT count(*) FROM schema_migrations_lease") == 0


def test_lease_ttl_is_validated_like_the_other_numbers(cli, database_url, migrations):
    for bad in ("0", "-1", "soon", "nan"):
        result = migrate(cli, database_url, migrations, "--lease-ttl", bad)
        assert result.code == 2, (bad, result.output)
        assert "--lease-ttl" in result.output


def test_the_lease_table_is_not_drift(cli, transaction_bouncer, database_url, migrations, pg_server):
    migrations.write("001_t.sql", "CREATE TABLE t (id int PRIMARY KEY);\n")
    assert migrate(cli, _through(transaction_bouncer, database_url), migrations).code == 0
    assert table_exists(database_url, "schema_migrations_lease")
    result = cli("-d", database_url, "-m", str(migrations), "diff", "--replay-url", pg_server.admin_url)
    assert result.code == 0, result.output
    assert "lease" not in result.output


# -- 4. health through the pooler ----------------------------------------------------------------
def test_the_health_endpoints_answer_through_a_transaction_pooler(
    cli, transaction_bouncer, database_url, migrations
):
    from tests.integration.serving import start_serve

    _counting_migrations(migrations, 3)
    url = _through(transaction_bouncer, database_url)
    assert migrate(cli, url, migrations).code == 0
    server = start_serve(url, str(migrations), "--cache-ttl", "0")
    try:
        with __import__("psycopg").connect(url, autocommit=True) as other:
            for round_ in range(12):  # more than psycopg's prepare threshold, on shared backends
                if round_ % 3 == 0:  # another client of the pooler leaves session state on a backend
                    other.execute("SET statement_timeout = 1", prepare=False)
                    other.execute("SET search_path = nowhere", prepare=False)
                for path in ("/health/live", "/health", "/health/database"):
                    answer = server.get(path)
                    assert answer.status == 200, (path, answer.body)
                    assert answer.body["status"] == "pass", (path, answer.body)
        assert "prepared statement" not in str(server.answers)
    finally:
        _, err = server.stop()
    assert "prepared statement" not in err


def test_another_clients_search_path_on_a_shared_backend_does_not_move_pgships_tables(
    cli, transaction_bouncer, database_url, migrations
):
    import psycopg

    _counting_migrations(migrations, 3)
    url = _through(transaction_bouncer, database_url)
    query(database_url, "CREATE SCHEMA decoy")
    with psycopg.connect(url, autocommit=True) as other:
        for _ in range(4):  # a session-level SET another client of the pool leaves on a backend
            other.execute("SET search_path = decoy", prepare=False)
        result = migrate(cli, url, migrations)
    assert result.code == 0, result.output
    assert table_exists(database_url, "public.schema_migrations"), "the tracking table went elsewhere"
    assert not table_exists(database_url, "decoy.schema_migrations")
    assert table_exists(database_url, "public.runs") and not table_exists(database_url, "decoy.runs")
    assert runs(database_url) == ["002", "003"]


def test_two_pipeline_deploys_through_the_transaction_pooler_lock_with_the_lease(
    transaction_bouncer, database_url, migrations, tmp_path
):
    _counting_migrations(migrations, 5)
    url = _through(transaction_bouncer, database_url)
    args = ("-d", url, "-m", str(migrations), "deploy", "--lock-wait", "60")
    deploys = [spawn_cli(*args, cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in deploys]
    assert [p.returncode for p in deploys] == [0, 0], outputs
    assert any("lease" in out + err for out, err in outputs), outputs
    assert runs(database_url) == ["002", "003", "004", "005"], "a migration ran twice or never"
    assert scalar(database_url, "SELECT count(*) FROM schema_migrations_lease") == 0


def test_a_deploy_through_the_pooler_takes_the_direct_url_flag_and_never_shows_its_password(
    cli, transaction_bouncer, database_url, migrations, tmp_path, monkeypatch
):
    migrations.write("001_t.sql", "CREATE TABLE t (id int);\n")
    migrations.write("002_index.sql", "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n")
    url = _through(transaction_bouncer, database_url)
    password = urlsplit(database_url).password
    assert password
    monkeypatch.chdir(tmp_path)  # the deploy writes .pgship/ here
    refused = cli("-d", url, "-m", str(migrations), "deploy", "--wait", "5")
    assert refused.code == 2 and "--direct-url" in refused.output, refused.output
    result = cli("-d", url, "-m", str(migrations), "deploy", "--wait", "5", "--direct-url", database_url)
    assert result.code == 0, result.output
    assert "direct URL" in result.output
    assert applied_versions(database_url) == ["001", "002"]
    assert password not in result.output and password not in refused.output


def test_a_tracking_table_in_a_new_schema_gets_its_lease_table_beside_it(
    cli, transaction_bouncer, database_url, migrations
):
    _counting_migrations(migrations, 2)
    url = _through(transaction_bouncer, database_url)
    result = cli("-d", url, "-m", str(migrations), "--table", "deploys.history", "migrate")
    assert result.code == 0, result.output
    assert table_exists(database_url, "deploys.history") and table_exists(
        database_url, "deploys.history_lease"
    )
    assert not table_exists(database_url, "public.history_lease")


def test_a_migration_that_drops_the_lease_table_is_rolled_back(
    cli, transaction_bouncer, database_url, migrations
):
    migrations.write("001_runs.sql", RUNS)
    migrations.write(
        "002_vandal.sql", "INSERT INTO runs VALUES ('002');\nDROP TABLE schema_migrations_lease;\n"
    )
    result = migrate(cli, _through(transaction_bouncer, database_url), migrations)
    assert result.code == 1, result.output
    assert "002_vandal.sql" in result.output
    assert "bug in pgship" not in result.output
    assert applied_versions(database_url) == ["001"]
    assert runs(database_url) == []
    assert table_exists(database_url, "schema_migrations_lease")


def test_a_migrations_role_temp_table_and_prepared_statement_stay_out_of_the_pool(
    cli, transaction_bouncer, database_url, migrations
):
    import secrets

    import psycopg

    role = f"pgship_reporting_{secrets.token_hex(4)}"
    query(database_url, f"CREATE ROLE {role} NOLOGIN")
    query(database_url, f"GRANT USAGE, CREATE ON SCHEMA public TO {role}")
    batch = "CREATE TEMP TABLE batch (id int);\nPREPARE batch_rows AS SELECT id FROM batch;\n"
    migrations.write("001_load.sql", f"SET ROLE {role};\n{batch}")
    migrations.write("002_again.sql", batch + "CREATE TABLE order_notes (id int);\n")
    url = _through(transaction_bouncer, database_url)
    try:
        result = migrate(cli, url, migrations)
        assert result.code == 0, result.output
        assert applied_versions(database_url) == ["001", "002"]
        owner = scalar(database_url, "SELECT tableowner FROM pg_tables WHERE tablename = 'order_notes'")
        assert owner == scalar(database_url, "SELECT current_user")
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as next_client:
            for _ in range(4):  # whichever backend the pool hands out
                assert next_client.execute("SELECT current_user").fetchone()[0] != role
                assert next_client.execute("SELECT to_regclass('pg_temp.batch')").fetchone()[0] is None
                prepared = "SELECT count(*) FROM pg_prepared_statements WHERE name = 'batch_rows'"
                assert next_client.execute(prepared).fetchone()[0] == 0
    finally:
        query(database_url, f"DROP OWNED BY {role}")
        query(database_url, f"DROP ROLE {role}")
