"""SIGKILL of the runner at random points of a 200-migration run.

How a kill point is chosen: after a random delay the runner is frozen
(SIGSTOP) and its backend inspected in pg_stat_activity: executing one of the
workload's statements ("inside a statement"), idle inside the migration's
transaction ("between statements"), idle after a commit ("between
migrations"), or in a ``-- pgship:no-transaction`` file. Trials take turns
aiming at each kind; when the frozen runner is not where the trial aims it
is resumed and probed again a few milliseconds later. Then SIGKILL: no
handler runs, the socket just closes, like a deploy host losing power.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.faults.harness import (
    AIMS,
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
from tests.toolkit import wait_for_backends_gone

pytestmark = pytest.mark.faults


def test_sigkill_anywhere_leaves_exactly_the_first_k_migrations_and_a_rerun_completes(
    pg_server, reference, workload, workload_dir, budget, workdir
):
    rng = random.Random(FAULT_SEED)
    statements = StatementIndex(workload)
    outcomes = []
    for trial in range(budget.kill):
        aim = AIMS[trial % len(AIMS)]
        outcomes.append(_kill_trial(trial, aim, rng, pg_server, reference, statements, workload_dir, workdir))
    record(outcomes)
    assert_all_held(outcomes)


def _kill_trial(trial, aim, rng, server, reference, statements, directory, workdir) -> Outcome:
    max_delay = 1.5
    for _attempt in range(8):  # the run may finish before the runner is caught where the trial aims
        with server.fresh_database(prefix="pgship_kill") as url, admin_connection(server) as admin:
            dbname = database_name(url)
            runner = spawn("-d", url, "-m", str(directory), "migrate", workdir=workdir)
            time.sleep(rng.uniform(0.0, max_delay))
            where = freeze_runner(runner, admin, dbname, aim, statements, rng)
            if where is None:
                runner.wait()
                max_delay /= 2
                continue
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait()
            wait_for_backends_gone(admin, dbname)
            held, detail, k = check_interrupted(take_snapshot(url), reference)
            outcome = Outcome("sigkill", trial, held, where, k, detail, {"seed": FAULT_SEED, "aim": aim})
            return finish_with_rerun(outcome, url, directory, workdir, reference)
    return Outcome("sigkill", trial, False, aim, None, f"never caught the runner {aim} in 8 runs")
