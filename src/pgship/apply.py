"""How one migration is applied: the file to read first to learn what pgship sends, and in which order.

A transactional migration is one pipelined round trip (:meth:`Applier.apply`):

    BEGIN; <lock_timeout and the counters for the guard, one SELECT>
    <each statement of the file, as its own protocol message>
    <the runner's statement_timeout>; SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL ROLE NONE
    <the tracking row (pgship.history)>; <the guard (pgship.guard)>; COMMIT
    <the clean-session reset (pgship.session)>; <read back the new row's hash and the table's file>

On a direct connection the runner's own statements are prepared once per run (:mod:`pgship.prepared`).

A lock timeout rolls it back and retries it with a doubled timeout. A no-transaction file runs
statement by statement, the lock checked after each, and is recorded at the end. Failures are put
into words by :mod:`pgship.failures`, with the database look-ups they need done here. (Over 400
lines because both ways of applying a file, and their retries, belong in the one place a reader looks.)
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgship import failures, guard, pipeline, session
from pgship import history as tracking
from pgship.created_objects import objects_created
from pgship.database import one_row
from pgship.errors import MigrationFailed
from pgship.events import Event, EventKind, EventSink
from pgship.interrupts import signalled
from pgship.pipeline import Prepared
from pgship.prepared import DROPPED, OwnStatements
from pgship.run_model import AppliedRecord, RunOptions, ms_since

if TYPE_CHECKING:
    import psycopg

    from pgship.history import KnownRows, TrackingTable
    from pgship.lease import Lease
    from pgship.migrations import MigrationFile
    from pgship.sqlscript import Script, Statement


@dataclass(frozen=True, slots=True)
class Batch:
    """One migration's round trip and where in it the file's statements start and the checks are."""

    statements: list[str | Prepared]
    first: int  # the index of the file's first statement
    guard_at: int
    lease_at: int | None  # the lease check, through a transaction pooler
    commit_at: int


def lease_lost_sqlstate() -> str:
    from pgship.lease import LEASE_LOST_SQLSTATE  # imported only through a pooler (secrets, threading)

    return LEASE_LOST_SQLSTATE


class Applier:
    """Applies migrations one at a time on the run's connection, under the run's lock (or lease).

    It keeps what it learns between migrations: the tracking rows' hashes (for the guard), the
    tracking row's statement template, and the statements of a no-transaction file that completed.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        table: TrackingTable,
        options: RunOptions,
        *,
        emit: EventSink,
        lease: Lease | None = None,
    ) -> None:
        self.conn = conn
        self.table = table  # resolved: schema-qualified
        self.options = options
        self.emit = emit
        self.lease = lease
        self.executed = 0  # statements of the current no-transaction file that completed
        self._rows: KnownRows | None = None  # the tracking rows as read (or written) under the lock
        self._record: tracking.RecordTemplate | None = None  # composed on the first migration
        self._messages: list[dict[str, str]] | None = None  # collecting the migration's notices
        self._server_version = conn.info.server_version
        self._encoding = conn.info.encoding
        self._lock_held: str | None = None  # composed once per run
        self._constants: tuple[list[str], list[str]] | None = None
        # the runner's own statements, prepared once (pgship.prepared); None: not yet, or dropped
        self._own: OwnStatements | None = None
        self._prepare = lease is None  # never through a transaction pooler; off if preparing fails
        conn.add_notice_handler(self._on_notice)

    def _on_notice(self, diag: Any) -> None:
        if self._messages is not None:
            severity = diag.severity_nonlocalized or diag.severity or "NOTICE"
            self._messages.append({"severity": severity, "message": diag.message_primary or ""})

    def forget_rows(self) -> None:
        """The tracking table was written outside a guarded transaction: read it again before the next."""
        self._rows = None

    def session_defaults(self) -> list[str]:
        """The session-level reset between migrations (none through a transaction pooler)."""
        return [] if self.lease is not None else session.session_defaults(self._server_version)

    def reset_session(self) -> None:
        defaults = self.session_defaults()
        if defaults:
            self._own = None  # DEALLOCATE ALL is part of it: prepare afresh before the next migration
            self.conn.execute("; ".join(defaults))

    def apply(self, migration: MigrationFile, script: Script, applied_by: str) -> AppliedRecord:
        """Apply one migration and its tracking row, or raise :class:`MigrationFailed`."""
        self._messages = []
        try:
            if script.no_transaction:
                record = self._apply_without_transaction(migration, script, applied_by)
            else:
                record = self._apply_in_transaction(migration, script, applied_by)
            record.messages = self._messages
            return record
        finally:
            self._messages = None

    # -- the guard's knowledge ---------------------------------------------------------
    def _tracking_rows(self) -> KnownRows:
        """Every tracking row's hash as this run last saw (or wrote) it: read once, then kept up to date."""
        if self._rows is None:
            self._rows = tracking.read_known_rows(self.conn, self.table)
        return self._rows

    def _lock_held_sql(self) -> str:
        if self._lock_held is None:
            self._lock_held = guard.lock_held_sql(None if self.lease is not None else self.table.lock_key)
        return self._lock_held

    def _run_constants(self) -> tuple[list[str], list[str]]:
        """The statements that are the same for every migration of the run: composed once.

        Before the tracking row: the runner's own identity and timeout; after COMMIT: the
        clean-session reset.
        """
        if self._constants is None:
            pooled = self.lease is not None
            tail = [
                *(session.pooled_cleanup() if pooled else ()),
                # at session level on a direct connection: the reset and read-back after COMMIT run
                # under it too, not under a statement_timeout the migration SET
                session.own_statement_timeout(self.options.statement_timeout_s, local=pooled),
                "SET LOCAL SESSION AUTHORIZATION DEFAULT",
            ]
            self._constants = (tail, [] if pooled else session.reset_after_commit(self._server_version))
        return self._constants

    def _own_statements(self, rows: KnownRows) -> OwnStatements | None:
        """The runner's statements prepared for this run and table (None: send them as texts)."""
        if not self._prepare:
            return None
        if self._own is None or self._own.oid != rows.oid:
            own = OwnStatements(
                self.table,
                self.conn,
                oid=rows.oid,
                lock_held=self._lock_held_sql(),
                statement_timeout_s=self.options.statement_timeout_s,
                encoding=self._encoding,
                reset=session.reset_between_migrations(self._server_version),
            )
            if pipeline.prepare(self.conn, own.texts, self._encoding).error is not None:
                self._prepare = False  # whatever the reason, the texts still work
                return None
            self._own = own
        return self._own

    # -- in a transaction --------------------------------------------------------------
    def _apply_in_transaction(
        self, migration: MigrationFile, script: Script, applied_by: str
    ) -> AppliedRecord:
        """BEGIN, the statements, the tracking row, the guard and COMMIT, pipelined: one round trip.

        Each of the file's statements is its own protocol message (:mod:`pgship.pipeline`), so the
        server says which one failed (the index of the error's result) and ``pg_stat_activity``
        shows the one running. The runner's own statements are few and cheap: the settings in one
        ``SELECT``, then the role and timeout, the tracking row, the guard, and after COMMIT the
        clean-session reset (:func:`pgship.session.reset_between_migrations`) and the read-back.
        All but the role and timeout are prepared once per run (:mod:`pgship.prepared`); as texts
        (through a pooler, or after a migration dropped them) the reset is two statements
        (:func:`pgship.session.reset_after_commit`). The server times the migration
        (``transaction_timestamp()`` is the BEGIN), because the tracking row is sent before the
        statements have run. The row is written as the runner's own identity, whatever role the
        migration switched to; the guard rolls the migration back if it released the lock or
        touched other versions' rows. After COMMIT the same round trip resets the session and
        reads back the new row, so the next guard knows what to expect.
        """
        from psycopg import errors as pgerrors

        own = tracking.version_spellings(migration.version.text)
        rows = self._tracking_rows()
        prepared = self._own_statements(rows)
        lock_timeout = self.options.lock_timeout_s
        attempts = self.options.lock_retries + 1
        attempt = 1
        while True:
            batch = self._batch(migration, script, applied_by, own, rows, prepared, lock_timeout)
            statements, first, guard_at = batch.statements, batch.first, batch.guard_at
            if self._messages is not None:
                self._messages.clear()  # a retried attempt reports only its own messages
            started = time.perf_counter()
            outcome = pipeline.run(self.conn, statements, self._encoding)
            elapsed = ms_since(started)
            exc = outcome.error
            if exc is None:
                return self._applied(migration, outcome, len(statements) - 1, own, rows, elapsed, attempt)
            # the file's statement that failed (or was running when the connection was lost), if any
            completed = outcome.completed
            position = completed - first
            current = script.statements[position] if 0 <= position < len(script.statements) else None
            self._rollback()
            last_of_file = first + len(script.statements) - 1
            if prepared is not None and exc.sqlstate == DROPPED and (outcome.failed_at or 0) > last_of_file:
                # the migration dropped the runner's prepared statements (DEALLOCATE ALL): it was
                # rolled back; apply it again with the texts, and prepare afresh for the next one
                self._own = prepared = None
                continue
            if isinstance(exc, pgerrors.LockNotAvailable):
                if attempt == attempts:
                    raise failures.lock_failure(
                        self._failure(migration, script, current, exc, partial=False), attempt, lock_timeout
                    ) from None
                self.emit(
                    Event(
                        EventKind.RETRY,
                        f"{migration.filename}: lock wait exceeded {failures.seconds(lock_timeout)} at line "
                        f"{current.line if current else '?'}; retrying with "
                        f"{failures.seconds(lock_timeout * 2)} (attempt {attempt + 1} of {attempts})",
                        {"version": str(migration.version), "attempt": attempt + 1},
                    )
                )
                time.sleep(self.options.retry_pause_s)
                lock_timeout *= 2
                attempt += 1
                continue
            check = None  # only the runner's own statements can fail a check, not the file's
            if outcome.failed_at == guard_at:
                check = guard.failed_check(exc.sqlstate, failures.server_error(exc).primary)
            elif outcome.failed_at == batch.lease_at and exc.sqlstate == lease_lost_sqlstate():
                check = guard.LOCK_RELEASED
            if check is not None:
                raise self._guard_failure(migration, check, partial=False) from None
            if completed > batch.commit_at and not self._lost():
                # committed with its row; what failed is the reset or read-back after it
                raise self._failure(migration, script, None, exc, partial=False, after_commit=True) from None
            # the statements, the row and the guard all answered: the failure came with COMMIT (a
            # deferred constraint, or the connection lost while committing: then the outcome is unknown)
            committing = current is None and completed > guard_at
            raise self._failure(
                migration, script, current, exc, partial=False, at_commit=committing
            ) from None

    def _batch(
        self,
        migration: MigrationFile,
        script: Script,
        applied_by: str,
        own: tuple[str, str],
        rows: KnownRows,
        prepared: OwnStatements | None,
        lock_timeout: float,
    ) -> Batch:
        """One attempt's round trip, prepared statements or texts (through a pooler, or as a fallback)."""
        tail, after_commit = self._run_constants()
        pooled = self.lease is not None
        reset: list[str | Prepared] = [*after_commit]
        if prepared is not None:
            reset = [*prepared.reset]
            begin: list[str | Prepared] = ["BEGIN", prepared.begin(lock_timeout)]
            record: str | Prepared = prepared.record(
                version=migration.version.text,
                name=migration.name,
                checksum=migration.checksum,
                applied_by=applied_by,
            )
            check: str | Prepared = prepared.guard(own, rows)
            readback: str | Prepared = prepared.readback(own)
        else:
            begin = [
                *session.begin(
                    lock_timeout,
                    self.options.statement_timeout_s,
                    pooled=pooled,
                    server_version=self._server_version,
                    also=guard.counts_at_begin(rows.oid),  # the tracking table's write counters (guard)
                )
            ]
            if self._record is None:
                self._record = tracking.RecordTemplate(self.table, self.conn)
            record = self._record.render(
                version=migration.version.text,
                name=migration.name,
                checksum=migration.checksum,
                applied_by=applied_by,
            )
            check = guard.guard_for(
                self._lock_held_sql(), rows, tracking.others_sum_sql(self.table, own), own
            )
            readback = tracking.readback_query(self.table, own, rows.oid)
        statements: list[str | Prepared] = [*begin, *(s.text for s in script.statements), *tail]
        lease_at = None
        if self.lease is not None:
            lease_at = len(statements)
            statements.append(self.lease.check_statement())
        statements.extend(("SET LOCAL ROLE NONE", record))
        guard_at = len(statements)
        statements.extend((check, "COMMIT", *reset, readback))
        return Batch(statements, len(begin), guard_at, lease_at, guard_at + 1)

    def _applied(
        self,
        migration: MigrationFile,
        outcome: pipeline.Outcome,
        readback_at: int,
        own: tuple[str, str],
        rows: KnownRows,
        elapsed: int,
        attempt: int,
    ) -> AppliedRecord:
        """What the read-back says after COMMIT: the new row's hash, the table's file, and whether the
        migration left prepared statements of its own (SQL's ``PREPARE``) to deallocate."""
        (filenode, left_prepared), *found = outcome.rows(readback_at, self._encoding)
        rows.replace(own, [(version, int(value or 0)) for value, version in found])
        rows.filenode = int(filenode) if filenode is not None else None
        if self.lease is None and left_prepared not in (None, "0"):
            self.conn.execute(session.deallocate_from_sql())
        return AppliedRecord(str(migration.version), migration.name, migration.filename, elapsed, attempt)

    # -- without a transaction ---------------------------------------------------------
    def _apply_without_transaction(
        self, migration: MigrationFile, script: Script, applied_by: str
    ) -> AppliedRecord:
        """Statement by statement, each committing on its own; the lock is checked after each.

        A statement that released the run's lock (``DISCARD ALL``) stops the run before the next one
        and the file is not recorded: another deploy may be running. Before the tracking row is
        written the session is reset (a ``SET default_transaction_read_only = on`` must not refuse
        it) and the tracking table checked: still there, other versions' rows untouched.
        """
        import psycopg
        from psycopg import errors as pgerrors

        started = time.perf_counter()
        self.executed = 0
        own = tracking.version_spellings(migration.version.text)
        expected = self._tracking_rows().expected(own)
        lock_held = f"SELECT {self._lock_held_sql()}"
        statement_timeout = self.options.statement_timeout_s
        try:
            for statement in script.statements:
                concurrent = statement.concurrent  # from the parse tree, not the text
                lock_timeout = self.options.lock_timeout_s
                for attempt in range(1, self.options.lock_retries + 2):
                    # CONCURRENTLY takes weak locks and must not be retried half-done: no lock_timeout.
                    self.conn.execute(
                        session.session_timeouts(None if concurrent else lock_timeout, statement_timeout)
                    )
                    try:
                        if concurrent and statement.node == "IndexStmt" and attempt == 1:
                            self._drop_interrupted_index(migration, statement)
                        self.conn.execute(statement.text)
                        break
                    except pgerrors.LockNotAvailable as exc:
                        if concurrent or attempt == self.options.lock_retries + 1:
                            partial = self.executed > 0
                            failed = self._failure(migration, script, statement, exc, partial=partial)
                            raise failures.lock_failure(
                                failed, attempt, lock_timeout, partial=partial
                            ) from None
                        self.emit(
                            Event(
                                EventKind.RETRY,
                                f"{migration.filename}: lock wait exceeded at line "
                                f"{statement.line}; retrying with {failures.seconds(lock_timeout * 2)}",
                            )
                        )
                        time.sleep(self.options.retry_pause_s)
                        lock_timeout *= 2
                    except psycopg.Error as exc:
                        if signalled(exc):
                            raise KeyboardInterrupt from None
                        raise self._failure(migration, script, statement, exc, partial=True) from None
                self.executed += 1
                self.conn.execute(session.own_statement_timeout(statement_timeout, local=False))
                if not one_row(self.conn.execute(lock_held))[0]:
                    raise self._guard_failure(migration, guard.LOCK_RELEASED, partial=True)
            elapsed = ms_since(started)
            self.reset_session()
            if not tracking.is_intact(self.conn, self.table):
                raise self._guard_failure(migration, guard.TRACKING_MISSING, partial=True)
            if tracking.others_sum(self.conn, self.table, own) != expected:
                raise self._guard_failure(migration, guard.TRACKING_CHANGED, partial=True)
            tracking.record(
                self.conn,
                self.table,
                version=migration.version.text,
                name=migration.name,
                checksum=migration.checksum,
                execution_ms=elapsed,
                applied_by=applied_by,
            )
            self.forget_rows()  # read again before the next migration
            return AppliedRecord(str(migration.version), migration.name, migration.filename, elapsed)
        finally:
            if not self.conn.closed and not self.conn.broken:
                with suppress(psycopg.Error):
                    self.reset_session()

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
                EventKind.DROPPED_INVALID_INDEX,
                f"{migration.filename}: dropped the INVALID index {row[0]}.{row[1]} an interrupted build "
                "left behind; building it again",
                {"version": str(migration.version), "index": f"{row[0]}.{row[1]}"},
            )
        )

    def _rollback(self) -> None:
        if self.conn.closed or self.conn.broken:
            return
        with suppress(Exception):
            self.conn.execute("ROLLBACK")

    # -- failure reports: the database look-ups, then pgship.failures ---------------------
    def _lost(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    def _failure(
        self,
        migration: MigrationFile,
        script: Script,
        statement: Statement | None,
        exc: Exception,
        *,
        partial: bool,
        at_commit: bool = False,
        after_commit: bool = False,
    ) -> MigrationFailed:
        error = failures.server_error(exc)
        lost = self._lost()
        invalid = self._invalid_indexes() if partial and not lost else []
        missing = (
            self._missing_objects(script)
            if failures.wants_clash_check(error, partial=partial, lost=lost)
            else None
        )
        return failures.failure(
            migration,
            statement,
            error,
            partial=partial,
            at_commit=at_commit,
            after_commit=after_commit,
            lost=lost,
            invalid_indexes=invalid,
            missing_objects=missing,
        )

    def _guard_failure(self, migration: MigrationFile, code: str, *, partial: bool) -> MigrationFailed:
        return failures.guard_failure(
            migration,
            code,
            table=str(self.table),
            lease_table=str(self.lease.table) if self.lease is not None else None,
            partial=partial,
            statements=self.executed if partial else 0,
        )

    def _missing_objects(self, script: Script) -> list[str] | None:
        """Which objects the file creates do not exist (None: no way to tell, ``["?"]``: the check failed)."""
        probes = objects_created(script)
        if not probes:
            return None
        try:
            return [
                name for name, query, params in probes if not one_row(self.conn.execute(query, params))[0]
            ]
        except Exception:
            return ["?"]

    def _invalid_indexes(self) -> list[str]:
        try:
            rows = self.conn.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
            ).fetchall()
        except Exception:
            return []
        return [row[0] for row in rows]
