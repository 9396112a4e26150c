"""Migrations that attack the runner's own state, and stop signals at random instants (issue 12).

Each attack class runs ``budget.hostile`` trials (``budget.signals`` for signals), each on a fresh
database with real pgship processes, and checks the invariant that matters for it: no migration's
effect committed twice, no tracking row forged, every migration run from a clean session as the
runner's own user, the tracking table found wherever the search_path points, and an interrupted
run reporting exactly what the database holds.
"""

from __future__ import annotations

import os
import random
import secrets
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from tests import toolkit
from tests.conftest import MigrationsDir
from tests.faults.harness import Outcome, assert_all_held, spawn
from tests.faults.results import record
from tests.integration.test_interrupts import signal_trial, write_workload

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("PGSHIP_FAULT_SEED", "0")) or random.randrange(1, 2**31)


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def start_together(url: str, directory: Path, workdir: Path, tables: list[str]):
    """Runners, one per ``--table`` spelling, released at the same instant (a shared start file)."""
    return toolkit.start_together(
        [["-d", url, "-m", str(directory), "--table", table, "migrate"] for table in tables],
        workdir,
        lambda args: spawn(*args, workdir=workdir, module=False),
    )


def counted_migrations(directory: Path, count: int, hostile: dict[int, str] | None = None) -> MigrationsDir:
    """001 creates ``runs``; every later one logs itself there (a count > 1 means it ran twice)."""
    migrations = MigrationsDir(directory)
    migrations.write("001_runs.sql", "CREATE TABLE runs (version text NOT NULL);\n")
    for i in range(2, count + 1):
        body = (hostile or {}).get(i) or f"INSERT INTO runs VALUES ('{i:03d}');\nSELECT pg_sleep(0.02);\n"
        migrations.write(f"{i:03d}_step.sql", body)
    return migrations


def duplicates(url: str) -> list[str]:
    logged = Counter(row[0] for row in rows(url, "SELECT version FROM runs"))
    recorded = Counter(row[0] for row in rows(url, "SELECT version::text FROM public.schema_migrations"))
    return [f"{v} ran {n} times" for v, n in logged.items() if n > 1] + [
        f"{v} recorded {n} times" for v, n in recorded.items() if n > 1
    ]


# -- two spellings of one tracking table racing --------------------------------------------------
SPELLINGS = [
    "schema_migrations",
    "public.schema_migrations",
    '"public"."schema_migrations"',
    '"schema_migrations"',
]


def test_two_spellings_of_the_tracking_table_racing(pg_server, budget, workdir):
    rng = random.Random(SEED)
    outcomes = []
    directory = counted_migrations(workdir / "spellings", 12)
    for trial in range(budget.hostile):
        pair = rng.sample(SPELLINGS, 2)
        with pg_server.fresh_database(prefix="pgship_spell") as url:
            setup = spawn("-d", url, "-m", str(directory), "migrate", "--target", "1", workdir=workdir)
            problems = [] if setup.wait() == 0 else [f"setup failed: {setup.stderr}"]
            runners = start_together(url, directory.path, workdir, pair)
            codes = [runner.wait() for runner in runners]
            applied = sum(len(runner.applied_files()) for runner in runners)
            if codes != [0, 0]:
                problems.append(f"exit codes {codes}: {[r.stderr for r in runners]}")
            problems += duplicates(url)
            if applied != 11:
                problems.append(f"{applied} applied between them, expected 11")
        outcomes.append(
            Outcome(
                "two spellings of one tracking table racing",
                trial,
                not problems,
                " vs ".join(pair),
                None,
                "; ".join(problems) or "each migration applied once",
            )
        )
    record(outcomes)
    assert_all_held(outcomes)


# -- a migration releases the run's lock while a second runner waits -----------------------------
RELEASES = {
    "pg_advisory_unlock_all()": "INSERT INTO runs VALUES ('004');\nSELECT pg_advisory_unlock_all();\n"
    "SELECT pg_sleep(0.3);\n",
    "pg_advisory_unlock(key)": "INSERT INTO runs VALUES ('004');\n"
    "SELECT pg_advisory_unlock(l.objid::bigint | (l.classid::bigint << 32)) FROM pg_locks l\n"
    "WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid();\n"
    "SELECT pg_sleep(0.3);\n",
    "DISCARD ALL (no-transaction)": "-- pgship:no-transaction\n"
    "INSERT INTO runs SELECT '004' WHERE NOT EXISTS (SELECT FROM runs WHERE version = '004');\n"
    "DISCARD ALL;\nSELECT pg_sleep(0.3);\n",
}


