"""Validation through the CLI against a real PostgreSQL: what is refused, what runs (issues 12 and 13).

Each refusal is checked end to end: exit code 2, the file and line named, and the database untouched.
"""

from __future__ import annotations

import threading

import psycopg
import pytest

from tests.integration.helpers import applied_versions, scalar, table_exists

NO_DB = {"DATABASE_URL": "", "PGHOST": "", "PGDATABASE": ""}


def test_a_marker_on_the_second_line_is_refused_and_nothing_runs(cli, database_url, migrations):
    # before: the whole file ran without a transaction, and a failure left half of its rows
    migrations.write("001_jobs.sql", "CREATE TABLE jobs (id int PRIMARY KEY);")
    migrations.write(
        "002_load.sql",
        "-- Load the first jobs.\n-- pgship:no-transaction\n"
        "INSERT INTO jobs VALUES (1);\nINSERT INTO jobs VALUES (1);\n",
    )
    result = cli("-d", database_url, "-m", str(migrations), "migrate")
    assert result.code == 2, result.output
    assert "002_load.sql:2" in result.output and "first line" in result.output
    assert not table_exists(database_url, "jobs") and applied_versions(database_url) == []


def test_a_column_named_like_concurrently_does_not_exempt_an_alter_table_from_lock_timeout(
    cli, database_url, migrations
):
    # before: "CONCURRENTLY" in the text made the ALTER TABLE wait for the lock without a timeout
    migrations.write("001_jobs.sql", "CREATE TABLE jobs (id int);")
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    migrations.write(
        "002_flag.sql",
        "-- pgship:no-transaction\nALTER TABLE jobs ADD COLUMN processed_concurrently boolean;\n",
    )
    holder = psycopg.connect(database_url)
    holder.execute("SELECT * FROM jobs")  # an open transaction holding ACCESS SHARE on jobs
    release = threading.Timer(60, holder.rollback)  # a fallback only: the migration must not wait for it
    release.start()
    try:
        result = cli(
            "-d",
            database_url,
            "-m",
            str(migrations),
            "migrate",
            "--lock-timeout",
            "0.2",
            "--lock-retries",
            "1",
        )
    finally:
        release.cancel()
        holder.close()
    assert result.code == 1, result.output
    assert "gave up waiting for a lock after 2 attempts" in result.output
    assert applied_versions(database_url) == ["001"]


def test_a_non_ascii_dollar_quote_tag_is_applied_as_written(cli, database_url, migrations):
    migrations.write(
        "001_greeting.sql",
        "CREATE FUNCTION greeting() RETURNS text LANGUAGE sql AS $é$ SELECT $ü$it's; done$ü$ $é$;\n"
        "CREATE TABLE greetings AS SELECT greeting() AS text;\n",
    )
    assert cli("-m", str(migrations), "verify", env=NO_DB).code == 0
    result = cli("-d", database_url, "-m", str(migrations), "migrate")
    assert result.code == 0, result.output
    assert scalar(database_url, "SELECT text FROM greetings") == "it's; done"


def test_a_begin_hidden_by_non_ascii_dollar_tags_is_refused_in_a_no_transaction_file(cli, migrations):
    migrations.write(
        "001_hidden.sql", "-- pgship:no-transaction\nSELECT $é$$ü$||$é$;\nBEGIN;\nSELECT $é$ a$é$;\n"
    )
    result = cli("-m", str(migrations), "verify", env=NO_DB)
    assert result.code == 2 and "001_hidden.sql:3" in result.output and "BEGIN" in result.output


def test_a_version_in_arabic_indic_digits_is_refused(cli, database_url, migrations):
    migrations.write("٠٠١_users.sql", "CREATE TABLE users (id int);")
    result = cli("-d", database_url, "-m", str(migrations), "migrate")
    assert result.code == 2 and "٠٠١_users.sql" in result.output and "ASCII digits 0-9" in result.output
    assert not table_exists(database_url, "users")


def test_a_self_looping_symlink_is_an_error_not_a_bug(cli, migrations):
    (migrations.path / "001_loop.sql").symlink_to("001_loop.sql")
    result = cli("-m", str(migrations), "verify", env=NO_DB)
    assert result.code == 2 and "001_loop.sql" in result.output and "cannot read" in result.output
    assert "bug" not in result.output


