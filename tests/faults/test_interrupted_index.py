"""A fault in the middle of ``CREATE INDEX CONCURRENTLY``, caught every time.

Random kill points rarely land inside an index build (it takes milliseconds on
test data), so here the build is held mid-way on purpose: a session keeps an
old snapshot open, and ``CREATE INDEX CONCURRENTLY`` waits for it with its
index already in the catalog, INVALID. Then the fault: the runner SIGKILLed,
its backend terminated, its statement cancelled, or the server crash-restarted.
PostgreSQL cannot roll the build back; the index stays INVALID. The invariant
for a no-transaction migration: earlier migrations applied, this one not
recorded, and the rerun leaves a *valid* index and records the migration.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
import pytest

from tests.faults.harness import (
    Outcome,
    assert_all_held,
    database_name,
    rerun,
    spawn,
)
from tests.faults.results import record
from tests.toolkit import pgship_backends, wait_for_backends_gone, wait_until

pytestmark = pytest.mark.faults

MIGRATIONS = {
    "001_orders.sql": "CREATE TABLE orders (id bigint PRIMARY KEY, state text NOT NULL);\n"
    "INSERT INTO orders SELECT g, 'state ' || (g % 7) FROM generate_series(1, 5000) g;\n",
    "002_index_orders.sql": "-- pgship:no-transaction\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_state_idx ON orders (state);\n"
    "SELECT pg_sleep(0.5);\n"
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_id_state_idx ON orders (id, state);\n",
}
INDEXES = ("orders_state_idx", "orders_id_state_idx")
FAULTS = ("sigkill", "pg_terminate_backend", "pg_cancel_backend", "server crash-restart")


def _indexes(url: str) -> dict[str, bool]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'orders'::regclass AND NOT i.indisprimary"
        ).fetchall()
    return dict(rows)


def _versions(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]


def test_a_fault_inside_create_index_concurrently_is_repaired_by_the_rerun(
    pg_server, durable_server, budget, tmp_path: Path
):
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, text in MIGRATIONS.items():
        (directory / name).write_text(text)
    trials = max(len(FAULTS), budget.terminate)
    outcomes = [
        _trial(trial, FAULTS[trial % len(FAULTS)], pg_server, durable_server, directory, tmp_path)
        for trial in range(trials)
    ]
    record(outcomes)
    assert_all_held(outcomes)


def _trial(trial, fault, pg_server, durable_server, directory, workdir) -> Outcome:
    server = durable_server if fault == "server crash-restart" else pg_server
    which = INDEXES[trial // len(FAULTS) % 2]  # interrupt the first build, then the second
    with server.fresh_database(prefix="pgship_idx") as url:
        admin = psycopg.connect(server.admin_url, autocommit=True)
        dbname = database_name(url)
        assert spawn("-d", url, "-m", str(directory), "migrate", "--target", "1", workdir=workdir).wait() == 0
        holder = psycopg.connect(url)  # an old snapshot the index build must wait for
        if which == INDEXES[1]:
            runner = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
            wait_until(
                lambda: any("pg_sleep" in b.query for b in pgship_backends(admin, dbname)), "the pause"
            )
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT 1")
        else:
            holder.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            holder.execute("SELECT 1")
            runner = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
        backend = wait_until(
            lambda: next(
                (
                    b
                    for b in pgship_backends(admin, dbname)
                    if which in b.query and b.wait_event == "virtualxid"
                ),
                None,
            ),
            f"the build of {which} waiting for the old snapshot",
        )
        if fault == "sigkill":
            os.kill(runner.pid, signal.SIGKILL)
        elif fault == "pg_terminate_backend":
            admin.execute("SELECT pg_terminate_backend(%s)", (backend.pid,))
        elif fault == "pg_cancel_backend":
            admin.execute("SELECT pg_cancel_backend(%s)", (backend.pid,))
        else:
            server.restart(immediate=True)
        code = runner.wait()
        if fault == "server crash-restart":
            holder.close()
        else:
            holder.rollback()
            holder.close()
            wait_for_backends_gone(admin, dbname)
        after_fault = _indexes(url)
        versions = _versions(url)
        problems = []
        if versions != ["001"]:
            problems.append(f"after the fault the tracking table holds {versions}, expected only 001")
        if fault != "sigkill" and code != 1:
            problems.append(f"runner exit {code}, expected 1:\n{runner.stderr[-800:]}")
        again = rerun(url, directory, workdir)
        final = _indexes(url)
        if again.process.returncode != 0:
            problems.append(f"rerun exit {again.process.returncode}:\n{again.stderr[-800:]}")
        if final != {INDEXES[0]: True, INDEXES[1]: True}:
            problems.append(f"after the rerun the indexes are {final} (name: valid)")
        if _versions(url) != ["001", "002"]:
            problems.append(f"after the rerun the tracking table holds {_versions(url)}")
        admin.close()
        return Outcome(
            "fault inside CREATE INDEX CONCURRENTLY",
            trial,
            not problems,
            f"{fault} during the build of {which}",
            1,
            "; ".join(problems)
            or f"after the fault: {after_fault or 'no index'}; after the rerun: both valid",
            {"after_fault": after_fault, "exit": code},
        )