def test_a_migration_releasing_the_lock_never_lets_a_migration_run_twice(pg_server, budget, workdir):
    rng = random.Random(SEED + 1)
    outcomes = []
    for trial in range(budget.hostile):
        variant = rng.choice(sorted(RELEASES))
        directory = counted_migrations(workdir / f"release{trial}", 8, {4: RELEASES[variant]})
        with pg_server.fresh_database(prefix="pgship_unlock") as url:
            runners = start_together(url, directory.path, workdir, ["schema_migrations", "schema_migrations"])
            codes = [runner.wait() for runner in runners]
            problems = duplicates(url)
            recorded = [
                r[0] for r in rows(url, "SELECT version::text FROM public.schema_migrations ORDER BY 1")
            ]
            if recorded != ["001", "002", "003"]:
                problems.append(f"recorded {recorded}: the hostile migration 004 or a later one got through")
            if sorted(codes) != [1, 1] or not all("released the migration lock" in r.stderr for r in runners):
                problems.append(f"exit codes {codes}: {[r.stderr[-300:] for r in runners]}")
        outcomes.append(
            Outcome(
                "a migration releases the migration lock",
                trial,
                not problems,
                variant,
                None,
                "; ".join(problems) or "stopped at 004, nothing ran twice",
            )
        )
    record(outcomes)
    assert_all_held(outcomes)


# -- a migration writes other versions' tracking rows ---------------------------------------------
FORGERIES = {
    "insert the next version": ("INSERT INTO schema_migrations (version, name) VALUES ('004', 'x');", False),
    "delete an earlier row": ("DELETE FROM schema_migrations WHERE version = '002';", False),
    "update an earlier checksum": (
        "UPDATE schema_migrations SET checksum = 'x' WHERE version = '002';",
        False,
    ),
    "insert the next version (no-transaction)": (
        "-- pgship:no-transaction\nINSERT INTO schema_migrations (version, name) VALUES ('004', 'x');",
        False,
    ),
    "record itself (legacy, allowed)": (
        "INSERT INTO schema_migrations (version, name) VALUES ('003', 'step');",
        True,
    ),
}


def test_a_migration_cannot_forge_the_tracking_table(pg_server, budget, workdir):
    rng = random.Random(SEED + 2)
    outcomes = []
    for trial in range(budget.hostile):
        variant = rng.choice(sorted(FORGERIES))
        sql, allowed = FORGERIES[variant]
        directory = counted_migrations(workdir / f"forge{trial}", 5, {3: sql + "\n"})
        with pg_server.fresh_database(prefix="pgship_forge") as url:
            first = spawn("-d", url, "-m", str(directory.path), "migrate", "--target", "2", workdir=workdir)
            problems = [] if first.wait() == 0 else [f"setup failed: {first.stderr}"]
            before = rows(url, "SELECT * FROM public.schema_migrations ORDER BY version")
            runner = spawn("-d", url, "-m", str(directory.path), "migrate", workdir=workdir)
            code = runner.wait()
            after = rows(url, "SELECT * FROM public.schema_migrations ORDER BY version")
            versions = [row[0] for row in after]
            status = spawn("-d", url, "-m", str(directory.path), "status", "--check", workdir=workdir).wait()
            if allowed:
                if code != 0 or versions != ["001", "002", "003", "004", "005"] or status != 0:
                    problems.append(
                        f"exit {code}, recorded {versions}, status --check {status}: {runner.stderr}"
                    )
            else:
                if code != 1 or "changed the tracking table" not in runner.stderr:
                    problems.append(f"exit {code}: {runner.stderr[-400:]}")
                if [r for r in after if r[0] != "003"] != [
                    r for r in before if r[0] != "003"
                ] and "no-transaction" not in variant:
                    problems.append(f"tracking rows changed: {before} -> {after}")
                if "003" in versions or ("004" in versions and "no-transaction" not in variant):
                    problems.append(f"recorded {versions}")
                if status == 0:
                    problems.append("status --check says in sync")
        outcomes.append(
            Outcome(
                "a migration writes other versions' tracking rows",
                trial,
                not problems,
                variant,
                None,
                "; ".join(problems) or ("accepted" if allowed else "refused, rolled back"),
            )
        )
    record(outcomes)
    assert_all_held(outcomes)


# -- session state a migration leaves behind ------------------------------------------------------
LEAKS = {
    "SET ROLE": "SET ROLE {role};",
    "SET SESSION AUTHORIZATION": "SET SESSION AUTHORIZATION {role};",
    "temporary table": "CREATE TEMP TABLE batch (id int);",
    "prepared statement": "PREPARE batch_rows AS SELECT 1;",
    "WITH HOLD cursor": "DECLARE kept CURSOR WITH HOLD FOR SELECT 1;",
    "LISTEN": "LISTEN pgship_channel;",
    "SET search_path": "CREATE SCHEMA IF NOT EXISTS scratch; SET search_path = scratch;",
    "SET statement_timeout": "SET statement_timeout = 1;",
    "read-only session (no-transaction)": "SET default_transaction_read_only = on;",
}
REPEAT = (
    "CREATE TEMP TABLE batch (id int);\nPREPARE batch_rows AS SELECT 1;\n"
    "DECLARE kept CURSOR WITH HOLD FOR SELECT 1;\n"
)