def test_verify_reports_every_problem_of_every_file_in_one_run(cli, migrations):
    migrations.write("add_notes.sql", "SELECT 1;")
    migrations.write("001_latin1.sql", "SELECT 'caf\xe9';".encode("latin-1"))
    migrations.write("002_a.sql", "SELECT 1;")
    migrations.write("02_b.sql", "SELECT 1;")
    migrations.write("003_commit.sql", "SELECT 1;\nCOMMIT;\nSELECT 2;")
    migrations.write("004_syntax.sql", "SELECT 1;\nCREAT TABLE t (id int);")
    migrations.write("005_empty.sql", "")
    migrations.write("006_meta.sql", "\\i other.sql\n")
    migrations.write("007_index.sql", "CREATE INDEX CONCURRENTLY i ON t (c);")
    result = cli("-m", str(migrations), "verify", env=NO_DB)
    assert result.code == 2
    assert "8 problems in the migration files" in result.output
    for where in [
        "add_notes.sql:",
        "001_latin1.sql:1:",
        "002_a.sql, 02_b.sql: 2 files share version 002\n",
        "003_commit.sql:2:",
        "004_syntax.sql:2:1:",
        "005_empty.sql:",
        "006_meta.sql:1:",
        "007_index.sql:1:",
    ]:
        assert where in result.output, where


def test_verify_on_an_empty_directory_says_there_are_no_migration_files(cli, migrations):
    result = cli("-m", str(migrations), "verify", env=NO_DB)
    assert result.code == 0
    assert f"no migration files in {migrations.path}" in result.output and "None" not in result.output


# -- what cannot run outside a transaction block (issue 12.13), decided from the real server --------
REFUSED = {
    "LOCK TABLE t IN SHARE MODE": "error",
    "DECLARE c CURSOR FOR SELECT 1": "error",
    "SET LOCAL lock_timeout = '7s'": "no effect",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE": "no effect",
    "SET CONSTRAINTS ALL DEFERRED": "no effect",
}
ALLOWED = [
    "SELECT * FROM t FOR UPDATE",
    "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    "SET lock_timeout = '7s'",
]


@pytest.mark.parametrize("sql", sorted(REFUSED))
def test_the_server_refuses_or_ignores_outside_a_transaction_what_pgship_refuses(database_url, sql):
    notices: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.sqlstate or ""))
        conn.execute("CREATE TABLE t (id int)")
        before = scalar(database_url, "SHOW lock_timeout")
        if REFUSED[sql] == "error":
            with pytest.raises(psycopg.errors.NoActiveSqlTransaction):
                conn.execute(sql)
        else:
            conn.execute(sql)
            assert notices == ["25P01"]  # WARNING: ... can only be used in transaction blocks
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == before


@pytest.mark.parametrize("sql", ALLOWED)
def test_the_server_runs_outside_a_transaction_what_pgship_allows(database_url, sql):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute(sql)


@pytest.mark.parametrize("sql", sorted(REFUSED))
def test_a_no_transaction_file_with_a_statement_that_needs_a_transaction_is_refused(
    cli, database_url, migrations, sql
):
    # before: LOCK TABLE passed verify and plan, then failed (25P01) after the statements before it committed
    migrations.write(
        "001_t.sql",
        f"-- pgship:no-transaction\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n{sql};\n",
    )
    result = cli("-d", database_url, "-m", str(migrations), "migrate")
    assert result.code == 2, result.output
    assert "001_t.sql:4" in result.output and "no-transaction" in result.output
    assert not table_exists(database_url, "t")


@pytest.mark.parametrize("sql", ALLOWED)
def test_a_no_transaction_file_with_statements_that_run_outside_a_transaction_applies(
    cli, database_url, migrations, sql
):
    migrations.write("001_t.sql", f"-- pgship:no-transaction\nCREATE TABLE t (id int);\n{sql};\n")
    result = cli("-d", database_url, "-m", str(migrations), "migrate")
    assert result.code == 0, result.output
    assert applied_versions(database_url) == ["001"]
