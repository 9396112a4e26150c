"""Exactly once, whatever the migration does: issue 12 against a real PostgreSQL.

Every test here is an attack by a migration (or a spelling) on the runner's own state: the
advisory lock, the tracking table, the session, the search_path. Concurrency uses real processes.
"""

from __future__ import annotations

import json
import secrets

import psycopg
import pytest

from tests.integration.helpers import applied_versions, query, scalar, table_exists, tracking_rows
from tests.toolkit import pgship_backends, spawn_cli, wait_until

RUNS = "CREATE TABLE runs (version text NOT NULL);\n"


def migrate(cli, url, migrations, *extra):
    return cli("-d", url, "-m", str(migrations), "migrate", *extra)


def runs(url: str) -> list[str]:
    return [row[0] for row in query(url, "SELECT version FROM runs ORDER BY version")]


# -- 1. one lock per tracking table, however it is spelled ---------------------------------------
SPELLINGS = [
    ("schema_migrations", "public.schema_migrations"),
    ("schema_migrations", '"public"."schema_migrations"'),
    ("public.schema_migrations", '"schema_migrations"'),
]


@pytest.mark.parametrize(("first", "second"), SPELLINGS)
def test_two_spellings_of_one_table_share_one_lock(pg_server, tmp_path, first, second):
    from tests.conftest import MigrationsDir

    for trial in range(5):
        migrations = MigrationsDir(tmp_path / f"trial{trial}")
        migrations.write("001_runs.sql", RUNS)
        for i in range(2, 12):
            migrations.write(
                f"{i:03d}_step.sql", f"INSERT INTO runs VALUES ('{i:03d}');\nSELECT pg_sleep(0.03);\n"
            )
        with pg_server.fresh_database() as url:
            setup = spawn_cli("-d", url, "-m", str(migrations), "migrate", "--target", "1")
            assert setup.wait(60) == 0, setup.communicate()
            racers = [
                spawn_cli("-d", url, "-m", str(migrations), "--table", spelling, "migrate")
                for spelling in (first, second)
            ]
            results = [(r.wait(60), *r.communicate()) for r in racers]
            assert [code for code, _, _ in results] == [0, 0], (trial, results)
            assert runs(url) == [f"{i:03d}" for i in range(2, 12)], trial  # each ran once
            assert applied_versions(url) == [f"{i:03d}" for i in range(1, 12)]
            assert sum(out.count("  applied  ") for _, out, _ in results) == 10
            assert not table_exists(url, '"public"."public.schema_migrations"')


def test_the_resolved_table_names_its_schema_in_the_output(cli, database_url, migrations):
    migrations.write("001_runs.sql", RUNS)
    result = cli("--json", "-d", database_url, "-m", str(migrations), "migrate")
    document = json.loads(result.stdout)
    assert any("public.schema_migrations" in change for change in document["table_changes"]), document
    assert document["tracking_table"] == "public.schema_migrations"
    again = json.loads(cli("--json", "-d", database_url, "-m", str(migrations), "migrate").stdout)
    assert again["tracking_table"] == "public.schema_migrations" and again["status"] == "up_to_date"


