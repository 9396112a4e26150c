"""Faults through a real PgBouncer in transaction pooling mode: where pgship locks with a lease.

Three faults, each followed by the operator's rerun (through the pooler too):

* **SIGKILL** of the runner at a random instant: the database holds exactly the first k
  migrations, and the rerun waits out the dead runner's lease, then completes;
* **racing runners**: several runners through the pooler at the same moment apply every
  migration exactly once between them;
* **PgBouncer's admin console** mid-run: ``RECONNECT`` (server connections replaced as they
  come free) and ``KILL`` (every client and server connection of the database dropped at once).

The workload is the campaign's, without its ``-- pgship:no-transaction`` files (those need the
direct URL through a transaction pooler, and pgship refuses them without one: tested in
tests/integration/test_pooler_runner.py).
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pgship.testing.pgbouncer import PgBouncer
from tests.faults.catalog import Snapshot, take_snapshot
from tests.faults.harness import (
    FAULT_SEED,
    Outcome,
    Reference,
    admin_connection,
    assert_all_held,
    check_complete,
    check_interrupted,
    database_name,
    spawn,
)
from tests.faults.results import record
from tests.faults.workload import GeneratedMigration, write_workload
from tests.toolkit import wait_until

pytestmark = pytest.mark.faults

LEASE_TTL = "2"
RACERS = 4
LEASE_TABLE = "schema_migrations_lease"


@pytest.fixture(scope="module")
def bouncer(pg_server) -> Iterator[PgBouncer]:
    with PgBouncer(pg_server.admin_url, pool_mode="transaction", pool_size=12) as running:
        yield running


@pytest.fixture(scope="module")
def pooled_workload(workload: list[GeneratedMigration]) -> list[GeneratedMigration]:
    return [migration for migration in workload if not migration.no_transaction]


@pytest.fixture(scope="module")
def pooled_dir(tmp_path_factory: pytest.TempPathFactory, pooled_workload: list[GeneratedMigration]) -> Path:
    return write_workload(tmp_path_factory.mktemp("pooled-workload") / "migrations", pooled_workload)


@pytest.fixture(scope="module")
def pooled_reference(pg_server, pooled_dir: Path, pooled_workload: list[GeneratedMigration]) -> Reference:
    return Reference(pg_server, pooled_dir, pooled_workload, eager=False)


def snapshot(url: str) -> Snapshot:
    """The database, without the lease table: it is pgship's bookkeeping, like the tracking table."""
    taken = take_snapshot(url)
    schema = {
        key: (
            {name: digest for name, digest in value.items() if LEASE_TABLE not in name}
            if isinstance(value, dict)
            else [item for item in value if LEASE_TABLE not in item]
        )
        for key, value in taken.schema.items()
    }
    return replace(taken, schema=schema)


def migrate(url: str, directory: Path, workdir: Path, *extra: str):
    return spawn(
        "-d", url, "-m", str(directory), "migrate", "--lease-ttl", LEASE_TTL, *extra, workdir=workdir
    )


def in_flight(admin, dbname: str) -> list[tuple]:
    """pgship's server sessions that are inside a transaction (idle pooled ones do not count)."""
    return admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'pgship' "
        "AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
        (dbname,),
    ).fetchall()


def rerun_through(
    bouncer: PgBouncer, url: str, directory: Path, workdir: Path, reference: Reference, outcome
):
    """The operator's rerun, through the pooler: it must wait out any dead lease and complete."""
    again = migrate(
        bouncer.url_for(database_name(url)), directory, workdir, "--lock-wait", "60", "--wait", "30"
    )
    code = again.wait()
    if code != 0:
        outcome.fail(f"rerun through the pooler exited {code}:\n{again.stderr[-2000:]}")
        return outcome
    complete, why = check_complete(snapshot(url), reference)
    if not complete:
        outcome.fail(why)
    return outcome


