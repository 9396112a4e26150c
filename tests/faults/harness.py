"""The machinery every fault trial shares: a reference of correct states, runners as real processes,
watching a runner's backend, and the invariant check that ends each trial.

The invariant (issue 8): after any fault, the database equals "the first k
migrations applied, nothing of migration k+1", checked on the catalog and the
rows, not only on the tracking table; and a rerun completes to the end.
The one exception PostgreSQL imposes is a ``-- pgship:no-transaction``
migration: its statements commit one by one, so after a fault inside it the
database may also hold a *prefix* of its statements (never a torn statement),
which the rerun must complete.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgship.database import connect
from pgship.history import TrackingTable
from pgship.migrations import discover
from pgship.runner import Runner
from tests.faults.catalog import Snapshot, schema_diff, take_snapshot
from tests.faults.workload import GeneratedMigration
from tests.toolkit import Backend, pgship_backends

PGSHIP = [sys.executable, "-m", "pgship"]
HANG_LIMIT_S = 120.0  # a generous failure detector for "never hangs", never a timed assertion
# Random choices of a campaign (delays, aims, timeouts) replay with the same seed; timing still varies.
FAULT_SEED = int(os.environ.get("PGSHIP_FAULT_SEED") or random.randrange(1 << 30))


# -- trial outcomes ----------------------------------------------------------------
@dataclass
class Outcome:
    """One trial of one fault: did the invariant hold, and what was observed."""

    fault: str
    trial: int
    held: bool
    where: str = ""  # the class of fault point (inside a statement, between migrations...)
    applied_before_fault: int | None = None
    detail: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        """Record a violation found after the first check."""
        self.held = False
        self.detail += "\n" + why

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "trial": self.trial,
            "held": self.held,
            "where": self.where,
            "applied_before_fault": self.applied_before_fault,
            "detail": self.detail,
            "metrics": self.metrics,
        }


def assert_all_held(outcomes: list[Outcome]) -> None:
    """Fail with every violation at once (all trials run, so the campaign counts them all)."""
    violated = [o for o in outcomes if not o.held]
    assert not violated, "\n\n".join(
        f"trial {o.trial} ({o.where}, {o.applied_before_fault} applied before the fault):\n{o.detail}"
        for o in violated
    )


# -- the reference: correct states, computed by applying migrations on a clean database -------
class Reference:
    """Snapshots of a clean database after exactly k migrations, for every k a trial needs.

    ``eager`` computes all of them in one pass (worth it for a long campaign);
    otherwise each is computed on demand from a fresh database.
    """

    def __init__(self, server: Any, directory: Path, workload: list[GeneratedMigration], *, eager: bool):
        self.server = server
        self.directory = directory
        self.workload = workload
        self.discovery = discover(directory)
        assert [m.filename for m in self.discovery.migrations] == [m.filename for m in workload]
        self._states: dict[int, Snapshot] = {}
        self._prefixes: dict[int, list[dict[str, Any]]] = {}
        if eager:
            self._build(len(workload), every=True)

    @property
    def count(self) -> int:
        return len(self.workload)

    def state(self, k: int) -> Snapshot:
        """The database after the first ``k`` migrations, applied cleanly."""
        if k not in self._states:
            self._build(k, every=False)
        return self._states[k]

    @property
    def final(self) -> Snapshot:
        return self.state(self.count)

    def prefixes(self, k: int) -> list[dict[str, Any]]:
        """For a no-transaction migration k+1: the schema after each prefix of its statements."""
        if not self.workload[k].no_transaction:
            return []
        if k not in self._prefixes:
            self._build(k + 1, every=False)
        return self._prefixes[k]

    def _build(self, upto: int, *, every: bool) -> None:
        with self.server.fresh_database(prefix="pgship_ref") as url, connect(url) as conn:
            runner = Runner(conn, TrackingTable.parse("schema_migrations"))
            if every or upto == 0:
                self._states.setdefault(0, take_snapshot(url))
            for index, migration in enumerate(self.discovery.migrations[:upto]):
                generated = self.workload[index]
                last = index + 1 == upto
                if generated.no_transaction and (every or last):
                    # each prefix of its statements, run the way pgship runs them: one by one, autocommit
                    prefixes = [take_snapshot(url).schema]
                    for statement in generated.statements:
                        conn.execute(statement)
                        prefixes.append(take_snapshot(url).schema)
                    self._prefixes[index] = prefixes
                runner.migrate(
                    self.discovery, target=migration.version
                )  # reruns those statements: idempotent
                if every or last:
                    self._states[index + 1] = take_snapshot(url)


def check_interrupted(snapshot: Snapshot, reference: Reference) -> tuple[bool, str, int]:
    """The invariant for a database right after a fault. Returns (held, explanation, k)."""
    k = len(snapshot.tracking)
    if k > reference.count:
        return False, f"{k} tracking rows for {reference.count} migrations", k
    expected = reference.state(k)
    if snapshot.tracking != expected.tracking:
        return (
            False,
            f"tracking rows are not the first {k} migrations:\n"
            f"expected {expected.tracking[-3:]}\nactual   {snapshot.tracking[-3:]}",
            k,
        )
    if snapshot.schema == expected.schema:
        return True, f"exactly the first {k} migrations", k
    if k < reference.count and reference.workload[k].no_transaction:
        cleaned = snapshot.without_invalid_indexes()
        for done, prefix in enumerate(reference.prefixes(k)):
            if cleaned == prefix:
                leftovers = snapshot.invalid_indexes()
                note = f" and an INVALID index left by an interrupted build: {leftovers}" if leftovers else ""
                return (
                    True,
                    f"the first {k} migrations, plus {done} of the {len(reference.workload[k].statements)} "
                    f"statements of no-transaction migration {reference.workload[k].filename}{note}",
                    k,
                )
        return (
            False,
            f"not the first {k} migrations plus a prefix of no-transaction "
            f"{reference.workload[k].filename}:\n" + schema_diff(expected.schema, snapshot.schema),
            k,
        )
    return (
        False,
        f"tracking says {k} applied but the schema is not the first {k} migrations "
        f"(migration {k + 1} is {reference.workload[k].filename if k < reference.count else '-'}):\n"
        + schema_diff(expected.schema, snapshot.schema),
        k,
    )


def check_complete(snapshot: Snapshot, reference: Reference) -> tuple[bool, str]:
    """After the rerun: everything applied, exactly once, nothing invalid left."""
    final = reference.final
    if snapshot.tracking != final.tracking:
        return False, f"tracking after rerun has {len(snapshot.tracking)} rows, expected {reference.count}"
    if snapshot.invalid_indexes():
        return False, f"INVALID indexes after the rerun: {snapshot.invalid_indexes()}"
    if snapshot.schema != final.schema:
        return False, "schema after the rerun differs from a clean run:\n" + schema_diff(
            final.schema, snapshot.schema
        )
    return True, "rerun completed"


# -- runners as processes ----------------------------------------------------------
@dataclass
class RunnerProcess:
    """A ``pgship`` process whose output goes to files (no pipe can fill up and stall it)."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float = HANG_LIMIT_S) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"pgship did not finish within {timeout:.0f} s (hang detector)\n{self.stderr}"
            ) from None

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def applied_files(self) -> list[str]:
        """Migrations the process reported as applied (its progress lines)."""
        return re.findall(r"^  applied  (\S+)", self.stdout, flags=re.M)


