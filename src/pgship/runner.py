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

import functools
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
from pgship.database import one_row
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

    from pgship.lease import Lease
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
    messages: list[dict[str, str]] = field(default_factory=list)  # the server's WARNINGs and NOTICEs


@dataclass
class MigrateResult:
    """What a ``migrate`` run did."""

    applied: list[AppliedRecord] = field(default_factory=list)
    already_applied: int = 0
    adopted: list[str] = field(default_factory=list)
    table_changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duration_ms: int = 0
    tracking_table: str | None = None  # schema-qualified, as resolved (``history.resolve``)


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
        lease: Lease | None = None,
        lease_connect: Callable[[], psycopg.Connection] | None = None,
    ) -> None:
        self.conn = conn
        # through a transaction pooler: lock with a lease row, keep no session state (pgship.locking)
        self.lease = lease
        self._lease_connect = lease_connect
        self.table = table  # as configured until resolved (schema-qualified) on first use
        self._resolved: tracking.Resolved | None = None
        self._record: tracking.RecordTemplate | None = None  # composed on the first migration
        self._rows: KnownRows | None = None  # the tracking rows as read (or written) under the lock
        self._messages: list[dict[str, str]] | None = None  # collecting the migration's notices
        self._in_flight: tuple[MigrationFile, Script] | None = None
        self._executed = 0  # statements of a no-transaction file that completed
        self.options = options or RunOptions()
        self.emit = on_event or _ignore
        # DEALLOCATE ALL (ours, or a migration's) must not pull prepared statements from under psycopg
        conn.prepare_threshold = None
        conn.add_notice_handler(self._on_notice)
        self._backend_pid = conn.info.backend_pid
        self._reconnect = (conn.info.dsn, conn.pgconn.password)

    def _on_notice(self, diag: Any) -> None:
        if self._messages is not None:
            severity = diag.severity_nonlocalized or diag.severity or "NOTICE"
            self._messages.append({"severity": severity, "message": diag.message_primary or ""})

    def resolve(self) -> TrackingTable:
        """The tracking table, schema-qualified (:func:`pgship.history.resolve`), resolved once per run."""
        if self._resolved is None:
            with self._lost_connection("locating the tracking table"):
                if self.lease is None:
                    self._resolved = tracking.resolve(self.conn, self.table)
                else:  # a shared backend may carry another client's SET search_path: not for us
                    with self.conn.transaction():
                        self.conn.execute("SET LOCAL search_path TO DEFAULT")
                        self._resolved = tracking.resolve(self.conn, self.table)
            self.table = self._resolved.table
        return self.table

    # -- reading -------------------------------------------------------------------
    def read_history(self) -> History:
        self.resolve()
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
            try:
                with self._lost_connection("migrating"):
                    return self._migrate(discovery, result, target, allow_out_of_order, allow_missing)
            except KeyboardInterrupt:
                raise self._interrupted(result) from None
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
        plan_for = functools.partial(
            make_plan, target=target, allow_out_of_order=allow_out_of_order, allow_missing=allow_missing
        )
        history = self.read_history()
        result.tracking_table = str(self.table)
        plan = plan_for(discovery, history)
        raise_refusals(plan)
        scripts = require_parsed(plan.to_apply)
        self._refuse_pooled_no_transaction(plan, scripts)
        result.warnings = list(plan.warnings)
        if not plan.to_apply and not plan.to_adopt and history.exists and not history.is_legacy:
            result.already_applied = plan.applied_count
            result.duration_ms = _ms_since(started)
            return result

        with self.advisory_lock():
            reason = self._resolved.reason if self._resolved else None
            result.table_changes = tracking.ensure(self.conn, self.table, history.resolved(discovery), reason)
            for change in result.table_changes:
                self.emit(Event("table", change))
            plan = plan_for(discovery, self.read_history())
            raise_refusals(plan)
            unparsed = [m for m in plan.to_apply if m.version not in scripts]
            scripts.update(require_parsed(unparsed))
            self._refuse_pooled_no_transaction(plan, scripts)
            for migration in plan.to_adopt:
                tracking.set_checksum(self.conn, self.table, migration.version, migration.checksum)
                self._rows = None  # read again before the next migration
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
                        {"pending": total, "applied": plan.applied_count, "table": str(self.table)},
                    )
                )
            for index, migration in enumerate(plan.to_apply, start=1):
                self._check_lease()
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
                self._in_flight = (migration, scripts[migration.version])
                record = self._apply(migration, scripts[migration.version], applied_by)
                result.applied.append(record)
                self._in_flight = None
                self.emit(
                    Event(
                        "applied",
                        f"applied {migration.filename} ({record.execution_ms} ms)",
                        {
                            "version": record.version,
                            "file": record.file,
                            "execution_ms": record.execution_ms,
                            "messages": record.messages,
                            "index": index,
                            "total": total,
                        },
                    )
                )
        result.duration_ms = _ms_since(started)
        return result

    # -- interrupts ----------------------------------------------------------------
    def _interrupted(self, result: MigrateResult) -> Interrupted:
        """What a SIGINT/SIGTERM left, checked against the database before it is reported.

        The signal may land after COMMIT was sent (pipelining) or after the server answered it but
        before this process noted it. So: cancel what runs, close the connection, wait until the
        server has finished with that backend (its transaction is then committed or rolled back),
        and read the tracking table on a fresh connection.
        """
        in_flight, self._in_flight = self._in_flight, None
        with _signals_ignored():
            recorded, problem = self._settle()
        if in_flight is not None and recorded is not None:
            migration, script = in_flight
            noted = bool(result.applied) and result.applied[-1].version == str(migration.version)
            if recorded & set(tracking.version_spellings(migration.version.text)) and not noted:
                result.applied.append(
                    AppliedRecord(str(migration.version), migration.name, migration.filename, 0, 1)
                )
        done = f"; applied by this run: {', '.join(a.file for a in result.applied)}" if result.applied else ""
        rerun = "Run `pgship migrate` again to continue."
        if in_flight is None:
            return Interrupted(
                f"interrupted with no migration in flight{done or '; this run applied none'}",
                hint=f"Every migration it applied is committed and recorded. {rerun}",
            )
        migration, script = in_flight
        if recorded is None:
            return Interrupted(
                f"interrupted while applying {migration.filename}; whether it committed could not be "
                f"checked ({problem}){done}",
                hint=f"Run `pgship status` to see whether {migration.filename} is applied, then "
                "`pgship migrate` to continue.",
            )
        if result.applied and result.applied[-1].file == migration.filename:
            return Interrupted(
                f"interrupted just after {migration.filename} was committed: it is applied and recorded, "
                f"no later migration started{done}",
                hint=rerun,
            )
        if script.no_transaction:
            return Interrupted(
                f"stopped while applying {migration.filename}, which runs without a transaction: "
                f"{self._executed} of {len(script.statements)} statements had completed, and it is not "
                f"recorded{done}",
                hint="Run `pgship migrate` again: it reruns the file (keep its statements safe to rerun, "
                "IF NOT EXISTS) and rebuilds an index a CREATE INDEX CONCURRENTLY of it left INVALID.",
            )
        return Interrupted(
            f"stopped while applying {migration.filename}; it was rolled back, nothing of it is "
            f"applied{done}",
            hint=f"Migrations before it stay applied. {rerun}",
        )

    def _settle(self) -> tuple[set[str] | None, str]:
        """Versions recorded once this run's backend is gone, or None and why it could not be told."""
        import psycopg
        from psycopg import sql

        with suppress(Exception):
            self.conn.cancel_safe(timeout=5)
        with suppress(Exception):
            self.conn.close()
        dsn, password = self._reconnect
        try:
            kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": 10}
            if password:
                kwargs["password"] = password.decode()
            with psycopg.connect(dsn, **kwargs) as fresh:
                deadline = time.monotonic() + 30
                while one_row(
                    fresh.execute(
                        "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (self._backend_pid,)
                    )
                )[0]:
                    if time.monotonic() > deadline:
                        return None, f"backend {self._backend_pid} is still running"
                    time.sleep(0.02)
                if self._resolved is None:
                    return set(), ""
                found = one_row(fresh.execute("SELECT to_regclass(%s)", (self.table.regclass_text(),)))[0]
                if found is None:
                    return set(), ""
                rows = fresh.execute(
                    sql.SQL("SELECT version::text FROM {}").format(self.table.identifier())
                ).fetchall()
                return {row[0] for row in rows}, ""
        except psycopg.Error as exc:
            return None, (str(exc).strip().splitlines() or ["no connection"])[0]

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
                            entry.applied.checksum if entry.applied is not None else None,
                            None,
                        )
                    )
        return changes

    # -- locking -------------------------------------------------------------------
    def _refuse_pooled_no_transaction(self, plan: Plan, scripts: dict[Version, Script]) -> None:
        if self.lease is not None:
            from pgship.locking import refuse_no_transaction

            refuse_no_transaction(
                [
                    m.filename
                    for m in plan.to_apply
                    if m.version in scripts and scripts[m.version].no_transaction
                ]
            )

    def _check_lease(self) -> None:
        if self.lease is not None and self.lease.lost.is_set():
            raise PgshipError(
                f"this run lost its migration lease ({self.lease.table}) before the next migration: it could "
                "not renew it in time, and another deploy may have taken over",
                hint="Every migration this run applied is committed and recorded; nothing else was started. "
                "Run `pgship status`, then deploy again.",
            )

    @contextmanager
    def advisory_lock(self) -> Iterator[None]:
        """Hold the table's session-level advisory lock; poll for it up to ``lock_wait_s``.

        The key comes from the resolved, schema-qualified table, never from the name as typed:
        ``schema_migrations`` and ``"public"."schema_migrations"`` are one table and one lock.
        Through a transaction pooler (``lease`` given) the run holds the lease instead.
        """
        if self.lease is not None:
            from pgship.locking import hold_lease

            self.resolve()
            self.lease.rebind(self.table)
            with hold_lease(
                self.lease,
                self.conn,
                wait_s=self.options.lock_wait_s,
                connect=self._lease_connect or (lambda: self.conn),
                on_wait=lambda message: self.emit(Event("lock_wait", message)),
                on_acquired=lambda: self.emit(Event("lock", "acquired the migration lease")),
            ):
                yield
            return
        key = self.resolve().lock_key
        started = time.monotonic()
        delay = 0.05
        announced = False
        while not one_row(self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)))[0]:
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
    def _session_defaults(self) -> list[str]:
        """What every migration starts from, as if it had a session of its own.

        The old runner's ``psql -f`` per file gave each file a fresh session; ``RESET ALL`` alone
        does not undo a ``SET SESSION AUTHORIZATION``, temporary tables, prepared statements, open
        ``WITH HOLD`` cursors or ``LISTEN``. ``DISCARD ALL`` would, but it also releases the run's
        advisory lock, so its parts are spelled out without ``pg_advisory_unlock_all()``. If this
        process dies mid-migration, ``client_connection_check_interval`` lets the server notice within
        a second and roll back, instead of finishing a long statement (and holding its locks) for nobody.
        """
        if self.lease is not None:
            return []  # through a transaction pooler: every reset is local to the migration (_begin)
        statements = [
            "SET SESSION AUTHORIZATION DEFAULT",
            "RESET ALL",
            "DISCARD TEMP",
            "DISCARD PLANS",
            "DISCARD SEQUENCES",
            "DEALLOCATE ALL",
            "CLOSE ALL",
            "UNLISTEN *",
        ]
        if self.conn.info.server_version >= 140000:
            statements.append("SET client_connection_check_interval = 1000")
        return statements

    def _reset_session(self) -> None:
        defaults = self._session_defaults()
        if defaults:
            self.conn.execute("; ".join(defaults))

    def _applied_by(self) -> str:
        self._reset_session()
        row = self.conn.execute("SELECT current_user").fetchone()
        who = os.environ.get("PGSHIP_APPLIED_BY") or self.options.applied_by
        if not who:
            try:
                who = f"{getpass.getuser()}@{socket.gethostname()}"
            except Exception:
                who = socket.gethostname()
        return f"{row[0]} ({who})" if row else who

    def _apply(self, migration: MigrationFile, script: Script, applied_by: str) -> AppliedRecord:
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

    # -- guarding the runner's own state -------------------------------------------
    def _tracking_rows(self) -> KnownRows:
        """Every tracking row's hash as this run last saw (or wrote) it: read once, then kept up to date."""
        if self._rows is None:
            oid, filenode = one_row(
                self.conn.execute(
                    "SELECT to_regclass(%s)::oid, pg_catalog.pg_relation_filenode(to_regclass(%s))",
                    (self.table.regclass_text(), self.table.regclass_text()),
                )
            )
            self._rows = KnownRows(oid, filenode)
            self._rows.replace((), self.conn.execute(tracking.row_hashes_query(self.table)).fetchall())
        return self._rows

    def _lock_held_sql(self) -> str:
        if self.lease is not None:
            return "TRUE"  # the lease check (Lease.check_statement) runs next to the guard instead
        unsigned = self.table.lock_key & 0xFFFFFFFFFFFFFFFF
        return (
            "EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted "
            f"AND pid = pg_catalog.pg_backend_pid() AND classid = '{unsigned >> 32}'::oid "
            f"AND objid = '{unsigned & 0xFFFFFFFF}'::oid AND objsubid = 1)"
        )

    def _guard(self, own: tuple[str, ...]) -> str:
        """The last statement before COMMIT: the run still holds its lock, and only ``own`` rows changed.

        It runs in the migration's transaction, so a failure rolls the migration back with it. The
        tracking table check is O(1) when the transaction's only write to the table was our row (the
        server's per-transaction counters, and the same file: no TRUNCATE or rewrite); otherwise the
        hashes of every other version's row are summed and compared with what the run knows.
        """
        rows = self._tracking_rows()
        oid = f"'{rows.oid}'::oid"
        return (
            "DO $pgship_guard$ BEGIN "
            f"IF NOT {self._lock_held_sql()} THEN RAISE EXCEPTION USING ERRCODE = '{LOCK_RELEASED}', "
            "MESSAGE = 'pgship: the migration released the migration lock'; END IF; "
            f"IF (pg_catalog.current_setting('{_GUARD_SETTING}', true) = {self._write_counts(-1)} "
            f"AND pg_catalog.pg_relation_filenode({oid}) = '{rows.filenode}'::oid) IS NOT TRUE THEN "
            f"IF {tracking.others_sum_sql(self.table, own)} IS DISTINCT FROM {rows.expected(own)} THEN "
            f"RAISE EXCEPTION USING ERRCODE = '{TRACKING_CHANGED}', "
            "MESSAGE = 'pgship: the migration changed the tracking table'; END IF; END IF; "
            "END $pgship_guard$"
        )

    def _write_counts(self, offset: int) -> str:
        """An expression: the server's count of this session's inserts and of all writes to the tracking
        table not yet flushed to the statistics (they accumulate over transactions until the session is
        idle), as text, ``offset`` added to each."""
        oid = f"'{self._tracking_rows().oid}'::oid"
        inserted = f"pg_catalog.pg_stat_get_xact_tuples_inserted({oid})"
        written = (
            f"{inserted} + pg_catalog.pg_stat_get_xact_tuples_updated({oid}) "
            f"+ pg_catalog.pg_stat_get_xact_tuples_deleted({oid})"
        )
        return f"pg_catalog.format('%s:%s', {inserted} + {offset}, {written} + {offset})"

    def _guard_failure(
        self, migration: MigrationFile, code: str, *, partial: bool, statements: int = 0
    ) -> MigrationFailed:
        table = self.table
        if code == LOCK_RELEASED and self.lease is not None:
            what = (
                f"this run lost its migration lease ({self.lease.table}) before {migration.filename} could "
                "commit: it expired unrenewed (the runner paused, or lost the database), or the migration "
                "itself deleted or changed the lease row"
            )
            why = "another deploy may have taken over, so the run stops here"
        elif code == LOCK_RELEASED:
            what = (
                f"{migration.filename} released the migration lock (pg_advisory_unlock, "
                "pg_advisory_unlock_all or DISCARD ALL)"
            )
            why = "another deploy may be applying migrations now, so the run stops here"
        elif code == TRACKING_MISSING:
            what = f"{migration.filename} dropped or renamed the tracking table {table}"
            why = "pgship cannot record it, so the run stops here"
        else:
            what = (
                f"{migration.filename} changed the tracking table {table}: it inserted, updated or "
                "deleted rows of other versions"
            )
            why = "those rows are pgship's record of what ran, so the run stops here"
        details = FailureDetails(
            version=str(migration.version),
            file=migration.filename,
            sqlstate=code,
            server_message=what,
            partial=partial,
        )
        if partial:
            hint = (
                f"It runs without a transaction: its {statements} statement(s) stay applied, but it is NOT "
                f"recorded; {why}. Remove that statement from the file, check the database (and "
                f"{table}), then run `pgship migrate` again."
            )
        else:
            hint = (
                f"It was rolled back: nothing of it is applied and it is not recorded; {why}. A migration "
                "must leave the migration lock and other versions' tracking rows alone: remove that "
                "statement and run `pgship migrate` again."
            )
        return MigrationFailed(details, message=what, hint=hint)

    def _apply_in_transaction(
        self, migration: MigrationFile, script: Script, applied_by: str
    ) -> AppliedRecord:
        """BEGIN, the statements, the tracking row, the guard and COMMIT, pipelined: one round trip.

        Each statement is still its own protocol message, so the server says which one
        failed: its cursor is the first without a result. The server times the migration
        (``transaction_timestamp()`` is the BEGIN), because the tracking row is sent before
        the statements have run. The row is written as the runner's own identity, whatever role
        the migration switched to; the guard (:meth:`_guard`) rolls the migration back if it
        released the lock or touched other versions' rows. After COMMIT the same round trip resets
        the session and reads back the new row, so the next guard knows what to expect.
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
        own = tracking.version_spellings(migration.version.text)
        guard = self._guard(own)
        # the tracking table's write counters as the transaction starts: the guard's fast path
        counts = f"SELECT pg_catalog.set_config('{_GUARD_SETTING}', {self._write_counts(0)}, true)"
        readback = tracking.row_hashes_query(self.table, own)
        filenode = f"SELECT pg_catalog.pg_relation_filenode('{self._tracking_rows().oid}'::oid)"
        lock_timeout = self.options.lock_timeout_s
        attempts = self.options.lock_retries + 1
        for attempt in range(1, attempts + 1):
            cursors: list[tuple[Statement, Any]] = []
            record_cursor: Any = None
            started = time.perf_counter()
            if self._messages is not None:
                self._messages.clear()  # a retried attempt reports only its own messages
            try:
                with self.conn.pipeline():
                    for setting in self._begin(lock_timeout):
                        self.conn.execute(setting)
                    self.conn.execute(counts)
                    for statement in script.statements:
                        cursors.append((statement, self.conn.execute(statement.text)))
                    for cleanup in self._pooled_cleanup():
                        self.conn.execute(cleanup)
                    self.conn.execute("SET LOCAL SESSION AUTHORIZATION DEFAULT")
                    self.conn.execute("SET LOCAL ROLE NONE")
                    self.conn.execute(self._own_statement_timeout())
                    record_cursor = self.conn.execute(record)
                    if self.lease is not None:
                        self.conn.execute(self.lease.check_statement())
                    self.conn.execute(guard)
                    self.conn.execute("COMMIT")
                    for setting in self._session_defaults():
                        self.conn.execute(setting)
                    readback_cursor = self.conn.execute(readback)
                    filenode_cursor = self.conn.execute(filenode)
                elapsed = _ms_since(started)
                self._tracking_rows().replace(own, readback_cursor.fetchall())
                self._tracking_rows().filenode = one_row(filenode_cursor)[0]
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
                if signalled(exc):  # a stop signal inside the pipeline: report it as the interrupt it is
                    raise KeyboardInterrupt from None
                current = _failed_statement(cursors)
                self._rollback()
                if exc.sqlstate in (LOCK_RELEASED, TRACKING_CHANGED):
                    raise self._guard_failure(migration, exc.sqlstate, partial=False) from None
                # the statements and the row all answered: the failure came with COMMIT (a deferred
                # constraint, or the connection lost while committing: then the outcome is unknown)
                committing = current is None and record_cursor is not None and _has_result(record_cursor)
                raise self._failure(migration, current, exc, partial=False, at_commit=committing) from None
        raise AssertionError("unreachable")  # pragma: no cover

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
        self._executed = 0
        own = tracking.version_spellings(migration.version.text)
        expected = self._tracking_rows().expected(own)
        lock_held = f"SELECT {self._lock_held_sql()}"
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
                                migration, statement, exc, attempt, lock_timeout, partial=self._executed > 0
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
                        if signalled(exc):
                            raise KeyboardInterrupt from None
                        raise self._failure(migration, statement, exc, partial=True) from None
                self._executed += 1
                self.conn.execute(self._own_statement_timeout().replace("SET LOCAL", "SET"))
                if not one_row(self.conn.execute(lock_held))[0]:
                    raise self._guard_failure(
                        migration, LOCK_RELEASED, partial=True, statements=self._executed
                    )
            elapsed = _ms_since(started)
            self._reset_session()
            present = one_row(self.conn.execute("SELECT to_regclass(%s)", (self.table.regclass_text(),)))[0]
            if present is None or tracking.read(self.conn, self.table).missing_columns:
                raise self._guard_failure(
                    migration, TRACKING_MISSING, partial=True, statements=self._executed
                )
            found = one_row(self.conn.execute(f"SELECT {tracking.others_sum_sql(self.table, own)}"))[0]
            if found != expected:
                raise self._guard_failure(
                    migration, TRACKING_CHANGED, partial=True, statements=self._executed
                )
            self._record_applied(migration, elapsed, applied_by)
            self._rows = None  # read again before the next migration
            return AppliedRecord(str(migration.version), migration.name, migration.filename, elapsed)
        finally:
            if not self.conn.closed and not self.conn.broken:
                with suppress(psycopg.Error):
                    self._reset_session()

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
        # through a pooler another client's session-level default_transaction_read_only may be on the backend
        begin = "BEGIN" if self.lease is None else "BEGIN READ WRITE"
        parts = [begin, *self._local_resets(), f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'"]
        if self.options.statement_timeout_s:
            parts.append(f"SET LOCAL statement_timeout = '{int(self.options.statement_timeout_s * 1000)}ms'")
        return parts

    def _local_resets(self) -> list[str]:
        """Through a transaction pooler: the clean-session reset, local to the migration's transaction.

        The server backend is shared with the pooler's other clients, so nothing is reset (or set) at
        session level: settings another client's ``SET`` left on this backend go back to their
        defaults for this transaction only, and so do the role and ``search_path``.
        """
        if self.lease is None:
            return []
        resets = [
            "SET LOCAL SESSION AUTHORIZATION DEFAULT",
            "SET LOCAL ROLE NONE",
            "SELECT pg_catalog.set_config(name, reset_val, true) FROM pg_catalog.pg_settings "
            "WHERE source = 'session' AND (context = 'user' OR context = 'superuser' AND "
            "(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)) "
            "AND lower(name) NOT IN ('session_authorization', 'role', 'transaction_isolation', "
            "'transaction_read_only', 'transaction_deferrable', 'client_encoding', 'datestyle', "
            "'timezone', 'intervalstyle', 'standard_conforming_strings', 'application_name')",
            "SET LOCAL search_path TO DEFAULT",
        ]
        if self.conn.info.server_version >= 140000:
            resets.append("SET LOCAL client_connection_check_interval = 1000")
        return resets

    def _pooled_cleanup(self) -> list[str]:
        """Through a transaction pooler: undo, before COMMIT, the session state the migration left.

        The backend goes back to the pooler's other clients after the COMMIT, so nothing can be reset
        at session level afterwards; reset *inside* the transaction, it commits with the migration.
        It is the clean-session reset of :meth:`_session_defaults`, except that only prepared
        statements made with SQL ``PREPARE`` are deallocated (a pooler may track protocol-level
        ones of its own on the backend).
        """
        if self.lease is None:
            return []
        return [
            "SET SESSION AUTHORIZATION DEFAULT",
            "RESET ALL",
            "DISCARD TEMP",
            "DISCARD SEQUENCES",
            "CLOSE ALL",
            "UNLISTEN *",
            "DO $pgship_deallocate$ DECLARE p record; BEGIN FOR p IN SELECT name FROM "
            "pg_catalog.pg_prepared_statements WHERE from_sql LOOP EXECUTE 'DEALLOCATE ' || "
            "quote_ident(p.name); END LOOP; END $pgship_deallocate$",
        ]

    def _own_statement_timeout(self) -> str:
        """The runner's own statements (row, guard) get ``--statement-timeout``, not a migration's."""
        timeout = self.options.statement_timeout_s
        value = f"'{int(timeout * 1000)}ms'" if timeout else "0"
        return f"SET LOCAL statement_timeout = {value}"

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
                hint = self._clash_hint(migration, hint)
        return MigrationFailed(details, message=message, hint=hint)

    def _clash_hint(self, migration: MigrationFile, hint: str) -> str:
        """An "already exists" error: suggest ``baseline`` only if the database holds all the file creates.

        ``baseline`` records a migration without running it, so it is right only for a migration
        that was applied by hand. A file that repeats one existing table among new ones is a name
        clash, and recording it would leave the new objects missing for ever.
        """
        script = self._in_flight[1] if self._in_flight else None
        probes = objects_created(script) if script is not None else None
        if probes:
            try:
                missing = [
                    name for name, query, params in probes if not one_row(self.conn.execute(query, params))[0]
                ]
            except Exception:
                missing = ["?"]
            if not missing:
                return (
                    f"{hint} Everything {migration.filename} creates already exists: if it was applied "
                    "by hand (psql in an emergency), record it without running it again: pgship baseline "
                    f"{migration.version}"
                )
            return (
                f"{hint} {migration.filename} conflicts with an existing object (it was not applied by hand: "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} does not exist yet): rename "
                "what it creates, or drop the old object in the migration if that is the intent."
            )
        return f"{hint} {migration.filename} conflicts with an existing object: rename what it creates."

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


#: Where a transaction keeps the tracking table's write counters as it started (``SET LOCAL``).
_GUARD_SETTING = "pgship.tracking_writes_at_begin"

#: SQLSTATEs the runner's own guard raises (class "PG" is not PostgreSQL's): see ``Runner._guard``.
LOCK_RELEASED = "PGL01"
TRACKING_CHANGED = "PGT01"
TRACKING_MISSING = "PGT02"

#: SQLSTATEs of "already exists" errors: the typical result of rerunning a hand-applied migration.
_ALREADY_EXISTS = frozenset({"42P07", "42701", "42710", "42P06", "42723", "42P04", "42712", "42P16"})


def signalled(exc: BaseException) -> bool:
    """Whether a stop signal (raised as KeyboardInterrupt) is what really ended this database error.

    A signal that lands while psycopg is inside a pipeline interrupts it; leaving the pipeline then
    fails with "cannot exit pipeline mode while busy", an error that hides the interrupt behind it.
    """
    seen: set[int] = set()
    cause = exc.__context__ or exc.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__context__ or cause.__cause__
    return False


def _has_result(cursor: Any) -> bool:
    return cursor.pgresult is not None


def _failed_statement(cursors: list[tuple[Statement, Any]]) -> Statement | None:
    """The statement a pipelined migration failed at: the first whose cursor got no result."""
    for statement, cursor in cursors:
        if not _has_result(cursor):
            return statement
    return None


def _regclass(relation: dict[str, Any]) -> str:
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    name = quote(relation["relname"])
    return f"{quote(relation['schemaname'])}.{name}" if relation.get("schemaname") else name


def _names(parts: list[dict[str, Any]]) -> str:
    return ".".join('"' + p["String"]["sval"].replace('"', '""') + '"' for p in parts)


def objects_created(script: Script) -> list[tuple[str, str, tuple[Any, ...]]] | None:
    """What a migration creates, each as (name, a query answering "does it exist?", its parameters).

    Read from PostgreSQL's parse tree; None if a statement cannot be read. Pure.
    """

    from pglast import parser

    try:
        return _probes(script)
    except (KeyError, TypeError, ValueError, parser.ParseError):
        return None


def _probes(script: Script) -> list[tuple[str, str, tuple[Any, ...]]]:
    import json

    from pglast import parser

    relation = "SELECT to_regclass(%s) IS NOT NULL"
    probes: list[tuple[str, str, tuple[Any, ...]]] = []
    for statement in script.statements:
        tree = json.loads(parser.parse_sql_json(statement.text))
        for raw in tree.get("stmts", []):
            ((kind, node),) = raw["stmt"].items()
            if kind == "CreateStmt":
                probes.append((_regclass(node["relation"]), relation, (_regclass(node["relation"]),)))
            elif kind == "CreateTableAsStmt":
                name = _regclass(node["into"]["rel"])
                probes.append((name, relation, (name,)))
            elif kind == "ViewStmt":
                probes.append((_regclass(node["view"]), relation, (_regclass(node["view"]),)))
            elif kind == "CreateSeqStmt":
                probes.append((_regclass(node["sequence"]), relation, (_regclass(node["sequence"]),)))
            elif kind == "IndexStmt" and node.get("idxname"):
                name = _regclass(
                    {"relname": node["idxname"], "schemaname": node["relation"].get("schemaname")}
                )
                probes.append((name, relation, (name,)))
            elif kind == "CreateSchemaStmt" and node.get("schemaname"):
                probes.append(
                    (
                        node["schemaname"],
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = %s)",
                        (node["schemaname"],),
                    )
                )
            elif kind in ("CreateEnumStmt", "CreateDomainStmt"):
                name = _names(node["domainname"] if kind == "CreateDomainStmt" else node["typeName"])
                probes.append((name, "SELECT to_regtype(%s) IS NOT NULL", (name,)))
            elif kind == "CompositeTypeStmt":
                name = _regclass(node["typevar"])
                probes.append((name, "SELECT to_regtype(%s) IS NOT NULL", (name,)))
            elif kind == "CreateFunctionStmt":
                parts = [p["String"]["sval"] for p in node["funcname"]]
                probes.append(
                    (
                        ".".join(parts),
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
                        "ON n.oid = p.pronamespace WHERE p.proname = %s AND (%s::text IS NULL AND "
                        "n.nspname = ANY (current_schemas(false)) OR n.nspname = %s))",
                        (
                            parts[-1],
                            parts[0] if len(parts) > 1 else None,
                            parts[0] if len(parts) > 1 else None,
                        ),
                    )
                )
            elif kind == "CreateTrigStmt":
                probes.append(
                    (
                        node["trigname"],
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgname = %s "
                        "AND tgrelid = to_regclass(%s))",
                        (node["trigname"], _regclass(node["relation"])),
                    )
                )
            elif kind == "CreateExtensionStmt":
                probes.append(
                    (
                        node["extname"],
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = %s)",
                        (node["extname"],),
                    )
                )
            elif kind == "AlterTableStmt":
                for cmd in node.get("cmds", []):
                    command = cmd.get("AlterTableCmd", {})
                    if command.get("subtype") == "AT_AddColumn":
                        column = command["def"]["ColumnDef"]["colname"]
                        probes.append(
                            (
                                f"{_regclass(node['relation'])}.{column}",
                                "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = "
                                "to_regclass(%s) AND attname = %s AND NOT attisdropped)",
                                (_regclass(node["relation"]), column),
                            )
                        )
    return probes


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


class KnownRows:
    """The tracking table as this run knows it: each version's row hashes and their total."""

    def __init__(self, oid: int, filenode: int | None) -> None:
        self.oid = oid
        self.filenode = filenode
        self._by_version: dict[str, list[int]] = {}
        self._total = 0

    def expected(self, own: tuple[str, ...]) -> int:
        """The sum of the hashes of every row not of ``own`` (what the guard's query must find)."""
        return self._total - sum(h for version in own for h in self._by_version.get(version, ()))

    def replace(self, own: tuple[str, ...], rows: Any) -> None:
        """Forget the rows of ``own``, then add ``rows`` (``(version, hash)`` pairs)."""
        for version in own:
            self._total -= sum(self._by_version.pop(version, ()))
        for version, value in rows:
            self._by_version.setdefault(version, []).append(value)
            self._total += value


_STOP_SIGNALS = ("SIGINT", "SIGTERM")


def hold_signals() -> None:
    """Hold SIGINT and SIGTERM (main thread): once a run is decided, its report must come out whole."""
    import signal

    with suppress(ValueError, AttributeError):
        signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, name) for name in _STOP_SIGNALS})


def release_held_signals() -> bool:
    """Let signals through again; True if one arrived while held (it is consumed, not delivered)."""
    import signal

    stops = {getattr(signal, name) for name in _STOP_SIGNALS}
    arrived = False
    with suppress(ValueError, AttributeError):
        if signal.pthread_sigmask(signal.SIG_BLOCK, set()) & stops:  # held at the moment
            while signal.sigtimedwait(stops, 0) is not None:
                arrived = True
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    return arrived


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not cut short the check of what the first one left."""
    import signal

    saved = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread
            saved[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _seconds(value: float) -> str:
    return f"{value:g} s"