def test_session_state_never_leaks_into_the_next_migration(pg_server, budget, workdir):
    rng = random.Random(SEED + 3)
    outcomes = []
    for trial in range(budget.hostile):
        chosen = rng.sample(sorted(LEAKS), 3)
        role = f"pgship_leak_{secrets.token_hex(3)}"
        no_tx = any("no-transaction" in leak for leak in chosen)
        # a read-only session and a role switch go last: after them the migration itself is read-only or
        # runs as that role
        last = ("read-only", "ROLE", "AUTHORIZATION")
        ordered = sorted(chosen, key=lambda leak: [word in leak for word in last])
        leak_sql = "\n".join(LEAKS[leak].format(role=role) for leak in ordered)
        directory = MigrationsDir(workdir / f"leak{trial}")
        directory.write("001_leak.sql", ("-- pgship:no-transaction\n" if no_tx else "") + leak_sql + "\n")
        directory.write(
            "002_next.sql", REPEAT + "CREATE TABLE public.made_after (id int);\nSELECT pg_sleep(0.01);\n"
        )
        with pg_server.fresh_database(prefix="pgship_leak") as url:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE ROLE {role} NOLOGIN")
                conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            runner = spawn("-d", url, "-m", str(directory.path), "migrate", workdir=workdir)
            code = runner.wait()
            problems = [] if code == 0 else [f"exit {code}: {runner.stderr[-400:]}"]
            owner = rows(url, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_after'")
            if owner != [("postgres",)]:
                problems.append(f"002's table owned by {owner}")
            who = rows(url, "SELECT applied_by FROM public.schema_migrations")
            if len(who) != 2 or not all(w[0].startswith("postgres (") for w in who):
                problems.append(f"applied_by {who}")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")
        outcomes.append(
            Outcome(
                "session state left by a migration",
                trial,
                not problems,
                " + ".join(chosen),
                None,
                "; ".join(problems) or "the next migration ran from a clean session",
            )
        )
    record(outcomes)
    assert_all_held(outcomes)


# -- a migration moves the default search_path ----------------------------------------------------
SEARCH_PATHS = {
    "ALTER DATABASE ... SET search_path": "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = "
    "elsewhere', current_database()); END $$;",
    "ALTER ROLE ... SET search_path": "ALTER ROLE current_user SET search_path = elsewhere;",
    "search_path naming a schema not yet created": None,
}


def test_the_tracking_table_is_found_wherever_the_search_path_points(pg_server, budget, workdir):
    rng = random.Random(SEED + 4)
    outcomes = []
    for trial in range(budget.hostile):
        variant = rng.choice(sorted(SEARCH_PATHS))
        change = SEARCH_PATHS[variant]
        directory = MigrationsDir(workdir / f"path{trial}")
        directory.write("001_elsewhere.sql", "CREATE SCHEMA elsewhere;\n" + (change or "") + "\n")
        directory.write("002_more.sql", "CREATE TABLE public.more (id int);\n")
        with pg_server.fresh_database(prefix="pgship_path") as url:
            if change is None:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET search_path = elsewhere')
            try:
                first = spawn(
                    "-d", url, "-m", str(directory.path), "migrate", "--target", "1", workdir=workdir
                )
                codes = [first.wait()]
                second = spawn("-d", url, "-m", str(directory.path), "migrate", workdir=workdir)
                codes.append(second.wait())
                problems = [] if codes == [0, 0] else [f"exit codes {codes}: {first.stderr} {second.stderr}"]
                tables = rows(url, "SELECT schemaname FROM pg_tables WHERE tablename = 'schema_migrations'")
                if tables != [("public",)]:
                    problems.append(f"tracking tables in {tables}")
                elif [r[0] for r in rows(url, "SELECT version FROM public.schema_migrations ORDER BY 1")] != [
                    "001",
                    "002",
                ]:
                    problems.append("not exactly 001 and 002 recorded")
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("ALTER ROLE current_user RESET search_path")
        outcomes.append(
            Outcome(
                "a migration moves the default search_path",
                trial,
                not problems,
                variant,
                None,
                "; ".join(problems) or "found public.schema_migrations",
            )
        )
    record(outcomes)
    assert_all_held(outcomes)


# -- SIGTERM / SIGINT at a random instant ---------------------------------------------------------
def test_a_stop_signal_at_a_random_instant_is_reported_truthfully(pg_server, budget, workdir):
    rng = random.Random(SEED + 5)
    migrations = MigrationsDir(workdir / "signals")
    write_workload(migrations)
    outcomes = []
    for trial in range(budget.signals):
        where, problems = signal_trial(pg_server, migrations, rng, as_json=trial % 2 == 0)
        outcomes.append(
            Outcome(
                "SIGTERM/SIGINT at a random instant",
                trial,
                not problems,
                where,
                None,
                "\n".join(problems) or "report matched the database",
            )
        )
    record(outcomes)
    assert_all_held(outcomes)
