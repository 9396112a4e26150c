"""The I/O of a fleet: connecting to targets, enumerating them by query, and running pgship on each.

Each target gets exactly the single-database run (:class:`pgship.runner.Runner`): its own
connection, its own advisory lock, its own transactions. A worker opens the target's connection,
runs, and closes it before taking the next target, so a fleet of thousands holds at most
``parallel`` connections at any moment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgship.database import connect, describe, passwords_in, redact
from pgship.errors import DatabaseUnavailable, ExitCode, Interrupted, PgshipError, UsageError
from pgship.fleet.orchestrate import STOPPED, Control, Outcome
from pgship.fleet.targets import FleetSpec, Source, Target, TargetQuery, targets_from_rows
from pgship.history import History, TrackingTable
from pgship.migrations import Discovery, Version
from pgship.output import status_for
from pgship.planner import Plan, State, make_plan
from pgship.runner import Event, Runner, RunOptions

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Connections:
    """How targets are reached: the command's own database and the environment."""

    base_url: str | None  # -d / DATABASE_URL; None: libpq's PG* variables
    environ: Mapping[str, str]
    wait_s: float = 0.0

    def conninfo(self, source: Source, *, database: str | None = None, schema: str | None = None) -> str:
        """The connection string for a source, with the database and search_path of a target."""
        from psycopg.conninfo import make_conninfo

        if source.url_env:
            value = self.environ.get(source.url_env)
            if not value:
                raise DatabaseUnavailable(
                    f"the environment variable {source.url_env} is not set",
                    hint=f"Set {source.url_env} to the target's URL where this command runs (a CI secret).",
                )
            base = value
        elif source.service:
            base = make_conninfo(service=source.service)
        elif source.url:
            base = source.url
        else:
            base = self.base_url or ""
        extra: dict[str, str] = {}
        if database:
            extra["dbname"] = database
        if schema:
            # a startup setting: RESET ALL between migrations returns to it, as for a fresh session
            extra["options"] = f"-c search_path={schema}"
        try:
            return make_conninfo(base, **extra) if extra else base
        except Exception as exc:  # psycopg.ProgrammingError: an unparsable URL
            raise DatabaseUnavailable(
                f"{source.describe()}: not a valid connection string ({redact(str(exc))})",
                hint="Fix the URL or service name.",
            ) from None

    def secrets(self, spec: FleetSpec) -> list[str]:
        """Every password the fleet's connections may carry, so output can scrub them."""
        found = set(passwords_in(self.base_url, environ=dict(self.environ)))
        sources = [t.source for t in spec.targets] + [q.source for q in spec.queries]
        for source in sources:
            if source.url_env and self.environ.get(source.url_env):
                found.update(passwords_in(self.environ[source.url_env], environ={}))
        return sorted(found, key=len, reverse=True)

    def open(self, conninfo: str) -> psycopg.Connection:
        return connect(conninfo, wait_s=self.wait_s)


def location(target: Target, connections: Connections) -> str:
    """Where a target is, for people: ``user@host:port/db`` (never a password) plus its schema."""
    source = target.source
    if source.url_env or source.service or source.url:
        where = source.describe()
        url = connections.environ.get(source.url_env) if source.url_env else source.url
        if url and "://" in url:
            where = describe(url)  # user@host:port/db, never the password
    else:
        where = describe(connections.base_url) if connections.base_url else describe(None)
    if target.database:
        where = (
            f"{where.rsplit('/', 1)[0]}/{target.database}"
            if "/" in where
            else f"{where} db={target.database}"
        )
    return f"{where} schema {target.schema}" if target.schema else where


