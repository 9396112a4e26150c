"""The database side goes away mid-run: the runner's backend is terminated, or the server crash-restarts.

The runner cannot finish; what it must do is stop with a clear error (exit 1,
"connection ... lost", never an unhandled exception), leave the first k
migrations applied and nothing of migration k+1, and a rerun must complete.
After a crash-restart, every migration the runner reported as applied must
still be there (a commit PostgreSQL acknowledged survives ``-m immediate``).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.faults.harness import (
    AIMS,
    BETWEEN_MIGRATIONS,
    BOOKKEEPING,
    FAULT_SEED,
    Outcome,
    StatementIndex,
    admin_connection,
    assert_all_held,
    check_interrupted,
    database_name,
    finish_with_rerun,
    freeze_runner,
    spawn,
    take_snapshot,
)
from tests.faults.results import record
from tests.toolkit import pgship_backends, wait_for_backends_gone

pytestmark = pytest.mark.faults

TERMINATE_AIMS = (*AIMS, BOOKKEEPING)


def runner_error_problems(code: int, stderr: str, allowed: tuple[int, ...]) -> list[str]:
    """What is wrong with how a runner reported a lost database (empty when it reported it well)."""
    problems = []
    if code not in allowed:
        problems.append(f"exit code {code}, expected one of {allowed}")
    if "This is a bug in pgship" in stderr or "Traceback" in stderr:
        problems.append("an unhandled exception instead of an explanation")
    if code == 1 and "connection" not in stderr.lower():
        problems.append("the error does not say the connection was lost")
    return problems


def test_pg_terminate_backend_mid_run_stops_cleanly_and_a_rerun_completes(
    pg_server, reference, workload, workload_dir, budget, workdir
):
    rng = random.Random(FAULT_SEED)
    statements = StatementIndex(workload)
    outcomes = []
    for trial in range(budget.terminate):
        aim = TERMINATE_AIMS[trial % len(TERMINATE_AIMS)]
        outcomes.append(
            _terminate_trial(trial, aim, rng, pg_server, reference, statements, workload_dir, workdir)
        )
    record(outcomes)
    assert_all_held(outcomes)


def _terminate_trial(trial, aim, rng, server, reference, statements, directory, workdir) -> Outcome:
    max_delay = 0.0 if aim == BOOKKEEPING else 1.5
    for _attempt in range(8):
        with server.fresh_database(prefix="pgship_term") as url, admin_connection(server) as admin:
            dbname = database_name(url)
            runner = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
            time.sleep(rng.uniform(0.0, max_delay))
            where = freeze_runner(runner, admin, dbname, aim, statements, rng, need_backend=True)
            if where is None:
                runner.wait()
                max_delay /= 2
                continue
            (backend,) = pgship_backends(admin, dbname)
            admin.execute("SELECT pg_terminate_backend(%s)", (backend.pid,))
            os.kill(runner.pid, signal.SIGCONT)
            code = runner.wait()
            wait_for_backends_gone(admin, dbname)
            held, detail, k = check_interrupted(take_snapshot(url), reference)
            outcome = Outcome(
                "pg_terminate_backend", trial, held, where, k, detail, {"seed": FAULT_SEED, "exit": code}
            )
            problems = runner_error_problems(code, runner.stderr, (1,))
            if where == BETWEEN_MIGRATIONS and "while committing" in runner.stderr:
                problems.append("says the connection dropped while committing, but no commit was in flight")
            if problems:
                outcome.fail("runner: " + "; ".join(problems) + "\n" + runner.stderr[-1500:])
            return finish_with_rerun(outcome, url, directory, workdir, reference)
    return Outcome("pg_terminate_backend", trial, False, aim, None, f"never caught the runner {aim}")


def test_server_crash_restart_mid_run_loses_no_reported_migration_and_a_rerun_completes(
    durable_server, reference, workload_dir, budget, workdir
):
    rng = random.Random(FAULT_SEED + 1)
    outcomes = [
        _restart_trial(trial, rng, durable_server, reference, workload_dir, workdir)
        for trial in range(budget.restart)
    ]
    record(outcomes)
    assert_all_held(outcomes)


def _restart_trial(trial, rng, server, reference, directory, workdir) -> Outcome:
    max_delay = 2.0
    for _attempt in range(8):
        with server.fresh_database(prefix="pgship_crash") as url:
            runner = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
            time.sleep(rng.uniform(0.1, max_delay))
            if runner.process.poll() is not None:
                max_delay /= 2  # finished before the crash: draw again, sooner
                continue
            server.restart(immediate=True)  # pg_ctl restart -m immediate: no checkpoint, crash recovery
            code = runner.wait()
            reported = runner.applied_files()
            if code == 0 and len(reported) == reference.count:
                max_delay /= 2  # it finished between the check above and the crash: draw again
                continue
            snapshot = take_snapshot(url)
            held, detail, k = check_interrupted(snapshot, reference)
            outcome = Outcome(
                "server crash-restart",
                trial,
                held,
                f"{len(reported)} migrations reported applied",
                k,
                detail,
                {"seed": FAULT_SEED + 1, "exit": code},
            )
            recorded = {f"{row[0]}_{row[1]}.sql" for row in snapshot.tracking}
            lost = [name for name in reported if name not in recorded]
            if lost:
                outcome.fail(f"reported applied, gone after the crash: {lost}")
            problems = runner_error_problems(code, runner.stderr, (1, 3))
            if problems:
                outcome.fail("runner: " + "; ".join(problems) + "\n" + runner.stderr[-1500:])
            return finish_with_rerun(outcome, url, directory, workdir, reference)
    return Outcome("server crash-restart", trial, False, "", None, "the run always finished before the crash")