def spawn(*args: str, workdir: Path, env: dict[str, str] | None = None, module: bool = True) -> RunnerProcess:
    """Start ``python -m pgship ARGS`` (or ``python ARGS`` with ``module=False``)."""
    fd_out, out_name = tempfile.mkstemp(prefix="pgship-out-", dir=workdir)
    fd_err, err_name = tempfile.mkstemp(prefix="pgship-err-", dir=workdir)
    process = subprocess.Popen(
        [*PGSHIP, *args] if module else [sys.executable, *args],
        stdin=subprocess.DEVNULL,
        stdout=fd_out,
        stderr=fd_err,
        env={**os.environ, **(env or {})},
    )
    os.close(fd_out)
    os.close(fd_err)
    return RunnerProcess(process, Path(out_name), Path(err_name))


def rerun(url: str, directory: Path, workdir: Path) -> RunnerProcess:
    """The operator's answer to any fault: run migrate again (waiting for the database and the lock)."""
    process = spawn("-d", url, "-m", str(directory), "migrate", "--wait", "60", workdir=workdir)
    process.wait()
    return process


def finish_with_rerun(
    outcome: Outcome, url: str, directory: Path, workdir: Path, reference: Reference
) -> Outcome:
    """The second half of every trial: the rerun exits 0 and leaves what a clean run leaves."""
    again = rerun(url, directory, workdir)
    if again.process.returncode != 0:
        outcome.fail(f"rerun exited {again.process.returncode}:\n{again.stderr[-2000:]}")
        return outcome
    complete, why = check_complete(take_snapshot(url), reference)
    if not complete:
        outcome.fail(why)
    return outcome


