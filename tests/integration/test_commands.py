"""The other commands: status, plan, verify, new, wait, and the legacy runner script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from tests.conftest import ROOT
from tests.integration.helpers import applied_versions, query, table_exists

SAMPLE = ROOT / "docker" / "postgres" / "migrations"


def test_the_sample_migrations_apply_on_a_fresh_database_and_rerun_applies_none(cli, database_url):
    first = cli("-d", database_url, "-m", str(SAMPLE), "migrate")
    assert first.code == 0, first.output
    assert applied_versions(database_url) == ["001", "002", "003", "004", "005", "006", "007"]
    assert query(
        database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tasks_open_due_date_idx'::regclass"
    ) == [(True,)]
    second = cli("-d", database_url, "-m", str(SAMPLE), "migrate")
    assert second.code == 0 and "Nothing to apply" in second.stdout


def test_status_check_exits_5_until_the_database_is_in_sync(cli, database_url):
    pending = cli("-d", database_url, "-m", str(SAMPLE), "status", "--check")
    assert pending.code == 5 and "7 pending" in pending.stdout
    assert cli("-d", database_url, "-m", str(SAMPLE), "migrate").code == 0
    assert cli("-d", database_url, "-m", str(SAMPLE), "status", "--check").code == 0


def test_status_json_has_the_documented_keys(cli, database_url):
    cli("-d", database_url, "-m", str(SAMPLE), "migrate", "--target", "3")
    document = json.loads(cli("-d", database_url, "-m", str(SAMPLE), "status", "--json").stdout)
    assert {
        "command",
        "database",
        "table",
        "migrations_dir",
        "in_sync",
        "summary",
        "latest_applied",
        "pending",
        "migrations",
        "warnings",
    } <= set(document)
    assert document["latest_applied"] == "003" and document["pending"] == ["004", "005", "006", "007"]
    assert document["summary"]["applied"] == 3 and document["summary"]["pending"] == 4
    entry = document["migrations"][0]
    assert set(entry) == {
        "version",
        "name",
        "file",
        "state",
        "applied_at",
        "execution_ms",
        "applied_by",
        "checksum",
        "recorded_checksum",
    }


def test_plan_changes_nothing_and_lints_pending_files_with_their_lines(cli, database_url, migrations):
    migrations.write("001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text);")
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    migrations.write(
        "002_index.sql", "-- index for lookups\nCREATE INDEX users_email_idx ON users (email);\n"
    )
    migrations.write("003_required.sql", "ALTER TABLE users ADD COLUMN tenant bigint NOT NULL;\n")
    result = cli("-d", database_url, "-m", str(migrations), "--json", "plan")
    document = json.loads(result.stdout)
    assert result.code == 0
    assert [m["file"] for m in document["would_apply"]] == ["002_index.sql", "003_required.sql"]
    rules = {(f["file"], f["line"], f["rule"]) for f in document["lint"]}
    assert ("002_index.sql", 2, "require-concurrent-index-creation") in rules
    assert ("003_required.sql", 1, "adding-required-field") in rules
    assert applied_versions(database_url) == ["001"]
    strict = cli("-d", database_url, "-m", str(migrations), "plan", "--lint-strict")
    assert strict.code == 2 and "002_index.sql:2" in strict.stdout


def test_plan_reports_refusals_with_exit_2(cli, database_url, migrations):
    path = migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    path.write_text("CREATE TABLE users (id bigint);")
    result = cli("-d", database_url, "-m", str(migrations), "plan", "--no-lint")
    assert result.code == 2 and "edited since it was applied: 001_users.sql" in result.stdout


def test_verify_without_a_database_checks_every_file(cli, migrations, tmp_path):
    migrations.write("001_ok.sql", "CREATE TABLE a (id int);")
    migrations.write("002_bad.sql", "CREATE TABLE b (id int);\nCREATE INDEX CONCURRENTLY b_idx ON b (id);\n")
    result = cli("-m", str(migrations), "verify", env={"DATABASE_URL": "", "PGHOST": "", "PGDATABASE": ""})
    assert result.code == 2 and "002_bad.sql:2" in result.stderr and "no-transaction" in result.stderr
    (migrations.path / "002_bad.sql").unlink()
    ok = cli("-m", str(migrations), "verify", env={"DATABASE_URL": ""})
    assert ok.code == 0 and "1 migration files are valid" in ok.stdout


def test_verify_with_a_database_also_checks_applied_checksums(cli, database_url, migrations):
    path = migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    assert cli("-d", database_url, "-m", str(migrations), "verify").code == 0
    path.write_text("CREATE TABLE users (id int); -- edited")
    result = cli("-d", database_url, "-m", str(migrations), "verify")
    assert result.code == 2 and "001_users.sql" in result.stdout


def test_new_creates_the_next_version_from_the_template(cli, migrations):
    migrations.write("009_a.sql", "SELECT 1;")
    migrations.write("TEMPLATE.sql", "-- {{version}}_{{name}}: describe it\n")
    result = cli("-m", str(migrations), "new", "add_orders")
    assert result.code == 0
    created = migrations.path / "010_add_orders.sql"
    assert created.read_text() == "-- 010_add_orders: describe it\n"
    assert cli("-m", str(migrations), "new", "Add Orders").code == 2
    assert not list(migrations.path.glob("*Add*"))


def test_new_uses_a_built_in_template_and_creates_the_directory(cli, tmp_path):
    target = tmp_path / "db" / "migrations"
    result = cli("-m", str(target), "--json", "new", "create_users")
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document["version"] == "001" and document["template"] == "built-in"
    assert "pgship:no-transaction" in (target / "001_create_users.sql").read_text()


def test_global_options_work_after_the_command(cli, database_url):
    before = cli("--json", "-d", database_url, "-m", str(SAMPLE), "status")
    after = cli("status", "--json", "-d", database_url, "-m", str(SAMPLE))
    assert json.loads(before.stdout)["pending"] == json.loads(after.stdout)["pending"]


def test_wait_returns_when_the_database_accepts_connections(cli, database_url):
    result = cli("-d", database_url, "wait", "--timeout", "5")
    assert result.code == 0 and "accepts connections" in result.stdout


def test_every_command_has_help(cli):
    for command in ["status", "migrate", "up", "plan", "verify", "new", "baseline", "repair", "wait"]:
        result = cli(command, "--help")
        assert result.code == 0 and "global options" in result.stdout, command


def test_the_legacy_runner_script_reads_db_variables(database_url):
    parts = urlsplit(database_url)
    env = {
        **os.environ,
        "DB_HOST": parts.hostname,
        "DB_PORT": str(parts.port),
        "DB_NAME": parts.path.lstrip("/"),
        "DB_USER": parts.username,
        "DB_PASSWORD": parts.password,
        "PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("DATABASE_URL", None)
    script = ROOT / "docker" / "postgres" / "run-migrations.sh"
    completed = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert table_exists(database_url, "open_tasks")
    assert parts.password not in completed.stdout + completed.stderr
    failed = subprocess.run(
        [str(script)],
        env={**env, "DB_PASSWORD": "not-the-password"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failed.returncode == 6 and "not-the-password" not in failed.stdout + failed.stderr


MALFORMED_URLS = [
    "postgresql//app:Pw-Canary-13@127.0.0.1/app",
    "postgresql:/app:Pw-Canary-13@127.0.0.1/app",
    "postgresql://app:Pw-Canary-13 x@127.0.0.1/app",
    "postgresql://app:Pw-Canary-13#x@127.0.0.1/app",
    "postgresql://app:Pw-Canary-13?x@127.0.0.1/app",
    "postgresql://app:Pw-Canary-13@127.0.0.1:5x432/app",
]
EVERY_DATABASE_COMMAND = [
    ["status"],
    ["migrate"],
    ["plan"],
    ["verify"],
    ["diff"],
    ["baseline", "001"],
    ["repair"],
    ["wait"],
    ["deploy", "--wait", "1"],
    ["serve", "--port", "1"],
]


def test_a_malformed_url_is_refused_by_every_command_as_bad_input_without_showing_the_password(
    cli, migrations
):
    migrations.write("001_a.sql", "CREATE TABLE a (id int);\n")
    for url in MALFORMED_URLS:
        for command in EVERY_DATABASE_COMMAND:
            for output in ([], ["--json"]):
                result = cli("-d", url, "-m", str(migrations), *output, *command)
                shown = f"{url} {' '.join(output + command)}:\n{result.output}"
                assert result.code == 2, shown
                assert "not a valid postgresql:// URL" in result.output, shown
                assert "Canary" not in result.output and "bug in pgship" not in result.output, shown
                if output:
                    assert json.loads(result.stdout)["status"] == "invalid", shown
    # DATABASE_URL is read the same way
    env_result = cli("-m", str(migrations), "status", env={"DATABASE_URL": MALFORMED_URLS[0]})
    assert env_result.code == 2 and "Canary" not in env_result.output


# -- numeric options: nonsense values are bad input, refused before anything connects ------------------
WAITING = ["status", "migrate", "plan", "verify", "diff", "baseline 001", "repair", "deploy", "wait"]
BAD_NUMBERS = {  # option -> (commands, values refused)
    "--wait": (WAITING, ["-1", "nan", "x"]),
    "--timeout": (["wait"], ["-1", "inf"]),
    "--lock-wait": (["migrate", "deploy"], ["-0.5", "inf"]),
    "--lock-timeout": (["migrate", "deploy"], ["0", "0.0004", "-1"]),
    "--lock-retries": (["migrate", "deploy"], ["-1", "1.5"]),
    "--statement-timeout": (["migrate", "deploy"], ["0", "-2"]),
    "--start-grace": (["deploy"], ["0", "-1"]),
    "--health-timeout": (["deploy"], ["0", "-1"]),
    "--cache-ttl": (["serve"], ["-1"]),
    "--check-timeout": (["serve"], ["0"]),
    "--port": (["serve"], ["0", "70000", "-1"]),
    "--replay-pg-version": (["verify"], ["0", "-16"]),
}  # fmt: skip


def test_nonsense_numbers_for_any_option_are_refused_before_connecting(cli, migrations):
    migrations.write("001_a.sql", "CREATE TABLE a (id int);\n")
    closed = "postgresql://app@127.0.0.1:9/app"  # connecting would fail with exit 3, not 2
    for option, (commands, values) in BAD_NUMBERS.items():
        for command in commands:
            for value in values:
                for output in ([], ["--json"]):
                    args = [
                        "-d",
                        closed,
                        "-m",
                        str(migrations),
                        *output,
                        *command.split(),
                        f"{option}={value}",
                    ]
                    result = cli(*args)
                    shown = f"pgship {' '.join(args)}:\n{result.output}"
                    assert result.code == 2, shown
                    assert option in result.output and "cannot connect" not in result.output, shown
                    if output:
                        assert json.loads(result.stdout)["error"]["kind"] == "usage", shown


def test_every_numeric_option_of_every_command_uses_a_checked_type():
    import argparse

    from pgship.cli import build_parser, port_number, retry_count, timeout_seconds, wait_seconds

    checked = {wait_seconds, timeout_seconds, retry_count, port_number}
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    unchecked = [
        f"{name} {'/'.join(action.option_strings)}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if action.type in (int, float)
    ]
    assert not unchecked, f"numeric options without bounds: {unchecked}"
    lock_retries = next(
        a for a in subparsers.choices["migrate"]._actions if "--lock-retries" in a.option_strings
    )
    assert lock_retries.type in checked


def test_a_connection_the_server_refuses_for_good_exits_6_at_once_and_unreachable_stays_3(cli, pg_server):
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_server.admin_url)

    def url(user=parts.username, password=pg_server.password, db=parts.path, query=""):
        return urlunsplit((parts.scheme, f"{user}:{password}@{parts.hostname}:{parts.port}", db, query, ""))

    cases = {
        "wrong password": url(password="Wr0ng-Pw-13-9"),
        "no such database": url(db="/no_such_database_139"),
        "no such role": url(user="no_such_role_139"),
        "a refused parameter": url(query="sslmode=bogus"),
    }
    for what, target in cases.items():
        for command in (["status"], ["migrate"], ["wait"], ["deploy"]):
            result = cli("-d", target, "--json", *command, "--wait", "30")
            document = json.loads(result.stdout)
            shown = f"{what}, {command}: {result.output}"
            assert result.code == 6, shown
            assert document["status"] == "rejected", shown
            assert document["error"]["kind"] == "connection_rejected", shown
            assert document["error"]["attempts"] == 1, shown  # refused at once: no pointless waiting
            assert "waiting will not help" in document["error"]["hint"], shown
            assert "Wr0ng-Pw-13-9" not in result.output and pg_server.password not in result.output
    closed = url(password="x").replace(f":{parts.port}/", ":9/")
    assert cli("-d", closed, "status", "--wait", "0").code == 3


def test_without_any_database_setting_the_error_says_to_set_database_url_and_what_libpq_tried(migrations):
    migrations.write("001_a.sql", "CREATE TABLE a (id int);\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    env["PGPORT"] = "9"  # the default socket, on a port nothing listens on (PGPORT alone names no database)
    for output in ([], ["--json"]):
        completed = subprocess.run(
            [sys.executable, "-m", "pgship", "-m", str(migrations), *output, "status"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        text = completed.stdout + completed.stderr
        assert completed.returncode == 3, text
        assert "DATABASE_URL" in text and "-d URL" in text, text
        assert "local Unix socket on port 9" in text and ".s.PGSQL.9" in text, text
        assert "localhost" not in text, text  # libpq tried a socket, not localhost
        if output:
            assert "\\t" not in completed.stdout, "a libpq hint line kept its TAB in the JSON"


def test_an_empty_migrations_directory_is_said_plainly_and_refused_on_a_migrated_database(
    cli, database_url, migrations, tmp_path
):
    migrations.write("001_a.sql", "CREATE TABLE a (id int);\n")
    migrations.write("002_b.sql", "CREATE TABLE b (id int);\n")
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    empty = tmp_path / "mis-pointed"
    empty.mkdir()
    base = ["-d", database_url, "-m", str(empty)]
    for command in (["migrate"], ["plan"], ["verify"], ["deploy", "--wait", "5"]):
        for output in ([], ["--json"]):
            result = cli(*base, *output, *command)
            shown = f"{command}: {result.output}"
            assert result.code == 2, shown
            assert f"no migration files in {empty}" in result.output, shown
            assert "--allow-empty" in result.output, shown
    status = cli(*base, "status")
    assert status.code == 0 and f"no migration files in {empty}" in status.output
    allowed = cli(*base, "migrate", "--allow-empty")
    assert allowed.code == 0 and f"no migration files in {empty}" in allowed.output, allowed.output
    assert cli(*base, "deploy", "--wait", "5", "--allow-empty").code == 0
    assert applied_versions(database_url) == ["001", "002"]  # nothing was forgotten or changed


def test_an_empty_directory_on_an_empty_database_is_not_an_error_but_is_said(cli, database_url, tmp_path):
    empty = tmp_path / "new-project"
    empty.mkdir()
    result = cli("-d", database_url, "-m", str(empty), "migrate")
    assert result.code == 0 and f"no migration files in {empty}" in result.output, result.output


def test_after_an_out_of_order_apply_the_summary_names_the_newest_applied_version(
    cli, database_url, migrations
):
    migrations.write("001_a.sql", "CREATE TABLE a (id int);\n")
    migrations.write("003_c.sql", "CREATE TABLE c (id int);\n")
    base = ["-d", database_url, "-m", str(migrations)]
    assert cli(*base, "migrate").code == 0
    migrations.write("002_b.sql", "CREATE TABLE b (id int);\n")
    refused = cli(*base, "--json", "migrate")
    assert refused.code == 2 and json.loads(refused.stdout)["already_applied"] == 2, refused.stdout
    result = cli(*base, "migrate", "--allow-out-of-order")
    assert result.code == 0 and "Database is at version 003" in result.stdout, result.stdout
    deployed = cli(*base, "deploy", "--wait", "5")
    assert deployed.code == 0, deployed.output


def test_a_long_status_lists_what_needs_attention_and_pending_or_all_on_request(
    cli, database_url, migrations
):
    for number in range(1, 61):
        migrations.write(f"{number:03d}_t{number}.sql", f"CREATE TABLE t{number} (id int);\n")
    base = ["-d", database_url, "-m", str(migrations)]
    assert cli(*base, "migrate", "--target", "058").code == 0
    default = cli(*base, "status").stdout
    assert re.search(r"^\s*059\s+pending", default, re.M) and re.search(r"^\s*060\s+pending", default, re.M)
    assert not re.search(r"^\s*001\s+applied", default, re.M), default  # 58 applied rows are summarised
    assert "58 applied migrations not listed" in default and "--all" in default, default
    assert "58 applied, 2 pending." in default
    everything = cli(*base, "status", "--all").stdout
    assert re.search(r"^\s*001\s+applied", everything, re.M) and "not listed" not in everything
    pending = cli(*base, "status", "--pending")
    assert [line.split()[0] for line in pending.stdout.splitlines() if re.match(r"^\s*\d{3}\s", line)] == [
        "059",
        "060",
    ]
    document = json.loads(cli(*base, "--json", "status", "--pending").stdout)
    assert [m["version"] for m in document["migrations"]] == ["059", "060"]
    assert document["summary"]["applied"] == 58  # the summary still counts everything


def test_plan_groups_a_lint_finding_repeated_in_many_files(cli, database_url, migrations):
    migrations.write("001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY);")
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    for number in range(2, 8):
        migrations.write(
            f"{number:03d}_c{number}.sql", f"ALTER TABLE users ADD COLUMN c{number} bigint NOT NULL;\n"
        )
    result = cli("-d", database_url, "-m", str(migrations), "plan")
    lines = [line for line in result.stdout.splitlines() if "adding-required-field" in line]
    assert len(lines) == 1, result.stdout
    assert "in 6 files: 002_c2.sql:1, 003_c3.sql:1, 004_c4.sql:1, and 3 more" in lines[0], lines[0]
    document = json.loads(cli("-d", database_url, "-m", str(migrations), "--json", "plan").stdout)
    assert len([f for f in document["lint"] if f["rule"] == "adding-required-field"]) == 6  # JSON: each one


def test_wait_takes_wait_like_every_command_and_still_accepts_timeout(cli):
    closed = "postgresql://app@127.0.0.1:9/app"
    for option in ("--wait", "--timeout"):
        result = cli("-d", closed, "--json", "wait", option, "0")
        assert result.code == 3, result.output
        assert "wait longer with --wait SECONDS" in json.loads(result.stdout)["error"]["hint"]
    from pgship.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["wait"].format_help()
    assert "--wait SECONDS" in help_text and "--timeout" not in help_text
