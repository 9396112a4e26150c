"""Does the live database have the schema its migrations build? (``pgship diff``)

Three parts, kept apart so each can be used alone: :mod:`~pgship.schema.catalog`
reads a database's schema into a :class:`Snapshot` (the I/O),
:mod:`~pgship.schema.compare` compares two snapshots (pure), and :func:`diff`
ties them to a replay of the migrations (:mod:`pgship.replay`).

A long-running process (the health endpoint) can replay once with
:func:`expected_snapshot` — the shipped migrations do not change while it runs —
and then compare each request's cheap live snapshot with :func:`compare`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pgship.schema.catalog import snapshot
from pgship.schema.compare import compare
from pgship.schema.model import Difference, SchemaDiff, SchemaObject, Snapshot

if TYPE_CHECKING:
    import psycopg

    from pgship.history import TrackingTable
    from pgship.migrations import Discovery, Version
    from pgship.replay import ReplayOptions, ReplayResult
    from pgship.runner import EventSink


def expected_snapshot(
    discovery: Discovery,
    table: TrackingTable,
    options: ReplayOptions | None = None,
    *,
    on_event: EventSink | None = None,
) -> tuple[Snapshot, ReplayResult]:
    """Replay the migrations on an empty database and read the schema they build (about a second)."""
    from pgship.database import connect
    from pgship.replay import replayed

    with replayed(discovery, table, options, on_event=on_event) as done, connect(done.url) as conn:
        return snapshot(conn, done.table), done.result


def live_warnings(
    conn: psycopg.Connection, discovery: Discovery, table: TrackingTable, target: Version | None = None
) -> list[str]:
    """What makes a difference expected rather than a hand-made change: pending or unknown migrations."""
    from pgship import history
    from pgship.planner import State, make_plan

    recorded = history.read(conn, table)
    if not recorded.exists:
        return [
            f"the live database has no tracking table {table}: pgship never migrated it (or it uses another "
            "--table), so differences may just be migrations it never ran (`pgship baseline` adopts a "
            "schema made some other way)"
        ]
    plan = make_plan(discovery, recorded, target=target, allow_out_of_order=True, allow_missing=True)
    warnings = []
    pending = [str(m.version) for m in plan.to_apply]
    if pending:
        compare_applied = (
            f", or compare with what is applied: `pgship diff --target {plan.latest_applied}`"
            if plan.latest_applied
            else ""
        )
        warnings.append(
            f"the live database has {len(pending)} pending migration(s) ({', '.join(pending)}): what they "
            f"create shows below as missing from live. Run `pgship migrate` first{compare_applied}"
        )
    if target is not None and plan.latest_applied is not None and plan.latest_applied > target:
        warnings.append(
            f"the live database is at {plan.latest_applied}, past --target {target}: what the later "
            "migrations created shows below as existing only in live"
        )
    ahead = [str(e.version) for e in plan.with_state(State.AHEAD, State.MISSING)]
    if ahead:
        warnings.append(
            f"the live database has applied migration(s) this directory does not have ({', '.join(ahead)}): "
            "what they created shows below as existing only in live"
        )
    drifted = [e.file.filename for e in plan.with_state(State.DRIFTED) if e.file]
    if drifted:
        warnings.append(
            f"applied migration(s) edited since they ran in live ({', '.join(drifted)}): the replay runs "
            "the edited text, live ran the original"
        )
    return warnings


def diff(
    live_url: str | None,
    discovery: Discovery,
    table: TrackingTable,
    options: ReplayOptions | None = None,
    *,
    wait_s: float = 0.0,
    on_event: EventSink | None = None,
) -> SchemaDiff:
    """Compare the live database at ``live_url`` with a fresh replay of ``discovery``.

    Reads the live database only (one read-only transaction). Raises
    :class:`~pgship.replay.ReplayFailed` if the migrations do not replay.
    """
    from pgship.database import connect

    target = options.target if options else None
    started = time.perf_counter()
    with connect(live_url, wait_s=wait_s) as conn:
        live = snapshot(conn, table)
        live_ms = _ms_since(started)
        warnings = live_warnings(conn, discovery, table, target)
    expected, replay = expected_snapshot(discovery, table, options, on_event=on_event)
    result = compare(live, expected)
    result.warnings[:0] = warnings
    result.warnings += replay.warnings  # what the replay itself could not prove (a shared server's roles)
    result.replay = replay
    result.timings_ms = {"live_snapshot": live_ms, "replay": replay.total_ms, "total": _ms_since(started)}
    return result


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


__all__ = [
    "Difference",
    "SchemaDiff",
    "SchemaObject",
    "Snapshot",
    "compare",
    "diff",
    "expected_snapshot",
    "live_warnings",
    "snapshot",
]