def stop_process(pid: int) -> bool:
    """SIGSTOP ``pid`` and wait until the kernel reports it stopped; False if it already exited."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return False
        if fields[0] in ("T", "t"):
            return True
        if fields[0] in ("Z", "X"):
            return False
        time.sleep(0.0005)
    return False


@contextmanager
def admin_connection(server: Any) -> Iterator[psycopg.Connection]:
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        yield conn


def database_name(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/")


# -- where a fault lands ---------------------------------------------------------------
INSIDE_STATEMENT = "inside a statement"
BETWEEN_STATEMENTS = "between statements"
BETWEEN_MIGRATIONS = "between migrations"
NO_TRANSACTION = "in a no-transaction migration"
COMMITTING = "while committing"
BOOKKEEPING = "runner bookkeeping (lock, tracking table)"
NOT_CONNECTED = "before connecting"
ANYWHERE = "anywhere (first instant drawn)"
# No aim at BETWEEN_STATEMENTS: a transactional migration is pipelined (sent whole, one round trip),
# so the server never waits idle inside one for the runner; a kill lands inside a statement instead.
# The class stays, so a regression that reopens that window shows up in the table.
AIMS = (INSIDE_STATEMENT, BETWEEN_MIGRATIONS, NO_TRANSACTION, ANYWHERE)


class StatementIndex:
    """Finds which workload migration a backend's current (or last) query belongs to."""

    _KEY = 900  # pg_stat_activity.query is cut at track_activity_query_size (1024 bytes)

    def __init__(self, workload: list[GeneratedMigration]) -> None:
        self._by_text = {
            statement[: self._KEY]: (index, migration.no_transaction)
            for index, migration in enumerate(workload)
            for statement in migration.statements
        }

    def locate(self, query: str) -> tuple[int, bool] | None:
        return self._by_text.get(query.strip()[: self._KEY])


def classify(backend: Backend | None, statements: StatementIndex) -> str:
    """Where a runner stands, from its backend's state while the runner process is stopped."""
    if backend is None:
        return NOT_CONNECTED
    located = statements.locate(backend.query)
    if located is not None and located[1]:
        return NO_TRANSACTION
    if backend.state == "active":
        if located is not None:
            return INSIDE_STATEMENT
        return COMMITTING if "COMMIT" in backend.query else BOOKKEEPING
    if backend.state == "idle in transaction":
        return BETWEEN_STATEMENTS
    # before each statement of a no-transaction file the runner sets its timeouts, after each it checks
    # that it still holds the migration lock
    if backend.query.startswith(("SET lock_timeout", "SET statement_timeout", "SELECT EXISTS (SELECT FROM")):
        return NO_TRANSACTION
    # idle after a migration: its pipeline ends with COMMIT, the session reset and reading back its row
    if "COMMIT" in backend.query or backend.query.startswith(
        ("RESET ALL", "SET client_connection_check", "UNLISTEN", "SELECT pg_catalog.pg_relation_filenode")
    ):
        return BETWEEN_MIGRATIONS
    return BOOKKEEPING


def freeze_runner(
    runner: RunnerProcess,
    admin: psycopg.Connection,
    dbname: str,
    aim: str,
    statements: StatementIndex,
    rng: Any,
    *,
    need_backend: bool = False,
) -> str | None:
    """Stop the runner where ``aim`` says (leaving it stopped) and say where it is; None if it ended first.

    Probing: SIGSTOP, read its backend in pg_stat_activity, SIGCONT unless it is where the trial aims,
    a few random milliseconds, again.
    """
    while runner.process.poll() is None:
        if not stop_process(runner.pid):
            return None
        backends = pgship_backends(admin, dbname)
        where = classify(backends[0] if backends else None, statements)
        if (aim == ANYWHERE and not (need_backend and not backends)) or where == aim:
            return where
        os.kill(runner.pid, signal.SIGCONT)
        time.sleep(rng.uniform(0.0005, 0.01))
    return None
