"""`pgship review` against a real database: pending migrations, their locks, production sizes, the gate.

The review must read, never write: every test that gives it a database also checks that the schema and
the tracking table are exactly as before.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from pgship.review.release import GATE_EXIT_CODE
from tests.integration.helpers import query, scalar, tracking_rows

ROWS = 20_000


@pytest.fixture
def release(database_url, migrations, cli):
    """Production at release 1 with a 20 000-row customers table; release 2 adds three migrations."""
    migrations.write(
        "001_customers.sql",
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL);\n"
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total numeric);\n",
    )
    assert cli("migrate", "-d", database_url, "-m", str(migrations)).code == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, {ROWS}) g")
        conn.execute("ANALYZE customers")
    migrations.write(
        "002_customer_token.sql",
        "-- every customer gets a token\n"
        "ALTER TABLE customers ADD COLUMN token uuid DEFAULT gen_random_uuid();\n",
    )
    migrations.write(
        "003_index_orders.sql",
        "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY orders_customer_idx ON orders (customer_id);\n",
    )
    migrations.write(
        "004_invoices.sql",
        "CREATE TABLE invoices (id bigint PRIMARY KEY, total numeric);\n"
        "CREATE INDEX invoices_total_idx ON invoices (total);\n",
    )
    return database_url, migrations


def snapshot(url: str) -> tuple[object, ...]:
    columns = query(
        url,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY 1, 2",
    )
    indexes = query(url, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1")
    return columns, indexes, tracking_rows(url)


def test_the_risky_migration_comes_first_with_its_lock_and_the_tables_size(release, cli):
    url, migrations = release
    before = snapshot(url)
    result = cli("review", "-d", url, "-m", str(migrations), "--no-lint")
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    worst = next(i for i, line in enumerate(lines) if line.startswith("Locks on existing tables"))
    first = lines[worst + 2]
    assert first.split()[:3] == ["ACCESS", "EXCLUSIVE", "customers"], result.stdout
    assert f"{ROWS:,} rows" in first and "rewrite" in first and "002_customer_token.sql:2" in first
    assert "SHARE UPDATE EXCLUSIVE  orders" in result.stdout
    assert "does not block reads or writes" in result.stdout
    assert "003_index_orders.sql (statement by statement, no transaction)" in result.stdout
    # invoices is created by the release: its index build blocks nobody and is not among the locks
    assert "invoices " not in "\n".join(lines[worst : lines.index("", worst)])
    assert snapshot(url) == before


def test_json_names_every_lock_with_the_relation_size(release, cli):
    url, migrations = release
    result = cli("review", "-d", url, "-m", str(migrations), "--json", "--no-lint")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [m["file"] for m in document["migrations"]] == [
        "002_customer_token.sql",
        "003_index_orders.sql",
        "004_invoices.sql",
    ]
    token = document["migrations"][0]["statements"][0]
    assert token["kind"] == "ALTER TABLE ... ADD COLUMN"
    (lock,) = token["locks"]
    assert (lock["relation"], lock["mode"], lock["pg_mode"], lock["work"]) == (
        "customers",
        "ACCESS EXCLUSIVE",
        "AccessExclusiveLock",
        "rewrite",
    )
    estimate = scalar(url, "SELECT reltuples::bigint FROM pg_class WHERE oid = 'customers'::regclass")
    assert lock["size"]["rows"] == estimate == ROWS
    assert lock["size"]["bytes"] == scalar(url, "SELECT pg_total_relation_size('customers')")
    assert document["migrations"][1]["in_transaction"] is False
    assert document["worst"][0]["relation"] == "customers"
    assert document["status"] == "ok"


def test_markdown_lists_every_pending_migration(release, cli):
    url, migrations = release
    result = cli("review", "-d", url, "-m", str(migrations), "--markdown", "--no-lint")
    assert result.code == 0, result.output
    for name in ("002_customer_token.sql", "003_index_orders.sql", "004_invoices.sql"):
        assert f"| `{name}` |" in result.stdout
    assert "001_customers.sql" not in result.stdout
    assert "| **ACCESS EXCLUSIVE** | `customers` | 20,000 rows" in result.stdout


@pytest.mark.parametrize(
    ("threshold", "code"),
    [
        ("access-exclusive:1000", GATE_EXIT_CODE),
        ("access-exclusive:1m", 0),
        (f"access-exclusive:{ROWS}", 0),  # more than N rows
        (f"access-exclusive:{ROWS - 1}", GATE_EXIT_CODE),
        ("share-update-exclusive:0", GATE_EXIT_CODE),  # "or stronger": the ACCESS EXCLUSIVE on customers
        ("share-row-exclusive", GATE_EXIT_CODE),  # any size
    ],
)
def test_fail_on_stops_a_release_that_crosses_the_threshold(release, cli, threshold, code):
    url, migrations = release
    before = snapshot(url)
    result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", "--fail-on", threshold)
    assert result.code == code, result.output
    if code:
        assert "GATE FAILED" in result.stdout and "002_customer_token.sql:2" in result.stdout
    else:
        assert "Gate passed" in result.stdout
    assert snapshot(url) == before


@pytest.mark.parametrize("bad", ["access-exclusive:lots", "exclusive-ish", "share:"])
def test_a_bad_threshold_is_refused_with_an_example(release, cli, bad):
    url, migrations = release
    result = cli("review", "-d", url, "-m", str(migrations), "--fail-on", bad)
    assert result.code == 2, result.output
    assert "--fail-on" in result.stderr and "Example" in result.stderr


NO_DATABASE = {"DATABASE_URL": "", "PGHOST": "", "PGDATABASE": ""}


def test_without_a_database_every_file_is_reviewed(release, cli):
    _, migrations = release
    result = cli(
        "review", "-m", str(migrations), "--no-lint", "--fail-on", "access-exclusive:1m", env=NO_DATABASE
    )
    assert result.code == 0, result.output
    # customers is created by 001, so the ADD COLUMN in 002 locks a table new in this release: no hazard
    assert "4 pending migrations; none locks an existing table." in result.stdout
    assert "created earlier in this release" in result.stdout


def test_without_a_database_a_named_file_on_an_unknown_size_fails_the_gate(release, cli):
    """CI on a pull request: the changed files, no production database. Unknown counts as too big."""
    _, migrations = release
    result = cli(
        "review",
        "-m",
        str(migrations),
        "--no-lint",
        "--fail-on",
        "access-exclusive:1m",
        "002",
        env=NO_DATABASE,
    )
    assert result.code == GATE_EXIT_CODE, result.output
    assert "ACCESS EXCLUSIVE on customers (size unknown (no database given)) crosses" in result.stdout


def test_named_files_are_reviewed_and_an_unknown_name_is_refused(release, cli):
    url, migrations = release
    result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", "--json", "003", "004_invoices.sql")
    assert result.code == 0, result.output
    assert [m["version"] for m in json.loads(result.stdout)["migrations"]] == ["003", "004"]
    missing = cli("review", "-d", url, "-m", str(migrations), "999_nope.sql")
    assert missing.code == 2 and "999_nope.sql: not a migration" in missing.stderr


def test_lint_findings_are_grouped_by_rule(release, cli):
    url, migrations = release
    result = cli("review", "-d", url, "-m", str(migrations), "--json")
    assert result.code == 0, result.output
    by_file = {m["file"]: m for m in json.loads(result.stdout)["migrations"]}
    assert "require-concurrent-index-creation" not in by_file["003_index_orders.sql"]["lint"]
    token_rules = by_file["002_customer_token.sql"]["lint"]
    assert token_rules, "squawk flags a volatile default on an existing table"
    assert all(f["rule"] == rule for rule, items in token_rules.items() for f in items)


def test_a_pending_file_migrate_would_refuse_is_reported_with_exit_2(release, cli):
    url, migrations = release
    migrations.write("005_bad.sql", "CREATE INDEX CONCURRENTLY i ON orders (total);\n")
    result = cli("review", "-d", url, "-m", str(migrations), "--no-lint")
    assert result.code == 2, result.output
    assert "problem: line 1: CREATE INDEX CONCURRENTLY cannot run inside a transaction" in result.stdout


def test_a_table_locked_by_another_session_does_not_hold_the_review_up(release, cli):
    url, migrations = release
    with psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE")
        result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", "--json")
        holder.rollback()
    assert result.code == 0, result.output
    lock = json.loads(result.stdout)["migrations"][0]["statements"][0]["locks"][0]
    assert lock["size"]["rows"] is None and "locked by another session" in lock["size"]["note"]


def test_the_password_never_appears(release, cli):
    url, migrations = release
    password = psycopg.conninfo.conninfo_to_dict(url)["password"]
    for extra in ([], ["--json"], ["--markdown"], ["--fail-on", "share"]):
        result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", *extra)
        assert password not in result.output


def test_replay_gives_each_pending_migration_its_duration(release, cli, pg_server):
    url, migrations = release
    result = cli(
        "review", "-d", url, "-m", str(migrations), "--no-lint", "--json", "--replay-url", pg_server.admin_url
    )
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert document["replay"]["applied"] == 4
    assert all(isinstance(m["replay_ms"], int) for m in document["migrations"])
    assert pg_server.admin_url.split("@")[0].split(":")[-1] not in result.stdout  # the replay password


def test_a_replay_failure_names_the_file_and_exits_1(release, cli, pg_server):
    url, migrations = release
    migrations.write("005_broken.sql", "ALTER TABLE nowhere ADD COLUMN x int;\n")
    result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", "--replay-url", pg_server.admin_url)
    assert result.code == 1, result.output
    assert "replay failed" in result.stdout and "005_broken.sql" in result.stdout


def test_an_application_writing_to_the_table_does_not_hold_the_review_up(release, cli):
    """Reading sizes takes only ACCESS SHARE: a writer's open transaction (ROW EXCLUSIVE) never blocks it."""
    url, migrations = release
    with psycopg.connect(url) as app:
        app.execute("UPDATE customers SET name = name || '!' WHERE id <= 10")  # left uncommitted
        result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", "--json")
        app.rollback()
    assert result.code == 0, result.output
    size = json.loads(result.stdout)["migrations"][0]["statements"][0]["locks"][0]["size"]
    assert size["rows"] == ROWS and size["note"] is None


