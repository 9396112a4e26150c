"""A long transaction holds a lock on a table a migration alters.

The migration's ``ALTER TABLE`` needs an ACCESS EXCLUSIVE lock; queued behind
the long transaction, it would in turn queue every production query on that
table. pgship's ``lock_timeout`` bounds that queue, retries with growing
timeouts, and finally gives up: exit 1, nothing of the migration applied.
Measured here: how long a production query on the table waited at worst
while the ALTER was queued (reported in docs/RELIABILITY.md; asserted is only
the invariant, never a time).
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.faults.harness import FAULT_SEED, Outcome, assert_all_held, rerun, spawn
from tests.faults.results import record

pytestmark = pytest.mark.faults

MIGRATIONS = {
    "001_accounts.sql": "CREATE TABLE accounts (id bigint PRIMARY KEY, balance integer NOT NULL DEFAULT 0);\n"
    "INSERT INTO accounts (id) SELECT generate_series(1, 1000);\n",
    "002_ledger.sql": "CREATE TABLE ledger (id bigint PRIMARY KEY, account_id bigint NOT NULL);\n",
}
# The blocked migration: the ALTER comes first, or after statements that must be rolled back with it.
BLOCKED = {
    "alter first": "ALTER TABLE accounts ADD COLUMN note text;\nCREATE TABLE audit (id int);\n",
    "alter after other work": "CREATE TABLE audit (id int);\nINSERT INTO ledger VALUES (1, 1);\n"
    "ALTER TABLE accounts ADD COLUMN note text;\n",
}
AFTER = "CREATE TABLE after_blocked (id int);\n"


class ProductionTraffic(threading.Thread):
    """A production session querying the table non-stop; records how long each query waited."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute("SELECT count(*) FROM accounts WHERE balance >= 0").fetchone()
                self.latencies.append(time.perf_counter() - started)
                time.sleep(0.005)


def _state(url: str) -> tuple[list[str], bool, bool, bool]:
    with psycopg.connect(url, autocommit=True) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        note = conn.execute(
            "SELECT count(*) > 0 FROM information_schema.columns WHERE table_name = 'accounts' "
            "AND column_name = 'note'"
        ).fetchone()[0]
        audit = conn.execute("SELECT to_regclass('audit') IS NOT NULL").fetchone()[0]
        ledger_rows = conn.execute("SELECT count(*) > 0 FROM ledger").fetchone()[0]
    return versions, note, audit, ledger_rows


def test_a_migration_blocked_by_a_long_transaction_gives_up_and_production_waits_a_bounded_time(
    pg_server, budget, tmp_path: Path
):
    rng = random.Random(FAULT_SEED)
    outcomes = []
    for trial in range(budget.lock_contention):
        shape = list(BLOCKED)[trial % len(BLOCKED)]
        lock_timeout = rng.choice([0.1, 0.2, 0.3])
        retries = rng.choice([1, 2, 3] if budget.full else [1])  # each retry pauses 1 s
        directory = tmp_path / f"trial-{trial}"
        directory.mkdir()
        for name, text in MIGRATIONS.items():
            (directory / name).write_text(text)
        (directory / "003_blocked.sql").write_text(BLOCKED[shape])
        (directory / "004_after.sql").write_text(AFTER)
        with pg_server.fresh_database(prefix="pgship_lock") as url:
            assert rerun_to(url, directory, tmp_path, "2") == 0
            traffic = ProductionTraffic(url)
            with psycopg.connect(url) as holder:  # the long transaction: a report reading accounts
                holder.execute("SELECT count(*) FROM accounts").fetchone()
                traffic.start()
                runner = spawn(
                    "-d", url, "-m", str(directory), "migrate",
                    "--lock-timeout", str(lock_timeout), "--lock-retries", str(retries),
                    workdir=tmp_path,
                )  # fmt: skip
                code = runner.wait()
                traffic.stop.set()
                traffic.join(10)
                holder.rollback()
            versions, note, audit, ledger_rows = _state(url)
            problems = []
            if code != 1:
                problems.append(f"exit {code}, expected 1")
            attempts = retries + 1
            if f"after {attempts} attempts" not in runner.stderr or "55P03" not in runner.stderr:
                problems.append("the error does not name the lock timeout and the attempts")
            if versions != ["001", "002"]:
                problems.append(f"applied {versions}, expected 001 and 002 only")
            if note or audit or ledger_rows:
                problems.append(
                    f"half-applied: note column {note}, audit table {audit}, ledger rows {ledger_rows}"
                )
            again = rerun(url, directory, tmp_path)
            if again.process.returncode != 0 or _state(url)[0] != ["001", "002", "003", "004"]:
                problems.append(f"rerun after the transaction ended: exit {again.process.returncode}")
            final_timeout = lock_timeout * 2**retries
            worst = max(traffic.latencies, default=0.0)
            outcomes.append(
                Outcome(
                    "long transaction holding a lock",
                    trial,
                    not problems,
                    f"{shape}; lock_timeout {lock_timeout:g} s x {attempts} attempts",
                    2,
                    "; ".join(problems) or "gave up, nothing of 003 applied, rerun completed",
                    {
                        "worst_production_wait_s": round(worst, 3),
                        "production_stalled_s": round(sum(t for t in traffic.latencies if t > 0.05), 3),
                        "final_lock_timeout_s": round(final_timeout, 3),
                        "production_queries": len(traffic.latencies),
                    },
                )
            )
    record(outcomes)
    assert_all_held(outcomes)


def rerun_to(url: str, directory: Path, workdir: Path, target: str) -> int:
    process = spawn("-d", url, "-m", str(directory), "migrate", "--target", target, workdir=workdir)
    return process.wait()
