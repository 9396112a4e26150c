"""What the commands print: the stable JSON shapes, and the text for people. Pure: results in, lines out.

Every line goes through an :class:`~pgship.output.Output` (scrubbed of secrets, nothing in JSON mode).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pgship.output import Output
from pgship.planner import Plan, State

if TYPE_CHECKING:
    from pgship.migrations import Version
    from pgship.runner import MigrateResult
    from pgship.schema import SchemaDiff


def plan_payload(plan: Plan) -> dict[str, Any]:
    """The stable JSON shape of a comparison (status, plan, verify)."""
    counts = {state.value: 0 for state in State}
    for entry in plan.entries:
        counts[entry.state.value] += 1
    pending = plan.with_state(State.PENDING, State.OUT_OF_ORDER)
    return {
        "in_sync": plan.in_sync,
        "summary": counts,
        "latest_applied": str(plan.latest_applied) if plan.latest_applied else None,
        "pending": [str(e.version) for e in pending],
        "migrations": [
            {
                "version": str(entry.version),
                "name": entry.name,
                "file": entry.file.filename if entry.file else None,
                "state": entry.state.value,
                "applied_at": entry.applied.applied_at.isoformat()
                if entry.applied and entry.applied.applied_at
                else None,
                "execution_ms": entry.applied.execution_ms if entry.applied else None,
                "applied_by": entry.applied.applied_by if entry.applied else None,
                "checksum": entry.file.checksum if entry.file else None,
                "recorded_checksum": entry.applied.checksum if entry.applied else None,
            }
            for entry in plan.entries
        ],
        "warnings": plan.warnings,
    }


def migrate_payload(result: MigrateResult, status: str) -> dict[str, Any]:
    """The stable JSON shape of a migrate run."""
    if status == "ok" and not result.applied:
        status = "up_to_date"
    return {
        "status": status,
        "applied": [asdict(a) for a in result.applied],
        "already_applied": result.already_applied,
        "adopted": result.adopted,
        "table_changes": result.table_changes,
        "tracking_table": result.tracking_table,
        "warnings": result.warnings,
        "duration_ms": result.duration_ms,
    }


#: A lint finding repeated in this many files or more is shown once, with the count and the first files.
LINT_GROUP_FROM = 4
#: Above this many migrations, `status` lists only those not plainly applied (unless --all).
STATUS_LIST_LIMIT = 50
_STATE_NOTES = {
    State.PENDING: "pending",
    State.OUT_OF_ORDER: "out of order",
    State.DRIFTED: "EDITED after apply",
    State.NO_CHECKSUM: "applied (no checksum yet)",
    State.MISSING: "applied, FILE MISSING",
    State.AHEAD: "applied by a newer release",
    State.APPLIED: "applied",
}
_STATE_COUNTS = {  # the summary line under the table: "5 applied, 1 pending, 1 file missing"
    State.APPLIED: "applied",
    State.NO_CHECKSUM: "without checksum (recorded on the next migrate)",
    State.PENDING: "pending",
    State.OUT_OF_ORDER: "out of order",
    State.DRIFTED: "edited after apply",
    State.MISSING: "file missing",
    State.AHEAD: "from a newer release",
}


def render_status(out: Output, plan: Plan, *, listing: str = "auto") -> None:
    """The status table: every row (``all``), pending rows (``pending``), or, for ``auto``, every row
    of a short list and the rows needing attention (not plainly applied) of a long one."""
    if not plan.entries:
        out.line("No migrations: no files and nothing recorded in the database.")
        return
    entries = plan.entries
    not_listed = 0
    if listing == "pending":
        entries = plan.with_state(State.PENDING, State.OUT_OF_ORDER)
    elif listing == "auto" and len(entries) > STATUS_LIST_LIMIT:
        entries = [e for e in entries if e.state != State.APPLIED]
        not_listed = len(plan.entries) - len(entries)
    rows = [("VERSION", "STATE", "APPLIED AT", "MS", "NAME")]
    for entry in entries:
        applied = entry.applied
        rows.append(
            (
                str(entry.version),
                _STATE_NOTES[entry.state],
                applied.applied_at.strftime("%Y-%m-%d %H:%M:%S") if applied and applied.applied_at else "",
                str(applied.execution_ms) if applied and applied.execution_ms is not None else "",
                entry.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    if listing == "pending" and not entries:
        rows = []
        out.line("No pending migrations.")
    for row in rows:
        out.line(
            "  "
            + "  ".join(
                cell.ljust(widths[i]) if i != 3 else cell.rjust(widths[i]) for i, cell in enumerate(row)
            ).rstrip()
        )
    summary = ", ".join(
        f"{len(plan.with_state(state))} {_STATE_COUNTS[state]}" for state in State if plan.with_state(state)
    )
    if not_listed:
        latest = plan.latest_applied
        out.line(
            f"  ({not_listed} applied migrations not listed, up to {latest}; `pgship status --all` lists "
            "every one, `--pending` only the pending ones)"
        )
    out.line()
    out.line(f"{summary}.")
    for warning in plan.warnings:
        out.warn(warning)
    for refusal in plan.refusals:
        out.line(f"migrate would refuse: {refusal.message}\n  {refusal.hint}")
    if plan.in_sync:
        out.line("The database is in sync with the migration files.")
    elif plan.to_apply and not plan.refusals:
        out.line(f"Run `pgship migrate` to apply {len(plan.to_apply)} pending migration(s).")


def render_plan(
    out: Output, plan: Plan, problems: list[Any], findings: list[Any], lint_error: str | None
) -> None:
    if plan.refusals:
        for refusal in plan.refusals:
            out.line(f"migrate would refuse: {refusal.message}\n  {refusal.hint}")
    if problems:
        out.line("migrate would refuse: problems in pending files:")
        for problem in problems:
            out.line(f"  {problem.location()}: {problem.message}\n      fix: {problem.fix}")
    if plan.to_apply:
        out.line(f"migrate would apply {len(plan.to_apply)} migration(s), in this order:")
        for migration in plan.to_apply:
            out.line(f"  {migration.filename}")
    elif not plan.refusals:
        out.line("Nothing to apply: the database is up to date.")
    for warning in plan.warnings:
        out.warn(warning)
    render_findings(out, findings, lint_error)


def render_diff(out: Output, result: SchemaDiff, database: str) -> None:
    """A schema comparison for people: one line per difference, then what to do."""
    for warning in result.warnings:
        out.warn(warning)
    replay = result.replay
    source = (
        f"the migrations replayed on an empty database ({replay.location}, {replay.applied} "
        f"migrations, {replay.total_ms / 1000:.2f} s)"
        if replay
        else "the migrations"
    )
    compared = sum(result.migrations_counts.values())
    if result.equal:
        where = f"; replayed on {replay.location}" if replay else ""
        out.line(
            f"The live database ({database}) has the schema the migrations build "
            f"({compared} objects compared{where})."
        )
        return
    out.line(f"Compared the live database ({database}) with {source}.")
    count = len(result.differences)
    out.line(f"{count} difference{'s' if count != 1 else ''}:")
    for difference in result.differences:
        out.line(f"  {difference.message}")
        for line in difference.detail:
            out.line(f"      {line}")
    out.line()
    out.line(
        "To fix: undo the manual change in the live database, or keep it by writing a migration that "
        "makes it (pgship new NAME), apply it, and run `pgship diff` again."
    )


def render_findings(out: Output, findings: list[Any], lint_error: str | None) -> None:
    if lint_error:
        out.warn(f"lint skipped: {lint_error}")
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for finding in findings:  # the same finding in many files is one line, not thousands
        groups.setdefault((finding.rule, finding.message, finding.help or ""), []).append(finding)
    for (rule, message, help_text), found in groups.items():
        if len(found) <= LINT_GROUP_FROM - 1:
            for finding in found:
                out.line(f"lint: {finding.file}:{finding.line}:{finding.column}: {message} [{rule}]")
        else:
            shown = ", ".join(f"{f.file}:{f.line}" for f in found[:3])
            out.line(
                f"lint: {message} [{rule}] in {len(found):,} files: {shown}, and {len(found) - 3:,} more "
                "(`--json` lists every one)"
            )
        if help_text:
            out.line(f"      {help_text}")


def render_migrate(
    out: Output, result: MigrateResult, *, latest: str | None = None, newest_file: Version | None = None
) -> None:
    """The closing line of a migrate run (``latest``: the newest version applied, when it is not the
    last file applied; ``newest_file``: the newest file in the directory)."""
    seconds = result.duration_ms / 1000
    if result.applied:
        out.line(
            f"Applied {len(result.applied)} migration{'s' if len(result.applied) != 1 else ''} "
            f"in {seconds:.2f} s ({result.already_applied} already applied). "
            f"Database is at version {latest or result.applied[-1].version}."
        )
    else:
        at = f" at version {newest_file}" if newest_file and result.already_applied else ""
        out.line(
            f"Nothing to apply: the database is up to date{at} ({result.already_applied} migrations applied)."
        )


__all__ = [
    "LINT_GROUP_FROM",
    "STATUS_LIST_LIMIT",
    "migrate_payload",
    "plan_payload",
    "render_diff",
    "render_findings",
    "render_migrate",
    "render_plan",
    "render_status",
]
