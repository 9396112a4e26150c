"""Runners racing each other: eight deploys at once, and an index built CONCURRENTLY while another waits."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from pgship.history import TrackingTable
from tests.faults.harness import (
    HANG_LIMIT_S,
    Outcome,
    admin_connection,
    assert_all_held,
    check_complete,
    database_name,
    spawn,
    take_snapshot,
)
from tests.faults.results import record
from tests.toolkit import pgship_backends, start_together, wait_until

pytestmark = pytest.mark.faults

RUNNERS = 8


def _start_together(url: str, directory: Path, workdir: Path, *extra: str):
    """Start the runners as close to the same instant as processes allow (a shared start file)."""
    return start_together(
        [["-d", url, "-m", str(directory), "migrate", *extra]] * RUNNERS,
        workdir,
        lambda args: spawn(*args, workdir=workdir, module=False),
    )


@pytest.mark.parametrize("lock_wait", ["120", "0.3"], ids=["patient", "short-lock-wait"])
def test_eight_runners_at_once_apply_every_migration_exactly_once(
    pg_server, reference, workload_dir, budget, workdir, lock_wait
):
    outcomes = []
    for trial in range(budget.concurrent):
        with pg_server.fresh_database(prefix="pgship_race") as url:
            runners = _start_together(url, workload_dir, workdir, "--lock-wait", lock_wait)
            codes = [runner.wait() for runner in runners]
            applied = Counter(name for runner in runners for name in runner.applied_files())
            allowed = {0} if lock_wait == "120" else {0, 4}
            problems = []
            if not set(codes) <= allowed or 0 not in codes:
                problems.append(f"exit codes {sorted(codes)}, allowed {sorted(allowed)} with at least one 0")
            twice = [name for name, count in applied.items() if count > 1]
            if twice:
                problems.append(f"applied by more than one runner: {twice[:5]}")
            if len(applied) != reference.count:
                problems.append(f"{len(applied)} migrations reported applied, expected {reference.count}")
            for runner, code in zip(runners, codes, strict=True):
                if code == 4 and "held the lock" not in runner.stderr:
                    problems.append("a runner exited 4 without saying another run held the lock")
            complete, why = check_complete(take_snapshot(url), reference)
            if not complete:
                problems.append(why)
            outcomes.append(
                Outcome(
                    f"{RUNNERS} runners at once (--lock-wait {lock_wait})",
                    trial,
                    not problems,
                    "exit codes " + " ".join(str(c) for c in sorted(codes)),
                    None,
                    "; ".join(problems) or "every migration applied exactly once",
                    {"exit_codes": sorted(codes)},
                )
            )
    record(outcomes)
    assert_all_held(outcomes)


# -- CREATE INDEX CONCURRENTLY while a second runner waits for the migration lock ----------------
INDEX_MIGRATIONS = {
    "001_events.sql": "CREATE TABLE events (id bigint PRIMARY KEY, kind text NOT NULL);\n"
    "INSERT INTO events SELECT g, 'kind ' || (g % 50) FROM generate_series(1, 20000) g;\n"
    "CREATE TABLE pause_gate (opened boolean);\n",
    # paused until the test opens the gate (a row in pause_gate): progress, not a guess at how long the
    # second runner takes to start on a loaded machine. Each loop's query sees rows committed since.
    "002_pause.sql": "DO $$ BEGIN\n"
    "  WHILE NOT EXISTS (SELECT FROM pause_gate) LOOP PERFORM pg_sleep(0.02); END LOOP;\n"
    "END $$;\nCREATE TABLE pause_marker (id int);\n",
    "003_index_events_kind.sql": "-- pgship:no-transaction\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS events_kind_idx ON events (kind);\n",
}


def open_the_pause(url: str) -> None:
    """Let the runner paused in 002_pause.sql go on."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO pause_gate VALUES (true)")


def _index_migrations(workdir: Path) -> Path:
    directory = workdir / "index-migrations"
    directory.mkdir(exist_ok=True)
    for name, text in INDEX_MIGRATIONS.items():
        (directory / name).write_text(text)
    return directory


