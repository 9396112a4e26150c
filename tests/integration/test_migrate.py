"""pgship migrate against a real PostgreSQL: applying, recording, refusing and failing."""

from __future__ import annotations

import json

import pytest

from pgship.migrations import checksum_of
from tests.integration.helpers import applied_versions, query, scalar, table_exists, tracking_rows

USERS = "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);\n"
ORDERS = "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));\n"


def migrate(cli, url, migrations, *extra):
    return cli("-d", url, "-m", str(migrations), "migrate", *extra)


def test_pending_migrations_apply_in_order_and_a_second_run_applies_none(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    migrations.write("011_orders.sql", ORDERS)
    migrations.write("002_users_email.sql", "CREATE UNIQUE INDEX users_email ON users (email);\n")
    first = migrate(cli, database_url, migrations)
    assert first.code == 0, first.output
    assert first.stdout.index("001_users") < first.stdout.index("002_users_email") < first.stdout.index("011")
    assert applied_versions(database_url) == ["001", "002", "011"]
    second = migrate(cli, database_url, migrations)
    assert second.code == 0 and "Nothing to apply" in second.stdout
    assert len(tracking_rows(database_url)) == 3


def test_each_migration_is_recorded_with_name_checksum_duration_and_who(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    assert migrate(cli, database_url, migrations).code == 0
    [(version, name, checksum, ms, by)] = tracking_rows(database_url)
    assert (version, name, checksum) == ("001", "users", checksum_of(USERS))
    assert ms is not None and ms >= 0
    assert by.startswith("postgres (")


def test_a_failing_migration_rolls_back_and_stops_the_run(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    migrations.write(
        "002_broken.sql", "CREATE TABLE audit (id int);\n\nINSERT INTO missing_table VALUES (1);\n"
    )
    migrations.write("003_orders.sql", ORDERS)
    result = migrate(cli, database_url, migrations)
    assert result.code == 1
    assert "002_broken.sql:3" in result.stderr and "42P01" in result.stderr
    assert 'relation "missing_table" does not exist' in result.stderr
    assert "rolled back" in result.stderr
    assert applied_versions(database_url) == ["001"]
    assert not table_exists(database_url, "audit") and not table_exists(database_url, "orders")


def test_the_failure_line_points_inside_a_multi_line_statement(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS + "\nSELECT id,\n       no_such_column\n  FROM users;\n")
    result = migrate(cli, database_url, migrations)
    assert result.code == 1 and "001_users.sql:4" in result.stderr and "42703" in result.stderr


def test_fixing_the_file_and_running_again_succeeds(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    bad = migrations.write("002_orders.sql", ORDERS.replace("users (id)", "userz (id)"))
    assert migrate(cli, database_url, migrations).code == 1
    bad.write_text(ORDERS)
    assert migrate(cli, database_url, migrations).code == 0
    assert applied_versions(database_url) == ["001", "002"]


def test_json_output_of_migrate_has_the_documented_keys(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    result = cli("--json", "-d", database_url, "-m", str(migrations), "migrate")
    document = json.loads(result.stdout)
    assert document["status"] == "ok"
    assert [a["version"] for a in document["applied"]] == ["001"]
    assert set(document["applied"][0]) == {"version", "name", "file", "execution_ms", "attempts", "messages"}
    assert {"already_applied", "adopted", "table_changes", "warnings", "duration_ms", "database"} <= set(
        document
    )
    again = json.loads(cli("-d", database_url, "-m", str(migrations), "migrate", "--json").stdout)
    assert again["status"] == "up_to_date" and again["applied"] == []


def test_json_output_of_a_failure_keeps_what_was_applied(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    migrations.write("002_bad.sql", "SELECT 1/0;")
    result = cli("--json", "-d", database_url, "-m", str(migrations), "migrate")
    document = json.loads(result.stdout)
    assert result.code == 1 and document["status"] == "failed"
    assert [a["version"] for a in document["applied"]] == ["001"]
    error = document["error"]
    assert (error["file"], error["line"], error["sqlstate"]) == ("002_bad.sql", 1, "22012")


def test_target_applies_only_up_to_the_version(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    migrations.write("002_orders.sql", ORDERS)
    assert migrate(cli, database_url, migrations, "--target", "1").code == 0
    assert applied_versions(database_url) == ["001"]
    assert migrate(cli, database_url, migrations, "--target", "7").code == 2


def test_a_file_with_its_own_begin_commit_and_legacy_insert_is_recorded_once(cli, database_url, migrations):
    migrations.write(
        "001_users.sql",
        "BEGIN;\n" + USERS + "INSERT INTO schema_migrations (version, name) VALUES ('001', 'users') "
        "ON CONFLICT (version) DO NOTHING;\nCOMMIT;\n",
    )
    assert migrate(cli, database_url, migrations).code == 0
    [(version, _name, checksum, ms, by)] = tracking_rows(database_url)
    assert version == "001" and checksum and ms is not None and by


def test_a_no_transaction_migration_builds_an_index_concurrently(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    migrations.write(
        "002_users_email_index.sql",
        "-- pgship:no-transaction\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);\n",
    )
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert scalar(
        database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'users_email_idx'::regclass"
    )
    assert applied_versions(database_url) == ["001", "002"]


def test_a_failed_no_transaction_migration_says_it_may_be_partial(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS + "INSERT INTO users (email) VALUES ('a'), ('a');\n")
    migrations.write(
        "002_unique.sql",
        "-- pgship:no-transaction\nCREATE TABLE side (id int);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\n",
    )
    result = migrate(cli, database_url, migrations)
    assert result.code == 1
    assert "002_unique.sql:3" in result.stderr and "without a transaction" in result.stderr
    assert "users_email_key" in result.stderr  # the INVALID index left behind is named
    assert table_exists(database_url, "side") and applied_versions(database_url) == ["001"]


@pytest.mark.parametrize(
    "files,offender",
    [
        ({"001_a.sql": "SELECT 1;", "01_b.sql": "SELECT 1;"}, "01_b.sql"),
        ({"001_a.sql": "SELECT 1;", "add_users.sql": "SELECT 1;"}, "add_users.sql"),
        ({"001_a.sql": "-- nothing yet\n"}, "001_a.sql"),
        ({"001_a.sql": "SELECT 'caf\xe9';".encode("latin-1")}, "001_a.sql"),
        ({"001_a.sql": "CREATE TABLE x (id int);\n\\i other.sql\n"}, "001_a.sql"),
        ({"001_a.sql": "CREATE TABLE t (a int);\nCOPY t FROM stdin;\n1\n\\.\n"}, "001_a.sql"),
        ({"001_a.sql": "CREATE TABLE x (id int);\nCOMMIT;\nCREATE TABLE y (id int);"}, "001_a.sql"),
        ({"001_a.sql": "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);"}, "001_a.sql"),
        ({"001_a.sql": "CREATE TABLE t (a int;"}, "001_a.sql"),
    ],
    ids=[
        "duplicate",
        "misnamed",
        "empty",
        "latin1",
        "meta-command",
        "copy-stdin",
        "mid-commit",
        "concurrent-unmarked",
        "syntax",
    ],
)
def test_bad_files_are_refused_before_the_database_is_touched(cli, database_url, migrations, files, offender):
    migrations.write("000_first.sql", "CREATE TABLE first_table (id int);")
    for name, sql in files.items():
        migrations.write(name, sql)
    result = migrate(cli, database_url, migrations)
    assert result.code == 2, result.output
    assert offender in result.stderr
    assert "fix:" in result.stderr and "Nothing was changed" in result.stderr
    assert not table_exists(database_url, "schema_migrations")
    assert not table_exists(database_url, "first_table")


def test_a_missing_migrations_directory_is_refused(cli, database_url, tmp_path):
    result = cli("-d", database_url, "-m", str(tmp_path / "nowhere"), "migrate")
    assert result.code == 2 and "does not exist" in result.stderr
    assert not table_exists(database_url, "schema_migrations")


def test_an_edited_applied_migration_stops_the_next_run_and_repair_accepts_it(cli, database_url, migrations):
    first = migrations.write("001_users.sql", USERS)
    assert migrate(cli, database_url, migrations).code == 0
    first.write_text(USERS + "-- a comment added later\n")
    migrations.write("002_orders.sql", ORDERS)
    refused = migrate(cli, database_url, migrations)
    assert refused.code == 2 and "001_users.sql" in refused.stderr and "repair" in refused.stderr
    assert applied_versions(database_url) == ["001"]
    repaired = cli("-d", database_url, "-m", str(migrations), "repair")
    assert repaired.code == 0 and "accepted 001_users.sql" in repaired.stdout
    assert migrate(cli, database_url, migrations).code == 0
    assert applied_versions(database_url) == ["001", "002"]


def test_crlf_line_endings_are_not_drift(cli, database_url, migrations):
    path = migrations.write("001_users.sql", USERS)
    assert migrate(cli, database_url, migrations).code == 0
    path.write_bytes(b"\xef\xbb\xbf" + USERS.replace("\n", "\r\n").encode())
    result = cli("-d", database_url, "-m", str(migrations), "status", "--check")
    assert result.code == 0, result.output


def test_a_deleted_applied_migration_is_reported_and_refused(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    gone = migrations.write("002_orders.sql", ORDERS)
    migrations.write("003_more.sql", "CREATE TABLE more (id int);")
    assert migrate(cli, database_url, migrations).code == 0
    gone.unlink()
    migrations.write("004_next.sql", "CREATE TABLE next_one (id int);")
    result = migrate(cli, database_url, migrations)
    assert (
        result.code == 2
        and "002" in result.stderr
        and "no longer in the migrations directory" in result.stderr
    )
    status = cli("-d", database_url, "-m", str(migrations), "status")
    assert "FILE MISSING" in status.stdout


def test_an_older_release_runs_on_a_newer_schema_with_a_warning(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    newer = migrations.write("002_orders.sql", ORDERS)
    assert migrate(cli, database_url, migrations).code == 0
    newer.unlink()  # the application was rolled back to the release before 002
    result = migrate(cli, database_url, migrations)
    assert result.code == 0 and "newer than this release: 002" in result.stderr


def test_out_of_order_files_are_refused_unless_allowed(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    migrations.write("003_orders.sql", ORDERS)
    assert migrate(cli, database_url, migrations).code == 0
    migrations.write("002_late.sql", "CREATE TABLE late (id int);")
    refused = migrate(cli, database_url, migrations)
    assert refused.code == 2 and "002_late.sql" in refused.stderr and "--allow-out-of-order" in refused.stderr
    assert migrate(cli, database_url, migrations, "--allow-out-of-order").code == 0
    assert applied_versions(database_url) == ["001", "002", "003"]


def test_a_legacy_tracking_table_is_upgraded_in_place_and_rows_adopted(cli, database_url, migrations):
    query(
        database_url,
        "CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY, name varchar(255), "
        "applied_at timestamp DEFAULT now())",
    )
    query(database_url, USERS)
    query(database_url, "INSERT INTO schema_migrations (version, name) VALUES ('001', 'users')")
    migrations.write("001_users.sql", USERS)
    migrations.write("002_orders.sql", ORDERS)
    result = migrate(cli, database_url, migrations)
    assert result.code == 0, result.output
    assert "upgraded the legacy tracking table" in result.stdout and "recorded its checksum" in result.stdout
    rows = tracking_rows(database_url)
    assert [r[0] for r in rows] == ["001", "002"]
    assert rows[0][2] == checksum_of(USERS) and rows[1][2] == checksum_of(ORDERS)


def test_a_legacy_integer_version_column_keeps_working(cli, database_url, migrations):
    query(
        database_url,
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text, "
        "applied_at timestamptz DEFAULT now())",
    )
    query(database_url, USERS + "INSERT INTO schema_migrations (version, name) VALUES (1, 'users');")
    migrations.write("001_users.sql", USERS)
    migrations.write("002_orders.sql", ORDERS)
    assert migrate(cli, database_url, migrations).code == 0
    assert applied_versions(database_url) == ["1", "2"]
    assert cli("-d", database_url, "-m", str(migrations), "status", "--check").code == 0


def test_a_custom_schema_qualified_table(cli, database_url, migrations):
    migrations.write("001_users.sql", USERS)
    assert cli("-d", database_url, "-m", str(migrations), "--table", "ops.migrations", "migrate").code == 0
    assert applied_versions(database_url, "ops.migrations") == ["001"]
    assert not table_exists(database_url, "schema_migrations")


def test_baseline_adopts_an_existing_schema_without_running_anything(cli, database_url, migrations):
    query(database_url, USERS)
    migrations.write("001_users.sql", USERS)
    migrations.write("002_orders.sql", ORDERS)
    result = cli("-d", database_url, "-m", str(migrations), "baseline", "001")
    assert result.code == 0 and "Recorded 1" in result.stdout
    assert migrate(cli, database_url, migrations).code == 0
    assert applied_versions(database_url) == ["001", "002"]


def test_session_settings_of_one_migration_do_not_leak_into_the_next(cli, database_url, migrations):
    migrations.write(
        "001_schema.sql", "CREATE SCHEMA reporting;\nSET search_path TO reporting;\nCREATE TABLE a (id int);"
    )
    migrations.write("002_table.sql", "CREATE TABLE b (id int);")
    assert migrate(cli, database_url, migrations).code == 0
    assert table_exists(database_url, "reporting.a") and table_exists(database_url, "public.b")