# -- enumerating --------------------------------------------------------------------
def resolve_targets(spec: FleetSpec, connections: Connections) -> list[Target]:
    """The fleet's targets: the fixed ones, then each query's rows (queries run read-only)."""
    targets = list(spec.targets)
    for query in spec.queries:
        targets += run_query(query, connections)
    names = [t.name for t in targets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(
            f"{spec.origin}: these targets appear twice: {', '.join(repeated[:10])}",
            hint="A database found by a query is also listed as a [[target]], or two queries overlap.",
        )
    return targets


def run_query(query: TargetQuery, connections: Connections) -> list[Target]:
    import psycopg

    conninfo = connections.conninfo(query.source)
    try:
        with connections.open(conninfo) as conn:
            conn.execute("BEGIN READ ONLY")
            cursor = conn.execute(query.sql)  # the fleet's own trusted file
            if cursor.description is None:
                raise UsageError(
                    f"fleet query {query.name!r} returned no rows at all (not a SELECT?)",
                    hint="The query must be a SELECT returning one row per target.",
                )
            columns = [c.name for c in cursor.description]
            rows = cursor.fetchall()
            conn.execute("ROLLBACK")
    except DatabaseUnavailable as error:
        error.message = f"fleet query {query.name!r}: {error.message}"
        raise
    except psycopg.Error as exc:
        diag = getattr(exc, "diag", None)
        message = (diag.message_primary if diag else None) or str(exc).strip().splitlines()[0]
        raise UsageError(
            f"fleet query {query.name!r} failed on {query.source.describe()}: {redact(message)}",
            hint="Fix the query; it runs read-only on the catalog database and returns one row per target.",
        ) from None
    return targets_from_rows(query, columns, rows)


# -- one target -----------------------------------------------------------------------
@dataclass
class TargetRun:
    """What the per-target operations need, shared by every worker (read-only)."""

    connections: Connections
    discovery: Discovery
    table: str  # the command's tracking table name
    options: RunOptions | None = None
    target_version: Version | None = None
    allow_out_of_order: bool = False
    allow_missing: bool = False
    on_event: Callable[[Target, Event], None] | None = None

    def tracking(self, target: Target) -> TrackingTable:
        try:
            return TrackingTable.parse(target.tracking_table(self.table))
        except ValueError as exc:
            raise UsageError(f"target {target.name}: {exc}") from None

    # each operation returns an Outcome and never raises a PgshipError
    def migrate(self, target: Target, control: Control) -> Outcome:
        before: str | None = None
        applied: list[str] = []

        def sink(event: Event) -> None:
            if event.kind == "start" and control.stopping:
                # between two migrations: the one before is committed, the next is not started
                raise Interrupted(
                    f"stopped before {event.data.get('file')}: {control.reason}",
                    hint="Run the same fleet command again to continue where it stopped.",
                )
            if event.kind == "applied":
                applied.append(str(event.data.get("version")))
            if self.on_event is not None:
                self.on_event(target, event)

        try:
            with self._connect(target) as conn:
                runner = Runner(conn, self.tracking(target), options=self.options, on_event=sink)
                history = runner.read_history()
                latest = max((row.version for row in history.rows), default=None)
                before = str(latest) if latest is not None else None
                if self._nothing_to_do(history):
                    # what Runner.migrate concludes from the same read, without reading again: on a
                    # fleet mostly at the release, this read is most of the work
                    return Outcome(
                        target,
                        "up_to_date",
                        0,
                        before,
                        before,
                        details={"already_applied": len(history.rows)},
                    )
                result = runner.migrate(
                    self.discovery,
                    target=self.target_version,
                    allow_out_of_order=self.allow_out_of_order,
                    allow_missing=self.allow_missing,
                )
        except PgshipError as error:
            after = applied[-1] if applied else before
            status = STOPPED if isinstance(error, Interrupted) and control.stopping else status_for(error)
            return Outcome(target, status, int(error.exit_code), before, after, applied, error=_error(error))
        status = "ok" if result.applied else "up_to_date"
        after = result.applied[-1].version if result.applied else before
        return Outcome(
            target,
            status,
            0,
            before,
            after,
            [a.version for a in result.applied],
            result.duration_ms,
            details={"already_applied": result.already_applied, "warnings": result.warnings},
        )

    def _nothing_to_do(self, history: History) -> bool:
        if not history.exists or history.is_legacy:
            return False  # the run creates or upgrades the tracking table
        plan = make_plan(
            self.discovery,
            history,
            target=self.target_version,
            allow_out_of_order=self.allow_out_of_order,
            allow_missing=self.allow_missing,
        )
        return not (plan.to_apply or plan.to_adopt or plan.refusals)

    def status(self, target: Target, control: Control) -> Outcome:
        try:
            with self._connect(target) as conn:
                plan = Runner(conn, self.tracking(target)).plan(self.discovery)
        except DatabaseUnavailable as error:
            return Outcome(target, "unreachable", int(error.exit_code), error=_error(error))
        except PgshipError as error:
            return Outcome(target, "error", int(error.exit_code), error=_error(error))
        latest = str(plan.latest_applied) if plan.latest_applied else None
        health = classify(plan)
        return Outcome(
            target,
            health,
            0 if health == "at_release" else int(ExitCode.OUT_OF_SYNC),
            latest,
            latest,
            details=_plan_details(plan),
        )

    def plan(self, target: Target, control: Control) -> Outcome:
        try:
            with self._connect(target) as conn:
                plan = Runner(conn, self.tracking(target)).plan(
                    self.discovery,
                    target=self.target_version,
                    allow_out_of_order=self.allow_out_of_order,
                    allow_missing=self.allow_missing,
                )
        except PgshipError as error:
            return Outcome(target, status_for(error), int(error.exit_code), error=_error(error))
        latest = str(plan.latest_applied) if plan.latest_applied else None
        would = [str(m.version) for m in plan.to_apply]
        details = {
            **_plan_details(plan),
            "would_apply": would,
            "refusals": [
                {"kind": r.kind, "message": r.message, "versions": r.versions} for r in plan.refusals
            ],
        }
        if plan.refusals:
            first = plan.refusals[0]
            refused = {
                "kind": "refused",
                "message": "; ".join(r.message for r in plan.refusals),
                "hint": first.hint,
            }
            return Outcome(
                target, "refused", int(ExitCode.INVALID), latest, latest, error=refused, details=details
            )
        after = would[-1] if would else latest
        return Outcome(target, "ok" if would else "up_to_date", 0, latest, after, would, details=details)

    def verify(self, target: Target, control: Control) -> Outcome:
        try:
            with self._connect(target) as conn:
                plan = Runner(conn, self.tracking(target)).plan(self.discovery, allow_missing=False)
        except PgshipError as error:
            return Outcome(target, status_for(error), int(error.exit_code), error=_error(error))
        latest = str(plan.latest_applied) if plan.latest_applied else None
        refusals = [r for r in plan.refusals if r.kind != "out_of_order"]
        details = {
            "checked": plan.applied_count,
            "refusals": [{"kind": r.kind, "message": r.message, "versions": r.versions} for r in refusals],
        }
        if refusals:
            refused = {
                "kind": "refused",
                "message": "; ".join(r.message for r in refusals),
                "hint": refusals[0].hint,
            }
            return Outcome(
                target, "failed", int(ExitCode.INVALID), latest, latest, error=refused, details=details
            )
        return Outcome(target, "ok", 0, latest, latest, details=details)

    def _connect(self, target: Target) -> Any:
        conninfo = self.connections.conninfo(target.source, database=target.database, schema=target.schema)
        return self.connections.open(conninfo)


def classify(plan: Plan) -> str:
    """A target's health against the release: at_release, behind, drifted or ahead."""
    if plan.with_state(State.DRIFTED, State.MISSING):
        return "drifted"
    if plan.with_state(State.PENDING, State.OUT_OF_ORDER):
        return "behind"
    if plan.in_sync:
        return "at_release"
    if plan.with_state(State.AHEAD):
        return "ahead"
    return "behind"  # no_checksum: the next migrate records it


def _plan_details(plan: Plan) -> dict[str, Any]:
    counts = {state.value: 0 for state in State}
    for entry in plan.entries:
        counts[entry.state.value] += 1
    return {
        "in_sync": plan.in_sync,
        "summary": counts,
        "pending": [str(e.version) for e in plan.with_state(State.PENDING, State.OUT_OF_ORDER)],
        "drifted": [str(e.version) for e in plan.with_state(State.DRIFTED)],
        "missing": [str(e.version) for e in plan.with_state(State.MISSING)],
    }


def _error(error: PgshipError) -> dict[str, Any]:
    return error.to_dict()


def environment() -> Mapping[str, str]:
    return os.environ


__all__ = ["Connections", "TargetRun", "classify", "location", "resolve_targets", "run_query"]