def test_create_index_concurrently_while_another_runner_waits_for_the_lock_never_hangs(
    pg_server, budget, workdir
):
    directory = _index_migrations(workdir)
    outcomes = []
    for trial in range(budget.concurrent_index):
        with pg_server.fresh_database(prefix="pgship_cic") as url, admin_connection(pg_server) as admin:
            dbname = database_name(url)
            first = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
            wait_until(
                lambda: any("pg_sleep" in b.query for b in pgship_backends(admin, dbname)),  # noqa: B023
                "the first runner in 002_pause.sql",
            )
            second = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
            wait_until(
                lambda: "waiting for another migration run" in second.stderr,  # noqa: B023
                "the second runner waiting",
                timeout=HANG_LIMIT_S,
            )
            open_the_pause(url)
            started = time.monotonic()
            codes = (first.wait(HANG_LIMIT_S), second.wait(HANG_LIMIT_S))  # the hang detector
            elapsed = time.monotonic() - started
            valid = admin_valid_index(url, "events_kind_idx")
            problems = []
            if codes != (0, 0):
                problems.append(f"exit codes {codes}:\n{first.stderr[-800:]}\n{second.stderr[-800:]}")
            if not valid:
                problems.append("events_kind_idx is missing or INVALID")
            if second.applied_files():
                problems.append(f"the waiting runner applied {second.applied_files()} again")
            outcomes.append(
                Outcome(
                    "CREATE INDEX CONCURRENTLY while a runner waits",
                    trial,
                    not problems,
                    "second runner polling for the lock",
                    None,
                    "; ".join(problems) or "both runners finished, the index is valid",
                    {"seconds_after_second_runner_started": round(elapsed, 2)},
                )
            )
    record(outcomes)
    assert_all_held(outcomes)


def test_control_a_waiter_inside_a_transaction_would_break_the_concurrent_index(pg_server, workdir):
    """Why the lock is polled: a runner waiting with pg_advisory_xact_lock inside a transaction holds a
    snapshot the index build must wait for, while it waits for the builder: a deadlock PostgreSQL resolves
    by failing one of them. Shows the test above would catch a runner that waited that way."""
    directory = _index_migrations(workdir)
    key = TrackingTable.parse("public.schema_migrations").lock_key
    with pg_server.fresh_database(prefix="pgship_ctl") as url, admin_connection(pg_server) as admin:
        dbname = database_name(url)
        first = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
        wait_until(
            lambda: any("pg_sleep" in b.query for b in pgship_backends(admin, dbname)),
            "the first runner in 002_pause.sql",
        )

        def naive_waiting() -> list[tuple]:
            return admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = 'naive-runner' "
                "AND wait_event_type = 'Lock'",
                (dbname,),
            ).fetchall()

        def open_when_the_naive_runner_waits() -> None:
            try:
                wait_until(naive_waiting, "the naive runner waiting for the lock", timeout=HANG_LIMIT_S)
            finally:
                open_the_pause(url)

        opener = threading.Thread(target=open_when_the_naive_runner_waits)
        with psycopg.connect(url, application_name="naive-runner") as naive:
            opener.start()
            naive.execute("SELECT 1")  # a transaction with a snapshot, as a naive runner's would be
            try:
                naive.execute("SET lock_timeout = '20s'")
                naive.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
                naive_error = ""
            except psycopg.Error as exc:
                naive_error = str(exc)
            naive.rollback()
        opener.join()
        code = first.wait()
    broken = code != 0 or "deadlock" in naive_error
    record(
        [
            Outcome(
                "control: a waiter inside a transaction",
                0,
                broken,
                "naive waiter with pg_advisory_xact_lock",
                None,
                f"runner exit {code}; naive waiter: "
                + (naive_error.splitlines()[0] if naive_error else "got the lock"),
            )
        ]
    )
    assert broken, "expected the naive waiter to deadlock with the index build (or make it fail)"


def admin_valid_index(url: str, name: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
        ).fetchone()
    return bool(row and row[0])
