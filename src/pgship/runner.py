"""Applying a plan: one advisory lock for the run, one transaction per migration.

The order of a run is what makes it safe:

1. read the tracking table and plan, without writing (refusals and bad files stop here);
2. take the session-level advisory lock, polling ``pg_try_advisory_lock`` so a
   waiting runner never sits inside a transaction (``CREATE INDEX
   CONCURRENTLY`` would otherwise wait for it, and it for the index);
3. create or upgrade the tracking table, read it again and plan again (another
   runner may have finished while we waited);
4. run each pending migration and its tracking row in one transaction, with a
   ``lock_timeout`` that is retried with growing values instead of queueing
   production traffic behind an ``ALTER TABLE``.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgship import adopt
from pgship import history as tracking
from pgship.errors import (
    ConnectionLost,
    FailureDetails,
    Interrupted,
    LockNotAcquired,
    MigrationFailed,
    PgshipError,
    Refused,
    UsageError,
)
from pgship.history import History, TrackingTable
from pgship.migrations import Discovery, MigrationFile, Version, require_parsed
from pgship.planner import Plan, State, make_plan

if TYPE_CHECKING:
    import psycopg

    from pgship.sqlscript import Script, Statement


@dataclass
class RunOptions:
    """How patient and how careful a run is. Defaults suit a production deploy."""

    lock_wait_s: float = 120.0  # how long to wait for another runner's advisory lock
    lock_timeout_s: float = 3.0  # first lock_timeout for a migration's statements
    lock_retries: int = 3  # further attempts after a lock timeout, each with double the timeout
    retry_pause_s: float = 1.0  # pause before a retry, so queued production queries drain
    statement_timeout_s: float | None = None
    applied_by: str | None = None  # recorded with each migration; default "<os user>@<host>"


@dataclass(frozen=True)
class Event:
    """Something a runner reports while it works (rendered by the CLI as progress)."""

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def _ignore(_: Event) -> None:
    return None


@dataclass(slots=True)
class AppliedRecord:
    """A migration this run applied."""

    version: str
    name: str
    file: str
    execution_ms: int
    attempts: int = 1


@dataclass
class MigrateResult:
    """What a ``migrate`` run did."""

    applied: list[AppliedRecord] = field(default_factory=list)
    already_applied: int = 0
    adopted: list[str] = field(default_factory=list)
    table_changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration_ms: int = 0


@dataclass
class RepairChange:
    """A checksum accepted (or a row forgotten) by ``repair``."""

    version: str
    file: str | None
    action: str  # checksum_updated | forgotten
    old_checksum: str | None
    new_checksum: str | None


class Runner:
    """Runs pgship's database-side operations on one connection."""

    def __init__(
        self,
        conn: psycopg.Connection,
        table: TrackingTable,
        *,
        options: RunOptions | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.conn = conn
        self.table = table
        self._record: tracking.RecordTemplate | None = None  # composed on the first migration
        self._lock_key = table.lock_key  # from the configured name: every runner computes the same key
        self.options = options or RunOptions()
        self.emit = on_event or _ignore

    # -- reading -------------------------------------------------------------------
    def read_history(self) -> History:
        with self._lost_connection("reading the tracking table"):
            return tracking.read(self.conn, self.table)

    def plan(self, discovery: Discovery, **kwargs: Any) -> Plan:
        """Compare files and database without changing anything."""
        return make_plan(discovery, self.read_history(), **kwargs)

    @contextmanager
    def _lost_connection(self, doing: str) -> Iterator[None]:
        """Report a connection the server closed (terminated, crashed, restarted) as such, not as a bug."""
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            if not (self.conn.closed or self.conn.broken):
                raise
            reason = (str(exc).strip().splitlines() or ["connection closed"])[0]
            raise ConnectionLost(
                f"the connection to the database was lost while {doing} ({reason})",
                hint="Each migration commits together with its tracking row, so the database holds exactly "
                "the migrations recorded as applied (`pgship status` lists them). Run the command again "
                "once the database is back (`pgship wait`).",
            ) from None

    # -- migrate -------------------------------------------------------------------
    def migrate(
        self,
        discovery: Discovery,
        *,
        target: Version | None = None,
        allow_out_of_order: bool = False,
        allow_missing: bool = False,
    ) -> MigrateResult:
        """Apply every pending migration (up to ``target``), or explain why not."""
        result = MigrateResult()
        try:
            with self._lost_connection("migrating"):
                return self._migrate(discovery, result, target, allow_out_of_order, allow_missing)
        except PgshipError as error:
            error.partial_result = result  # what was applied before the failure, for the report
            raise

    def _migrate(
        self,
        discovery: Discovery,
        result: MigrateResult,
        target: Version | None,
        allow_out_of_order: bool,
        allow_missing: bool,
    ) -> MigrateResult:
        started = time.perf_counter()
        if target is not None and target not in discovery.by_version():
            raise UsageError(
                f"--target {target}: there is no migration file with that version",
                hint="Pick a version listed by `pgship status`.",
            )
        plan_options = {
            "target": target,
            "allow_out_of_order": allow_out_of_order,
            "allow_missing": allow_missing,
        }
        history = self.read_history()
        plan = make_plan(discovery, history, **plan_options)
        raise_refusals(plan)
        scripts = require_parsed(plan.to_apply)
        result.warnings = list(plan.warnings)
        if not plan.to_apply and not plan.to_adopt and history.exists and not history.is_legacy:
            result.already_applied = plan.applied_count
            result.duration_ms = _ms_since(started)
            return result

        with self.advisory_lock():
            result.table_changes = tracking.ensure(self.conn, self.table, history.resolved(discovery))
            self.table = tracking.qualify(self.conn, self.table)
            for change in result.table_changes:
                self.emit(Event("table", change))
            plan = make_plan(discovery, self.read_history(), **plan_options)
            raise_refusals(plan)
            unparsed = [m for m in plan.to_apply if m.version not in scripts]
            scripts.update(require_parsed(unparsed))
            for migration in plan.to_adopt:
                tracking.set_checksum(self.conn, self.table, migration.version, migration.checksum)
                result.adopted.append(str(migration.version))
                self.emit(
                    Event(
                        "adopted",
                        f"{migration.filename}: applied by an earlier runner; recorded its checksum",
                        {"version": str(migration.version)},
                    )
                )
            result.already_applied = plan.applied_count
            applied_by = self._applied_by()
            total = len(plan.to_apply)
            if total:
                self.emit(
                    Event(
                        "plan",
                        f"{total} pending migration{'s' if total != 1 else ''} to apply "
                        f"({plan.applied_count} already applied)",
                        {"pending": total, "applied": plan.applied_count},
                    )
                )
            for index, migration in enumerate(plan.to_apply, start=1):
                self.emit(
                    Event(
                        "start",
                        f"applying {migration.filename}",
                        {
                            "version": str(migration.version),
                            "file": migration.filename,
                            "index": index,
                            "total": total,
                        },
                    )
                )
                record = self._apply(migration, scripts[migration.version], applied_by)
                result.applied.append(record)
                self.emit(
                    Event(
                        "applied",
                        f"applied {migration.filename} ({record.execution_ms} ms)",
                        {
                            "version": record.version,
                            "file": record.file,
                            "execution_ms": record.execution_ms,
                            "index": index,
                            "total": total,
                        },
                    )
                )
        result.duration_ms = _ms_since(started)
        return result

    # -- baseline and repair -------------------------------------------------------
    def baseline(self, discovery: Discovery, version: Version) -> list[str]:
        """Record every migration up to ``version`` as applied, without running it."""
        files = discovery.by_version()
        if version not in files:
            raise UsageError(
                f"baseline {version}: there is no migration file with that version",
                hint="Baseline at the version whose schema the database already has.",
            )
        with self._lost_connection("recording the baseline"), self.advisory_lock():
            tracking.ensure(self.conn, self.table, self.read_history().resolved(discovery, baseline=True))
            applied = self.read_history().by_version()
            applied_by = f"baseline by {self._applied_by()}"
            recorded = []
            for migration in discovery.migrations:
                if migration.version > version or migration.version in applied:
                    continue
                self._record_applied(migration, None, applied_by)
                recorded.append(str(migration.version))
                self.emit(Event("baselined", f"recorded {migration.filename} as applied (not run)"))
        return recorded

    def repair(self, discovery: Discovery, *, forget_missing: bool = False) -> list[RepairChange]:
        """Accept the current checksum of edited migrations; optionally forget rows of deleted files."""
        changes: list[RepairChange] = []
        with self._lost_connection("repairing checksums"), self.advisory_lock():
            history = self.read_history()
            adopt.require_taken_over(history.foreign, "repair")
            plan = make_plan(discovery, history, allow_missing=True)
            for entry in plan.with_state(State.DRIFTED, State.NO_CHECKSUM):
                assert entry.file is not None and entry.applied is not None
                tracking.set_checksum(self.conn, self.table, entry.version, entry.file.checksum)
                changes.append(
                    RepairChange(
                        str(entry.version),
                        entry.file.filename,
                        "checksum_updated",
                        entry.applied.checksum,
                        entry.file.checksum,
                    )
                )
            if forget_missing:
                from psycopg import sql

                for entry in plan.with_state(State.MISSING):
                    self.conn.execute(
                        sql.SQL("DELETE FROM {} WHERE version::text IN (%s, %s)").format(
                            self.table.identifier()
                        ),
                        (entry.version.text, ".".join(str(p) for p in entry.version.parts)),
                    )
                    changes.append(
                        RepairChange(
                            str(entry.version),
                            None,
                            "forgotten",
                            entry.applied and entry.applied.checksum,
                            None,
                        )
                    )
        return changes

    # -- locking -------------------------------------------------------------------
    @contextmanager
    def advisory_lock(self) -> Iterator[None]:
        """Hold the table's session-level advisory lock; poll for it up to ``lock_wait_s``."""
        key = self._lock_key
        started = time.monotonic()
        delay = 0.05
        announced = False
        while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            waited = time.monotonic() - started
            holder = self._lock_holder(key)
            if waited >= self.options.lock_wait_s:
                raise LockNotAcquired(
                    f"another migration run held the lock on {self.table} for the whole wait "
                    f"({self.options.lock_wait_s:.0f} s){': ' + holder if holder else ''}",
                    hint="Let the other deploy finish and run again, or wait longer with --lock-wait.",
                )
            if not announced:
                self.emit(
                    Event(
                        "lock_wait",
                        f"waiting for another migration run to finish{': ' + holder if holder else ''}",
                    )
                )
                announced = True
            time.sleep(min(delay, max(self.options.lock_wait_s - waited, 0.01)))
            delay = min(delay * 1.5, 1.0)
        self.emit(Event("lock", "acquired the migration lock"))
        try:
            yield
        finally:
            if not self.conn.closed and not self.conn.broken:
                with suppress(Exception):
                    self.conn.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def _lock_holder(self, key: int) -> str:
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        row = self.conn.execute(
            "SELECT l.pid, a.application_name, now() - a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
            (unsigned >> 32, unsigned & 0xFFFFFFFF),
        ).fetchone()
        if row is None:
            return ""
        pid, application, age = row
        seconds = int(age.total_seconds()) if age is not None else 0
        return (
            f"held by backend pid {pid} ({application or 'unknown application'}, connected {seconds} s ago)"
        )

    # -- applying one migration ----------------------------------------------------
    def _session_defaults(self) -> str:
        """What every migration starts from, as if it had a session of its own.

        ``RESET ALL`` undoes a ``SET search_path`` or ``SET ROLE`` an earlier migration left behind
        (the old runner's ``psql -f`` per file gave each file a fresh session). If this process dies
        mid-migration, ``client_connection_check_interval`` lets the server notice within a second
        and roll back, instead of finishing a long statement (and holding its locks) for nobody.
        """
        if self.conn.info.server_version >= 140000:
            return "RESET ALL; SET client_connection_check_interval = 1000"
        return "RESET ALL"

    def _applied_by(self) -> str:
        self.conn.execute(self._session_defaults())
        row = self.conn.execute("SELECT current_user").fetchone()
        who = os.environ.get("PGSHIP_APPLIED_BY") or self.options.applied_by
        if not who:
            try:
                who = f"{getpass.getuser()}@{socket.gethostname()}"
            except Exception:
                who = socket.gethostname()
        return f"{row[0]} ({who})" if row else who

    def _apply(self, migration: MigrationFile, script: Script, applied_by: str) -> AppliedRecord:
        if script.no_transaction:
            return self._apply_without_transaction(migration, script, applied_by)
        return self._apply_in_transaction(migration, script, applied_by)

    def _apply_in_transaction(
        self, migration: MigrationFile, script: Script, applied_by: str
    ) -> AppliedRecord:
        """BEGIN, the statements, the tracking row and COMMIT, pipelined: one round trip.

        Each statement is still its own protocol message, so the server says which one
        failed: its cursor is the first without a result. The server times the migration
        (``transaction_timestamp()`` is the BEGIN), because the tracking row is sent before
        the statements have run.
        """
        import psycopg
        from psycopg import errors as pgerrors

        if self._record is None:
            self._record = tracking.RecordTemplate(self.table, self.conn)
        record = self._record.render(
            version=migration.version.text,
            name=migration.name,
            checksum=migration.checksum,
            applied_by=applied_by,
        )
        lock_timeout = self.options.lock_timeout_s
        attempts = self.options.lock_retries + 1
        for attempt in range(1, attempts + 1):
            cursors: list[tuple[Statement, Any]] = []
            record_cursor: Any = None
            started = time.perf_counter()
            try:
                with self.conn.pipeline():
                    for setting in self._begin(lock_timeout):
                        self.conn.execute(setting)
                    for statement in script.statements:
                        cursors.append((statement, self.conn.execute(statement.text)))
                    record_cursor = self.conn.execute(record)
                    self.conn.execute("COMMIT")
                    for setting in self._session_defaults().split("; "):
                        self.conn.execute(setting)
                elapsed = _ms_since(started)
                return AppliedRecord(
                    str(migration.version), migration.name, migration.filename, elapsed, attempt
                )
            except pgerrors.LockNotAvailable as exc:
                current = _failed_statement(cursors)
                self._rollback()
                if attempt == attempts:
                    raise self._lock_failure(migration, current, exc, attempt, lock_timeout) from None
                self.emit(
                    Event(
                        "retry",
                        f"{migration.filename}: lock wait exceeded {_seconds(lock_timeout)} at line "
                        f"{current.line if current else '?'}; retrying with {_seconds(lock_timeout * 2)} "
                        f"(attempt {attempt + 1} of {attempts})",
                        {"version": str(migration.version), "attempt": attempt + 1},
                    )
                )
                time.sleep(self.options.retry_pause_s)
                lock_timeout *= 2
            except psycopg.Error as exc:
                current = _failed_statement(cursors)
                # the statements and the row all answered: the failure came with COMMIT (a deferred
                # constraint, or the connection lost while committing: then the outcome is unknown)
                committing = current is None and record_cursor is not None and _has_result(record_cursor)
                self._rollback()
                raise self._failure(migration, current, exc, partial=False, at_commit=committing) from None
            except KeyboardInterrupt:
                self._rollback()
                raise Interrupted(
                    f"stopped while applying {migration.filename}; "
                    "it was rolled back, nothing of it is applied",
                    hint="Migrations before it stay applied. Run `pgship migrate` again to continue.",
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _apply_without_transaction(
        self, migration: MigrationFile, script: Script, applied_by: str
    ) -> AppliedRecord:
        import psycopg
        from psycopg import errors as pgerrors

        started = time.perf_counter()
        executed = 0
        try:
            for statement in script.statements:
                concurrent = statement.concurrent  # from the parse tree, not the text
                lock_timeout = self.options.lock_timeout_s
                for attempt in range(1, self.options.lock_retries + 2):
                    # CONCURRENTLY takes weak locks and must not be retried half-done: no lock_timeout.
                    self.conn.execute(self._session_timeouts(None if concurrent else lock_timeout))
                    try:
                        if concurrent and statement.node == "IndexStmt" and attempt == 1:
                            self._drop_interrupted_index(migration, statement)
                        self.conn.execute(statement.text)
                        break
                    except pgerrors.LockNotAvailable as exc:
                        if concurrent or attempt == self.options.lock_retries + 1:
                            raise self._lock_failure(
                                migration, statement, exc, attempt, lock_timeout, partial=executed > 0
                            ) from None
                        self.emit(
                            Event(
                                "retry",
                                f"{migration.filename}: lock wait exceeded at line "
                                f"{statement.line}; retrying with {_seconds(lock_timeout * 2)}",
                            )
                        )
                        time.sleep(self.options.retry_pause_s)
                        lock_timeout *= 2
                    except psycopg.Error as exc:
                        raise self._failure(migration, statement, exc, partial=True) from None
                executed += 1
            elapsed = _ms_since(started)
            self._record_applied(migration, elapsed, applied_by)
            return AppliedRecord(str(migration.version), migration.name, migration.filename, elapsed)
        except KeyboardInterrupt:
            raise Interrupted(
                f"stopped while applying {migration.filename}, which runs without a transaction: "
                f"{executed} of {len(script.statements)} statements had completed",
                hint="Run `pgship migrate` again: it reruns the file (keep its statements safe to rerun, "
                "IF NOT EXISTS) and rebuilds an index a CREATE INDEX CONCURRENTLY of it left INVALID.",
            ) from None
        finally:
            if not self.conn.closed and not self.conn.broken:
                with suppress(psycopg.Error):
                    self.conn.execute(self._session_defaults())

    def _drop_interrupted_index(self, migration: MigrationFile, statement: Statement) -> None:
        """Drop the INVALID index an interrupted run of this ``CREATE INDEX CONCURRENTLY`` left behind.

        A build that is killed, cancelled or fails keeps its catalog entry, marked INVALID: never used
        by queries, yet still updated by every write. Rerunning the statement cannot fix it: ``IF NOT
        EXISTS`` skips it (and the migration would be recorded as applied with a useless index), without
        it the name is taken. So an INVALID index of exactly the name this statement builds, on its
        table, that no session is building right now, is dropped first; we hold the migration lock.
        """
        from psycopg import sql

        from pgship.sqlscript import concurrent_index_target

        target = concurrent_index_target(statement.text)
        if target is None:
            return
        row = self.conn.execute(
            "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.indrelid = to_regclass(%s) AND c.relname = %s AND NOT i.indisvalid AND NOT EXISTS "
            "(SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)",
            (target.table_regclass_text(), target.index),
        ).fetchone()
        if row is None:
            return
        self.conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(*row)))
        self.emit(
            Event(
                "dropped_invalid_index",
                f"{migration.filename}: dropped the INVALID index {row[0]}.{row[1]} an interrupted build "
                "left behind; building it again",
                {"version": str(migration.version), "index": f"{row[0]}.{row[1]}"},
            )
        )

    def _record_applied(self, migration: MigrationFile, execution_ms: int | None, applied_by: str) -> None:
        """Write (or complete) the migration's tracking row, on its own (autocommit)."""
        self.conn.execute(
            tracking.record_statement(
                self.table,
                version=migration.version.text,
                name=migration.name,
                checksum=migration.checksum,
                execution_ms=execution_ms,
                applied_by=applied_by,
            )
        )

    def _begin(self, lock_timeout_s: float) -> list[str]:
        parts = ["BEGIN", f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'"]
        if self.options.statement_timeout_s:
            parts.append(f"SET LOCAL statement_timeout = '{int(self.options.statement_timeout_s * 1000)}ms'")
        return parts

    def _session_timeouts(self, lock_timeout_s: float | None) -> str:
        lock = f"'{int(lock_timeout_s * 1000)}ms'" if lock_timeout_s else "0"
        statement = (
            f"'{int(self.options.statement_timeout_s * 1000)}ms'" if self.options.statement_timeout_s else "0"
        )
        return f"SET lock_timeout = {lock}; SET statement_timeout = {statement}"

    def _rollback(self) -> None:
        if self.conn.closed or self.conn.broken:
            return
        with suppress(Exception):
            self.conn.execute("ROLLBACK")

    # -- failure reports -----------------------------------------------------------
    def _failure(
        self,
        migration: MigrationFile,
        statement: Statement | None,
        exc: Exception,
        *,
        partial: bool,
        at_commit: bool = False,
    ) -> MigrationFailed:
        diag = getattr(exc, "diag", None)
        sqlstate = getattr(exc, "sqlstate", None)
        primary = (diag.message_primary if diag else None) or str(exc).strip().splitlines()[0]
        line = statement.line if statement else None
        position = None
        if diag is not None and diag.statement_position and statement is not None:
            position = int(diag.statement_position)
            line = statement.line + statement.text.count("\n", 0, position - 1)
        lost = self.conn.closed or self.conn.broken
        details = FailureDetails(
            version=str(migration.version),
            file=migration.filename,
            line=line,
            statement=statement.text if statement else None,
            sqlstate=sqlstate,
            server_message=primary,
            detail=diag.message_detail if diag else None,
            hint=diag.message_hint if diag else None,
            position=position,
            partial=partial,
        )
        where = f"{migration.filename}:{line}" if line else migration.filename
        if lost:
            message = f"{where}: the connection to the database was lost ({primary})"
            if partial:
                hint = (
                    "This migration runs without a transaction: statements before the failing one stay "
                    "applied. Run `pgship migrate` again once the database is back: it reruns the file, and "
                    "drops and rebuilds an index a CREATE INDEX CONCURRENTLY left INVALID."
                )
            elif at_commit:
                hint = (
                    "The connection dropped while committing: the migration may or may not be applied. "
                    "Run `pgship status` to see, then `pgship migrate` to continue."
                )
            else:
                hint = (
                    "PostgreSQL rolls back an unfinished transaction, so nothing of this migration was "
                    "applied; migrations before it stay applied. Run `pgship migrate` again once the "
                    "database is back (`pgship wait`)."
                )
            return MigrationFailed(details, message=message, hint=hint)
        state = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
        if at_commit:
            message = f"{migration.filename}: failed at COMMIT: {primary}{state}"
        else:
            message = f"{where}: {primary}{state}"
        if partial:
            invalid = self._invalid_indexes()
            hint = (
                "This migration runs without a transaction (-- pgship:no-transaction): statements before "
                "the failing one stay applied and it is not recorded. "
                + (
                    f"INVALID indexes left behind: {', '.join(invalid)} - the rerun drops and rebuilds one "
                    "this file builds by name; drop any other with DROP INDEX CONCURRENTLY. "
                    if invalid
                    else ""
                )
                + "Make the statements safe to rerun (IF NOT EXISTS), then run `pgship migrate` again."
            )
        else:
            hint = (
                "The migration was rolled back: nothing of it is applied, migrations before it stay "
                "applied, none after it ran. Fix the file and run `pgship migrate` again."
            )
            if sqlstate in _ALREADY_EXISTS:
                hint += (
                    f" If {migration.filename} was already applied by hand (psql in an emergency), record "
                    f"it without running it again: pgship baseline {migration.version}"
                )
        return MigrationFailed(details, message=message, hint=hint)

    def _lock_failure(
        self,
        migration: MigrationFile,
        statement: Statement | None,
        exc: Exception,
        attempts: int,
        last_timeout_s: float,
        *,
        partial: bool = False,
    ) -> MigrationFailed:
        failure = self._failure(migration, statement, exc, partial=partial)
        failure.details.extra["lock_attempts"] = attempts
        failure.message = (
            f"{failure.message} - gave up waiting for a lock after {attempts} attempt"
            f"{'s' if attempts > 1 else ''} (last lock_timeout {_seconds(last_timeout_s)})"
        )
        failure.hint = (
            "A long transaction holds a lock this migration needs. Find it with "
            "`SELECT pid, state, xact_start, query FROM pg_stat_activity WHERE xact_start < now() - "
            "interval '1 minute'`, let it finish (or end it), then run `pgship migrate` again. "
            + ("Nothing of this migration was applied." if not partial else failure.hint)
        )
        return failure

    def _invalid_indexes(self) -> list[str]:
        if self.conn.closed or self.conn.broken:
            return []
        try:
            rows = self.conn.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
            ).fetchall()
        except Exception:
            return []
        return [row[0] for row in rows]


#: SQLSTATEs of "already exists" errors: the typical result of rerunning a hand-applied migration.
_ALREADY_EXISTS = frozenset({"42P07", "42701", "42710", "42P06", "42723", "42P04", "42712", "42P16"})


def _has_result(cursor: Any) -> bool:
    return cursor.pgresult is not None


def _failed_statement(cursors: list[tuple[Statement, Any]]) -> Statement | None:
    """The statement a pipelined migration failed at: the first whose cursor got no result."""
    for statement, cursor in cursors:
        if not _has_result(cursor):
            return statement
    return None


def raise_refusals(plan: Plan) -> None:
    """Raise :class:`Refused` (exit 2) for everything in ``plan`` that needs a decision first."""
    if not plan.refusals:
        return
    if len(plan.refusals) == 1:
        refusal = plan.refusals[0]
        raise Refused(refusal.message, hint=refusal.hint, versions=refusal.versions)
    raise Refused(
        "; ".join(r.message for r in plan.refusals),
        hint=" ".join(r.hint for r in plan.refusals),
        versions=[v for r in plan.refusals for v in r.versions],
    )


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _seconds(value: float) -> str:
    return f"{value:g} s"