def test_sigkill_through_a_transaction_pooler_leaves_the_first_k_and_the_rerun_waits_out_the_lease(
    pg_server, bouncer, pooled_reference, pooled_dir, budget, workdir
):
    rng = random.Random(FAULT_SEED)
    outcomes = []
    for trial in range(max(2, budget.kill // 2)):
        with pg_server.fresh_database(prefix="pgship_pkill") as url, admin_connection(pg_server) as admin:
            dbname = database_name(url)
            runner = migrate(bouncer.url_for(dbname), pooled_dir, workdir)
            wait_for_the_lease(url, runner)
            time.sleep(rng.uniform(0.0, 0.5))
            finished = runner.process.poll() is not None
            runner.process.send_signal(signal.SIGKILL)
            runner.wait()
            wait_until(lambda: not in_flight(admin, dbname), "the killed runner's transaction to end")  # noqa: B023
            held, detail, k = check_interrupted(snapshot(url), pooled_reference)
            lease = lease_rows(url)
            where = "after the run finished" if finished else f"mid-run, lease rows left: {lease}"
            outcome = Outcome(
                "SIGKILL through a transaction pooler", trial, held, where, k, detail, {"seed": FAULT_SEED}
            )
            outcomes.append(rerun_through(bouncer, url, pooled_dir, workdir, pooled_reference, outcome))
    record(outcomes)
    assert_all_held(outcomes)


def wait_for_the_lease(url: str, runner) -> None:
    """Until the runner holds its lease (it is about to migrate), or has ended."""
    while runner.process.poll() is None and not lease_rows(url):
        time.sleep(0.005)


def lease_rows(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (LEASE_TABLE,)).fetchone()[0]:
            return 0
        return int(conn.execute(f"SELECT count(*) FROM {LEASE_TABLE}").fetchone()[0])


def test_runners_racing_through_a_transaction_pooler_apply_every_migration_once(
    pg_server, bouncer, pooled_reference, pooled_dir, budget, workdir
):
    outcomes = []
    for trial in range(max(3, budget.concurrent)):
        with pg_server.fresh_database(prefix="pgship_prace") as url:
            pooled = bouncer.url_for(database_name(url))
            runners = [migrate(pooled, pooled_dir, workdir, "--lock-wait", "120") for _ in range(RACERS)]
            codes = [runner.wait() for runner in runners]
            applied = Counter(name for runner in runners for name in runner.applied_files())
            problems = []
            if set(codes) != {0}:
                problems.append(f"exit codes {codes}:\n" + "\n".join(r.stderr[-800:] for r in runners))
            twice = [name for name, count in applied.items() if count > 1]
            if twice:
                problems.append(f"applied by more than one runner: {twice[:5]}")
            if len(applied) != pooled_reference.count:
                problems.append(f"{len(applied)} reported applied, expected {pooled_reference.count}")
            complete, why = check_complete(snapshot(url), pooled_reference)
            if not complete:
                problems.append(why)
            outcomes.append(
                Outcome(
                    f"{RACERS} runners at once through a transaction pooler",
                    trial,
                    not problems,
                    "all started together",
                    None,
                    "\n".join(problems) or f"each of {len(applied)} migrations applied once",
                )
            )
    record(outcomes)
    assert_all_held(outcomes)


@pytest.mark.parametrize("command", ["RECONNECT", "KILL"])
def test_pgbouncer_admin_commands_mid_run_never_apply_twice_or_leave_unrecorded(
    pg_server, bouncer, pooled_reference, pooled_dir, budget, workdir, command
):
    rng = random.Random(FAULT_SEED + (1 if command == "KILL" else 0))
    outcomes = []
    for trial in range(max(2, budget.terminate)):
        with pg_server.fresh_database(prefix="pgship_padm") as url, admin_connection(pg_server) as admin:
            dbname = database_name(url)
            runner = migrate(bouncer.url_for(dbname), pooled_dir, workdir, "--lock-wait", "60")
            wait_for_the_lease(url, runner)
            time.sleep(rng.uniform(0.0, 0.5))
            finished = runner.process.poll() is not None
            bouncer.admin(f"{command} {dbname}")
            code = runner.wait()
            if command == "KILL":  # a killed database stays paused for new clients until RESUME
                bouncer.admin(f"RESUME {dbname}")
            wait_until(lambda: not in_flight(admin, dbname), "the runner's transaction to end")  # noqa: B023
            held, detail, k = check_interrupted(snapshot(url), pooled_reference)
            if held and code == 0 and k != pooled_reference.count:
                held, detail = False, f"the runner exited 0 with {k} of {pooled_reference.count} applied"
            if held and command == "RECONNECT" and code != 0:
                held, detail = (
                    False,
                    f"RECONNECT is graceful, yet the runner exited {code}:\n{runner.stderr[-1500:]}",
                )
            where = "after the run finished" if finished else f"mid-run, runner exit {code}"
            outcome = Outcome(
                f"PgBouncer {command} mid-run", trial, held, where, k, detail, {"seed": FAULT_SEED}
            )
            outcomes.append(rerun_through(bouncer, url, pooled_dir, workdir, pooled_reference, outcome))
    record(outcomes)
    assert_all_held(outcomes)