def test_allure_results_have_one_test_per_pending_migration(release, cli, tmp_path, pg_server):
    url, migrations = release
    results = tmp_path / "allure-results"
    result = cli(
        "review", "-d", url, "-m", str(migrations), "--replay-url", pg_server.admin_url,
        "--allure-results", str(results),
    )  # fmt: skip
    assert result.code == 0, result.output
    documents = {
        doc["name"]: doc for doc in (json.loads(p.read_text()) for p in results.glob("*-result.json"))
    }
    assert sorted(documents) == ["002_customer_token.sql", "003_index_orders.sql", "004_invoices.sql"]
    token = documents["002_customer_token.sql"]
    assert token["status"] == "broken"
    assert "ACCESS EXCLUSIVE on customers (20,000 rows" in token["statusDetails"]["message"]
    assert {"name": "epic", "value": "Release review"} in token["labels"]
    assert documents["004_invoices.sql"]["status"] == "passed"  # a new table: nobody waits for it
    for document in documents.values():
        names = {a["name"] for a in document["attachments"]}
        assert {"review.md", "statements, locks and sizes.json", document["name"]} <= names
        for attachment in document["attachments"]:
            assert (results / attachment["source"]).is_file()
    locks = next(a for a in token["attachments"] if a["type"] == "application/json")
    sizes = json.loads((results / locks["source"]).read_text())
    assert sizes["statements"][0]["locks"][0]["size"]["rows"] == ROWS
    password = psycopg.conninfo.conninfo_to_dict(url)["password"]
    assert not [p for p in results.iterdir() if password in p.read_text()]


def test_an_unwritable_results_directory_is_a_clear_error(release, cli, tmp_path):
    url, migrations = release
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = cli("review", "-d", url, "-m", str(migrations), "--no-lint", "--allure-results", str(blocker))
    assert result.code == 2, result.output
    assert "--allure-results: cannot write to" in result.stderr and "bug in pgship" not in result.output


def test_a_database_without_a_tracking_table_has_every_file_pending(database_url, migrations, cli):
    migrations.write("001_t.sql", "CREATE TABLE t (id bigint PRIMARY KEY);\nCREATE INDEX t_id ON t (id);\n")
    result = cli("review", "-d", database_url, "-m", str(migrations), "--no-lint", "--json")
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [m["file"] for m in document["migrations"]] == ["001_t.sql"]
    assert document["worst"] == []  # t is created by the release
    assert scalar(database_url, "SELECT to_regclass('schema_migrations') IS NULL")  # review created nothing