# -- 2. a migration cannot release the lock -------------------------------------------------------
@pytest.mark.parametrize(
    "release",
    [
        "SELECT pg_advisory_unlock_all();",
        "SELECT pg_advisory_unlock(l.objid::bigint | (l.classid::bigint << 32)) "
        "FROM pg_locks l WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid();",
    ],
    ids=["unlock_all", "unlock_key"],
)
def test_a_migration_that_releases_the_lock_is_rolled_back(cli, database_url, migrations, release):
    migrations.write("001_runs.sql", RUNS)
    migrations.write("002_release.sql", f"INSERT INTO runs VALUES ('002');\n{release}\n")
    migrations.write("003_next.sql", "INSERT INTO runs VALUES ('003');\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1, result.output
    assert "002_release.sql" in result.stderr and "released the migration lock" in result.stderr
    assert "bug in pgship" not in result.output
    assert applied_versions(database_url) == ["001"] and runs(database_url) == []


def test_a_released_lock_never_lets_a_waiting_deploy_run_a_migration_twice(database_url, migrations):
    migrations.write("001_runs.sql", RUNS)
    migrations.write(
        "002_release.sql",
        "INSERT INTO runs VALUES ('002');\nSELECT pg_advisory_unlock_all();\nSELECT pg_sleep(1);\n",
    )
    migrations.write("003_next.sql", "INSERT INTO runs VALUES ('003');\n")
    first = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    wait_until(
        lambda: pgship_backends(database_url, query_like="SELECT pg_sleep(1)%", state="active"),
        "the first runner in 002_release.sql",
    )
    second = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    results = [(p.wait(60), *p.communicate()) for p in (first, second)]
    for code, _, err in results:
        assert code == 1 and "released the migration lock" in err, results
    assert runs(database_url) == [] and applied_versions(database_url) == ["001"]


IMPERSONATIONS = {
    "guard_sqlstate": "DO $$ BEGIN RAISE EXCEPTION 'no' USING ERRCODE = 'PGL01'; END $$;",
    "guard_message": "SELECT 'pgship: the migration released the migration lock'::int;",
}


@pytest.mark.parametrize("statement", IMPERSONATIONS.values(), ids=IMPERSONATIONS.keys())
def test_a_migration_failing_like_the_guard_is_reported_as_its_own_failure(
    cli, database_url, migrations, statement
):
    """Only the guard's own statement can report a released lock: a file's error is the file's."""
    migrations.write("001_runs.sql", RUNS)
    migrations.write("002_mimic.sql", f"INSERT INTO runs VALUES ('002');\n{statement}\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1, result.output
    assert "002_mimic.sql:2" in result.stderr, result.stderr  # the file's own line is named
    assert "released the migration lock (pg_advisory_unlock" not in result.stderr
    assert applied_versions(database_url) == ["001"] and runs(database_url) == []


def test_discard_all_in_a_no_transaction_file_stops_the_run(cli, database_url, migrations):
    migrations.write("001_runs.sql", RUNS)
    migrations.write(
        "002_discard.sql", "-- pgship:no-transaction\nINSERT INTO runs VALUES ('002');\nDISCARD ALL;\n"
    )
    migrations.write("003_next.sql", "INSERT INTO runs VALUES ('003');\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1, result.output
    assert "002_discard.sql" in result.stderr and "released the migration lock" in result.stderr
    assert applied_versions(database_url) == ["001"]  # not recorded: it ran without the lock
    assert "003" not in runs(database_url)


# -- 4. the tracking table is pgship's ------------------------------------------------------------
FORGERIES = {
    "insert_next": "INSERT INTO schema_migrations (version, name) VALUES ('003', 'next');",
    "delete_earlier": "DELETE FROM schema_migrations WHERE version = '001';",
    "update_earlier": "UPDATE schema_migrations SET checksum = 'forged' WHERE version = '001';",
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_migration_cannot_change_other_tracking_rows(cli, database_url, migrations, forgery):
    migrations.write("001_runs.sql", RUNS)
    migrations.write("002_forge.sql", f"INSERT INTO runs VALUES ('002');\n{forgery}\n")
    migrations.write("003_next.sql", "INSERT INTO runs VALUES ('003');\n")
    assert migrate(cli, database_url, migrations, "--target", "1").code == 0
    before = tracking_rows(database_url)
    result = migrate(cli, database_url, migrations)
    assert result.code == 1, result.output
    assert "002_forge.sql" in result.stderr and "changed the tracking table" in result.stderr
    assert tracking_rows(database_url) == before and runs(database_url) == []
    status = cli("-d", database_url, "-m", str(migrations), "status", "--check")
    assert status.code != 0  # not in sync: 002 and 003 are pending


def test_a_legacy_file_that_records_itself_still_applies(cli, database_url, migrations):
    migrations.write("001_runs.sql", RUNS)
    migrations.write(
        "002_self.sql",
        "INSERT INTO runs VALUES ('002');\n"
        "INSERT INTO schema_migrations (version, name) VALUES ('002', 'self');\n",
    )
    assert migrate(cli, database_url, migrations, "--target", "1").code == 0
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    rows = tracking_rows(database_url)
    assert [r[0] for r in rows] == ["001", "002"] and rows[1][2]  # one row, with its checksum


# -- 5. a clean session for every migration -------------------------------------------------------
@pytest.fixture
def other_role(database_url):
    name = f"pgship_other_{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} NOLOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {name}")
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {name}")
        conn.execute(f"DROP ROLE {name}")


@pytest.mark.parametrize("switch", ["SET ROLE {}", "SET SESSION AUTHORIZATION {}"])
def test_a_role_switch_does_not_leak_into_the_next_migration(
    cli, database_url, migrations, other_role, switch
):
    migrations.write("001_switch.sql", f"{switch.format(other_role)};\nSELECT 1;\n")
    migrations.write("002_table.sql", "CREATE TABLE made_by_the_runner (id int);\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    owner = scalar(database_url, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_the_runner'")
    assert owner == "postgres"
    assert all(row[4].startswith("postgres (") for row in tracking_rows(database_url))


def test_temporary_tables_and_prepared_statements_do_not_leak(cli, database_url, migrations):
    for version in ("001", "002"):
        migrations.write(
            f"{version}_batch.sql",
            "CREATE TEMP TABLE batch (id int);\nINSERT INTO batch VALUES (1);\n"
            "PREPARE fetch_batch AS SELECT id FROM batch;\nEXECUTE fetch_batch;\n"
            "DECLARE kept CURSOR WITH HOLD FOR SELECT 1;\nLISTEN pgship_test;\n",
        )
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["001", "002"]


# -- 3. the tracking table is always found --------------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        "EXECUTE format('ALTER DATABASE %I SET search_path = elsewhere', current_database());",
        "ALTER ROLE current_user SET search_path = elsewhere;",
    ],
    ids=["database", "role"],
)
def test_a_migration_changing_the_default_search_path_does_not_hide_the_table(
    cli, database_url, migrations, change
):
    migrations.write("001_elsewhere.sql", f"CREATE SCHEMA elsewhere;\nDO $$ BEGIN {change} END $$;\n")
    migrations.write("002_more.sql", "CREATE TABLE public.more (id int);\n")
    try:
        assert migrate(cli, database_url, migrations, "--target", "1").code == 0
        result = migrate(cli, database_url, migrations)
        assert result.code == 0, result.output
        assert applied_versions(database_url, "public.schema_migrations") == ["001", "002"]
        assert not table_exists(database_url, "elsewhere.schema_migrations")
        status = cli("-d", database_url, "-m", str(migrations), "status", "--check")
        assert status.code == 0, status.output
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("ALTER ROLE current_user RESET search_path")


def test_a_search_path_naming_a_schema_the_first_migration_creates(cli, database_url, migrations):
    with psycopg.connect(database_url, autocommit=True) as conn:
        name = conn.info.dbname
        conn.execute(f'ALTER DATABASE "{name}" SET search_path = app')
    migrations.write("001_app.sql", "CREATE SCHEMA app;\nCREATE TABLE app.users (id int);\n")
    migrations.write("002_more.sql", "CREATE TABLE orders (id int);\n")
    result = migrate(cli, database_url, migrations, "--target", "1")
    assert result.code == 0, result.output
    assert "public.schema_migrations" in result.stdout and "bug in pgship" not in result.output
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert applied_versions(database_url, "public.schema_migrations") == ["001", "002"]
    assert table_exists(database_url, "app.orders") and not table_exists(
        database_url, "app.schema_migrations"
    )


# -- 14. the server's messages are part of the truth ----------------------------------------------
RAISES = "DO $$ BEGIN RAISE WARNING 'backfilled % rows', 3; RAISE NOTICE 'nothing else to do'; END $$;\n"


def test_warnings_and_notices_are_shown_under_their_migration(cli, database_url, migrations):
    migrations.write("001_quiet.sql", "CREATE TABLE quiet (id int);\n")
    migrations.write("002_backfill.sql", RAISES)
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    out = result.stdout
    assert out.index("002_backfill.sql") < out.index("WARNING: backfilled 3 rows")
    assert "NOTICE: nothing else to do" in out
    document = json.loads(cli("--json", "-d", database_url, "-m", str(migrations), "status").stdout)
    assert document  # the run above is recorded

    migrations.write("003_again.sql", RAISES.replace("3", "4"))
    payload = json.loads(cli("--json", "-d", database_url, "-m", str(migrations), "migrate").stdout)
    assert payload["applied"][0]["messages"] == [
        {"severity": "WARNING", "message": "backfilled 4 rows"},
        {"severity": "NOTICE", "message": "nothing else to do"},
    ]


def test_messages_of_a_no_transaction_file_are_collected_too(cli, database_url, migrations):
    migrations.write("001_plain.sql", "-- pgship:no-transaction\n" + RAISES)
    payload = json.loads(cli("--json", "-d", database_url, "-m", str(migrations), "migrate").stdout)
    assert [m["message"] for m in payload["applied"][0]["messages"]] == [
        "backfilled 3 rows",
        "nothing else to do",
    ]


# -- 12. never the bug message --------------------------------------------------------------------
def test_dropping_the_tracking_table_in_a_no_transaction_file_is_a_clear_error(cli, database_url, migrations):
    migrations.write("001_runs.sql", RUNS)
    migrations.write("002_drop.sql", "-- pgship:no-transaction\nDROP TABLE schema_migrations;\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1, result.output
    assert "bug in pgship" not in result.output
    assert "002_drop.sql" in result.stderr and "tracking table" in result.stderr


@pytest.mark.parametrize(
    "read_only",
    ["SET default_transaction_read_only = on;", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;"],
)
def test_a_no_transaction_file_leaving_the_session_read_only_is_recorded(
    cli, database_url, migrations, read_only
):
    migrations.write("001_ro.sql", f"-- pgship:no-transaction\nCREATE TABLE ro (id int);\n{read_only}\n")
    migrations.write("002_next.sql", "CREATE TABLE after_ro (id int);\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["001", "002"]


# -- 13.12 a name clash is not a baseline ---------------------------------------------------------
def test_a_real_name_clash_does_not_suggest_baseline(cli, database_url, migrations):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);\n")
    migrations.write("002_users_again.sql", "CREATE TABLE audit (id int);\nCREATE TABLE users (id int);\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1 and "42P07" in result.stderr
    assert "baseline" not in result.stderr and "conflicts with an existing" in result.stderr


def test_a_hand_applied_migration_still_suggests_baseline(cli, database_url, migrations):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE users (id int); CREATE INDEX users_id ON users (id)")
    migrations.write("001_users.sql", "CREATE TABLE users (id int);\nCREATE INDEX users_id ON users (id);\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1 and "pgship baseline 001" in result.stderr


def test_a_statement_timeout_set_by_a_migration_does_not_fail_its_bookkeeping(cli, database_url, migrations):
    migrations.write("001_tight.sql", "CREATE TABLE tight (id int);\nSET statement_timeout = 1;\n")
    migrations.write(
        "002_tight_plain.sql", "-- pgship:no-transaction\nSET statement_timeout = 1;\nSELECT 1;\n"
    )
    migrations.write("003_next.sql", "SELECT pg_sleep(0.05);\nCREATE TABLE after_tight (id int);\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["001", "002", "003"]


def test_a_statement_timeout_set_by_a_migration_does_not_cut_the_reset_after_its_commit(
    cli, database_url, migrations
):
    """The reset after COMMIT has real work to do (dropping 300 temporary tables): it runs under
    pgship's own statement_timeout, not the 1 ms the migration set for the rest of the session."""
    migrations.write(
        "001_busy.sql",
        "DO $$ BEGIN FOR i IN 1..300 LOOP EXECUTE format('CREATE TEMP TABLE scratch%s (id int)', i); "
        "END LOOP; END $$;\nSET statement_timeout = 1;\n",
    )
    migrations.write("002_next.sql", "CREATE TABLE after_busy (id int);\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["001", "002"]


def test_a_migration_dropping_every_prepared_statement_is_still_applied_exactly_once(
    cli, database_url, migrations
):
    """pgship prepares its own statements once per run; DEALLOCATE ALL in a migration drops them."""
    migrations.write("001_runs.sql", RUNS)
    migrations.write("002_deallocate.sql", "INSERT INTO runs VALUES ('002');\nDEALLOCATE ALL;\n")
    migrations.write("003_next.sql", "INSERT INTO runs VALUES ('003');\nPREPARE mine AS SELECT 1;\n")
    migrations.write("004_again.sql", "INSERT INTO runs VALUES ('004');\nPREPARE mine AS SELECT 2;\n")
    result = migrate(cli, database_url, migrations, "--json")
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["001", "002", "003", "004"]
    assert runs(database_url) == ["002", "003", "004"]  # once each: the first try of 002 rolled back
    assert [m["attempts"] for m in json.loads(result.stdout)["applied"]] == [1, 1, 1, 1]


def test_tracking_tables_in_two_schemas_out_of_reach_are_refused_with_advice(cli, database_url, migrations):
    migrations.write("001_users.sql", "CREATE TABLE IF NOT EXISTS users (id int);\n")
    for schema in ("one", "two"):
        assert (
            cli(
                "-d", database_url, "-m", str(migrations), "--table", f"{schema}.schema_migrations", "migrate"
            ).code
            == 0
        )
    result = migrate(cli, database_url, migrations)
    assert result.code == 2, result.output
    assert "one, two" in result.stderr and "--table SCHEMA.schema_migrations" in result.stderr
    assert "bug in pgship" not in result.output
