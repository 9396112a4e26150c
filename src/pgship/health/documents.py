"""The health documents, built from observations without any I/O (layer 1 of :mod:`pgship.health`).

An :class:`Observation` is what one database check saw; :func:`database_report`,
:func:`readiness_report` and :func:`liveness_report` turn it into the
``application/health+json`` documents the endpoints serve. Nothing here talks to
PostgreSQL or imports the web stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pgship.config import HEALTH_CACHE_TTL_S as DEFAULT_CACHE_TTL_S
from pgship.config import HEALTH_CHECK_TIMEOUT_S as DEFAULT_CHECK_TIMEOUT_S
from pgship.history import DEFAULT_TABLE
from pgship.migrations import Discovery
from pgship.planner import Plan, State

MEDIA_TYPE = "application/health+json"
PASS, WARN, FAIL = "pass", "warn", "fail"
_SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}

#: Names of the SQLSTATE classes a health check can meet (PostgreSQL docs, appendix A).
SQLSTATE_CLASSES = {
    "08": "connection exception",
    "0A": "feature not supported",
    "22": "data exception",
    "25": "invalid transaction state",
    "28": "invalid authorization specification",
    "3D": "invalid catalog name",
    "3F": "invalid schema name",
    "40": "transaction rollback",
    "42": "syntax error or access rule violation",
    "53": "insufficient resources",
    "54": "program limit exceeded",
    "55": "object not in prerequisite state",
    "57": "operator intervention",
    "58": "system error",
    "XX": "internal error",
}


@dataclass(frozen=True)
class CheckFailure:
    """Why a database check failed, in terms safe to show anyone."""

    kind: str  # timeout | unreachable | query | not_a_tracking_table
    sqlstate: str | None = None

    @property
    def sqlstate_class(self) -> str | None:
        return self.sqlstate[:2] if self.sqlstate else None

    def describe(self, timeout_s: float) -> str:
        """A generic sentence: what failed, never where or as whom."""
        code = self.sqlstate_class
        suffix = f" (SQLSTATE class {code}: {SQLSTATE_CLASSES.get(code, 'other')})" if code else ""
        if self.kind == "timeout":
            return f"the database did not answer within {timeout_s:g} s{suffix}"
        if self.kind == "unreachable":
            return f"cannot connect to the database{suffix}"
        if self.kind == "not_a_tracking_table":
            return "the configured tracking table has no version column"
        return f"the health query failed{suffix}"


@dataclass(frozen=True)
class Observation:
    """What one database check saw: a plan (files x tracking table), or why there is none."""

    checked_at: datetime
    duration_ms: float
    server_version: str | None = None
    plan: Plan | None = None
    failure: CheckFailure | None = None


@dataclass(frozen=True)
class Release:
    """What this server ships, fixed when it starts: the release id and the migration files."""

    discovery: Discovery
    table: str = DEFAULT_TABLE
    release_id: str | None = None
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S

    @property
    def shipped_count(self) -> int:
        return len(self.discovery.migrations)

    @property
    def latest_shipped(self) -> str | None:
        latest = self.discovery.latest
        return str(latest.version) if latest else None


def worst(*statuses: str) -> str:
    """The overall status: fail beats warn beats pass."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)


def timestamp(moment: datetime) -> str:
    """An RFC 3339 UTC time with milliseconds, as the documents carry it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header(status: str, release: Release) -> dict[str, Any]:
    document: dict[str, Any] = {"status": status}
    if release.release_id:
        document["releaseId"] = release.release_id
    return document


def _versions(plan: Plan, *states: State) -> list[str]:
    return [str(entry.version) for entry in plan.with_state(*states)]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def database_report(observation: Observation, release: Release) -> dict[str, Any]:
    """The detailed document of ``/health/database``."""
    when = timestamp(observation.checked_at)
    connection: dict[str, Any] = {"componentType": "datastore"}
    migrations: dict[str, Any] = {"componentType": "datastore"}
    outputs: list[str] = []
    if observation.failure is not None or observation.plan is None:
        failure = observation.failure or CheckFailure("query")
        reason = failure.describe(release.check_timeout_s)
        connection.update(status=FAIL, output=reason)
        migrations.update(status=FAIL, output="not checked: the database did not answer")
        outputs.append(reason)
        applied: dict[str, Any] = {}
    else:
        plan = observation.plan
        pending = _versions(plan, State.PENDING, State.OUT_OF_ORDER)
        without_file = _versions(plan, State.MISSING, State.AHEAD)
        edited = _versions(plan, State.DRIFTED)
        if pending:
            outputs.append(f"{_plural(len(pending), 'pending migration')}: {', '.join(pending)}")
        if without_file:
            outputs.append(
                f"{_plural(len(without_file), 'applied migration')} with no file in this release: "
                + ", ".join(without_file)
            )
        if edited:
            outputs.append(f"checksum mismatch (edited after it was applied): {', '.join(edited)}")
        status = FAIL if pending else WARN if without_file or edited else PASS
        connection.update(status=PASS, serverVersion=observation.server_version)
        migrations.update(status=status)
        if outputs:
            migrations["output"] = "; ".join(outputs)
        applied = {
            "appliedCount": plan.applied_count,
            "latestApplied": str(plan.latest_applied) if plan.latest_applied else None,
            "pending": pending,
            "appliedWithoutFile": without_file,
            "checksumMismatches": edited,
        }
    connection.update(observedValue=round(observation.duration_ms, 1), observedUnit="ms", time=when)
    migrations.update(
        observedValue=len(applied["pending"]) if applied else None,
        observedUnit="pending migrations",
        time=when,
        table=release.table,
        shippedCount=release.shipped_count,
        latestShipped=release.latest_shipped,
        **applied,
    )
    document = _header(worst(connection["status"], migrations["status"]), release)
    if outputs:
        document["output"] = "; ".join(outputs)
    document["checks"] = {"database:connection": [connection], "database:migrations": [migrations]}
    return document


def readiness_report(detailed: dict[str, Any]) -> dict[str, Any]:
    """``/health``: the same verdict as the detailed document, with statuses only."""
    document: dict[str, Any] = {key: detailed[key] for key in ("status", "releaseId") if key in detailed}
    document["checks"] = {
        name: [{key: entry[key] for key in ("componentType", "status", "time")} for entry in entries]
        for name, entries in detailed["checks"].items()
    }
    return document


def liveness_report(release: Release) -> dict[str, Any]:
    """``/health/live``: answering at all is the whole check."""
    return _header(PASS, release)


def http_status(document: dict[str, Any]) -> int:
    """200 for pass and warn, 503 for fail (what load balancers and orchestrators expect)."""
    return 503 if document["status"] == FAIL else 200


__all__ = [
    "DEFAULT_CACHE_TTL_S",
    "DEFAULT_CHECK_TIMEOUT_S",
    "FAIL",
    "MEDIA_TYPE",
    "PASS",
    "SQLSTATE_CLASSES",
    "WARN",
    "CheckFailure",
    "Observation",
    "Release",
    "database_report",
    "http_status",
    "liveness_report",
    "readiness_report",
    "timestamp",
    "worst",
]
