"""Applying a plan: one advisory lock for the run, one transaction per migration.

The order of a run is what makes it safe:

1. read the tracking table and plan, without writing (refusals and bad files stop here);
2. take the session-level advisory lock (:func:`pgship.locking.hold_advisory_lock`), polling so a
   waiting runner never sits inside a transaction;
3. create or upgrade the tracking table, read it again and plan again (another
   runner may have finished while we waited);
4. apply each pending migration and its tracking row in one transaction (:mod:`pgship.apply`),
   with a ``lock_timeout`` that is retried with growing values instead of queueing production
   traffic behind an ``ALTER TABLE``.

This module is the orchestration (migrate, baseline, repair, interrupts) and the public façade:
the names other modules import from ``pgship.runner`` are re-exported here. What one migration
sends is in :mod:`pgship.apply`, the session SQL in :mod:`pgship.session`, the guard in
:mod:`pgship.guard`, failure messages in :mod:`pgship.failures`, the tracking table's SQL in
:mod:`pgship.history`. (Over 400 lines, about 460: migrate, baseline and repair share one ``Runner``'s state,
the resolved table, the lock and the interrupt report; splitting them would spread that state.)
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgship import adopt, config, failures
from pgship import history as tracking
from pgship.created_objects import objects_created
from pgship.errors import Interrupted, PgshipError, Refused, UsageError
from pgship.events import Event, EventKind, EventSink, ignore
from pgship.history import History, KnownRows, TrackingTable
from pgship.interrupts import (
    hold_signals,
    reconnect_info,
    release_held_signals,
    settle,
    signalled,
    signals_ignored,
)
from pgship.migrations import Discovery, MigrationFile, Version, require_parsed
from pgship.planner import Plan, State, make_plan
from pgship.run_model import AppliedRecord, RunOptions, ms_since

if TYPE_CHECKING:
    import psycopg

    from pgship.apply import Applier
    from pgship.lease import Lease
    from pgship.sqlscript import Script

__all__ = [
    "AppliedRecord",
    "Event",
    "EventKind",
    "EventSink",
    "KnownRows",
    "MigrateResult",
    "RepairChange",
    "RunOptions",
    "Runner",
    "applied_by_identity",
    "hold_signals",
    "objects_created",
    "raise_refusals",
    "release_held_signals",
    "signalled",
]


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


def applied_by_identity(option: str | None) -> str:
    """Who runs pgship, for the tracking rows: ``option`` (an explicit --applied-by), else
    ``PGSHIP_APPLIED_BY``, else user@host (precedence: :func:`pgship.config.applied_by`)."""
    who = config.applied_by(option)
    if not who:
        try:
            import getpass  # termios and pwd: only when the name is needed

            who = f"{getpass.getuser()}@{socket.gethostname()}"
        except Exception:
            who = socket.gethostname()
    return who


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
        self._applier: Applier | None = None  # made once the table is resolved
        self._in_flight: tuple[MigrationFile, Script] | None = None
        self.options = options or RunOptions()
        self.emit = on_event or ignore
        # DEALLOCATE ALL (ours, or a migration's) must not pull prepared statements from under psycopg
        conn.prepare_threshold = None
        self._reconnect = reconnect_info(conn)

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

    @property
    def applier(self) -> Applier:
        """What applies each migration (:mod:`pgship.apply`), on the resolved table."""
        if self._applier is None:
            from pgship.apply import Applier  # not on the start-up of commands that only read

            self._applier = Applier(self.conn, self.resolve(), self.options, emit=self.emit, lease=self.lease)
        return self._applier

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
            raise failures.lost_connection(doing, exc) from None

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
            result.duration_ms = ms_since(started)
            return result

        with self.advisory_lock():
            reason = self._resolved.reason if self._resolved else None
            result.table_changes = tracking.ensure(self.conn, self.table, history.resolved(discovery), reason)
            for change in result.table_changes:
                self.emit(Event(EventKind.TABLE, change))
            plan = plan_for(discovery, self.read_history())
            raise_refusals(plan)
            unparsed = [m for m in plan.to_apply if m.version not in scripts]
            scripts.update(require_parsed(unparsed))
            self._refuse_pooled_no_transaction(plan, scripts)
            applier = self.applier
            for migration in plan.to_adopt:
                tracking.set_checksum(self.conn, self.table, migration.version, migration.checksum)
                applier.forget_rows()  # read again before the next migration
                result.adopted.append(str(migration.version))
                self.emit(
                    Event(
                        EventKind.ADOPTED,
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
                        EventKind.PLAN,
                        f"{total} pending migration{'s' if total != 1 else ''} to apply "
                        f"({plan.applied_count} already applied)",
                        {"pending": total, "applied": plan.applied_count, "table": str(self.table)},
                    )
                )
            for index, migration in enumerate(plan.to_apply, start=1):
                self._check_lease()
                self.emit(
                    Event(
                        EventKind.START,
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
                record = applier.apply(migration, scripts[migration.version], applied_by)
                result.applied.append(record)
                self._in_flight = None
                self.emit(
                    Event(
                        EventKind.APPLIED,
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
        result.duration_ms = ms_since(started)
        return result

    def _applied_by(self) -> str:
        """``<database role> (<who>)``: the role as a clean session has it, after the reset."""
        self.applier.reset_session()
        row = self.conn.execute("SELECT current_user").fetchone()
        who = applied_by_identity(self.options.applied_by)
        return f"{row[0]} ({who})" if row else who

    # -- interrupts ----------------------------------------------------------------
    def _interrupted(self, result: MigrateResult) -> Interrupted:
        """What a SIGINT/SIGTERM left, checked against the database before it is reported (:func:`settle`)."""
        in_flight, self._in_flight = self._in_flight, None
        with signals_ignored():
            recorded, problem = settle(self.conn, self._reconnect, self.table if self._resolved else None)
        if in_flight is not None and recorded is not None:
            migration, _ = in_flight
            noted = bool(result.applied) and result.applied[-1].version == str(migration.version)
            if recorded & set(tracking.version_spellings(migration.version.text)) and not noted:
                result.applied.append(
                    AppliedRecord(str(migration.version), migration.name, migration.filename, 0, 1)
                )
        return failures.interrupted(
            in_flight,
            [a.file for a in result.applied],
            checked=recorded is not None,
            problem=problem,
            executed=self._applier.executed if self._applier is not None else 0,
        )

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
                tracking.record(
                    self.conn,
                    self.table,
                    version=migration.version.text,
                    name=migration.name,
                    checksum=migration.checksum,
                    execution_ms=None,
                    applied_by=applied_by,
                )
                recorded.append(str(migration.version))
                self.emit(Event(EventKind.BASELINED, f"recorded {migration.filename} as applied (not run)"))
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
                for entry in plan.with_state(State.MISSING):
                    tracking.forget(self.conn, self.table, entry.version)
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
        from pgship.locking import hold_advisory_lock, hold_lease

        table = self.resolve()

        def on_wait(message: str) -> None:
            self.emit(Event(EventKind.LOCK_WAIT, message))

        if self.lease is not None:
            self.lease.rebind(table)
            with hold_lease(
                self.lease,
                self.conn,
                wait_s=self.options.lock_wait_s,
                connect=self._lease_connect or (lambda: self.conn),
                on_wait=on_wait,
                on_acquired=lambda: self.emit(Event(EventKind.LOCK, "acquired the migration lease")),
            ):
                yield
            return
        with hold_advisory_lock(
            self.conn,
            table,
            wait_s=self.options.lock_wait_s,
            on_wait=on_wait,
            on_acquired=lambda: self.emit(Event(EventKind.LOCK, "acquired the migration lock")),
        ):
            yield


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
