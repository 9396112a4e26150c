"""The combined report of a fleet run: one table, one JSON document, one Markdown summary. Pure.

Every renderer takes the same :class:`FleetReport`, so the terminal, ``--json`` and the CI summary
always agree. Nothing here connects or prints; the caller scrubs what it writes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pgship.errors import ExitCode
from pgship.fleet.orchestrate import SKIPPED, SUCCESS, FleetRun, Outcome

#: the health counts of ``status --fleet`` (always present, zero or not: monitoring reads them)
HEALTH_STATES = ("at_release", "behind", "drifted", "ahead", "unreachable", "error")


@dataclass
class FleetReport:
    """A finished fleet command, with what it needs to be rendered."""

    command: str
    run: FleetRun
    origin: str
    release: str | None  # the newest migration version in this release's files
    parallel: int
    on_error: str
    shard: str | None = None
    locations: dict[str, str] = field(default_factory=dict)  # target name -> where it is (no password)
    tables: dict[str, str] = field(default_factory=dict)  # target name -> tracking table
    check: bool = False

    # -- summary ---------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(o.status for o in self.run.outcomes)
        if self.command == "status":
            return {state: counts.get(state, 0) for state in HEALTH_STATES}
        return dict(sorted(counts.items()))

    @property
    def failed(self) -> list[Outcome]:
        return self.run.failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.run.skipped and not self.run.interrupted

    def exit_code(self) -> int:
        """0 when every target is fine; else the single-database code they share, else 1."""
        if self.run.interrupted:
            return int(ExitCode.INTERRUPTED)
        failed = self.failed
        if self.command == "status":
            unreachable = [o for o in failed if o.status in ("unreachable", "error")]
            if unreachable:
                codes = {o.exit_code for o in unreachable}
                return codes.pop() if len(codes) == 1 else int(ExitCode.FAILED)
            return int(ExitCode.OUT_OF_SYNC) if (self.check and failed) else 0
        if not failed:
            return int(ExitCode.FAILED) if self.run.skipped else 0
        codes = {o.exit_code for o in failed}
        return codes.pop() if len(codes) == 1 else int(ExitCode.FAILED)

    def status(self) -> str:
        if self.run.interrupted:
            return "interrupted"
        if self.command == "status":
            problems = [o for o in self.failed if o.status != "ahead"]
            return "in_sync" if not problems else "out_of_sync"
        if self.failed:
            return "failed"
        return "incomplete" if self.run.skipped else "ok"

    # -- JSON ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "command": self.command,
            "fleet": {
                "origin": self.origin,
                "targets": len(self.run.outcomes),
                "shard": self.shard,
                "parallel": self.parallel,
                "on_error": self.on_error,
            },
            "release": self.release,
            "status": self.status(),
            "summary": self.counts,
            "failed": [o.target.name for o in self.failed],
            "not_finished": [o.target.name for o in self.run.skipped],
            "stopped_because": self.run.stopped,
            "duration_ms": self.run.duration_ms,
            "targets": [self._target(o) for o in self.run.outcomes],
        }
        if self.command == "status":
            document["in_sync"] = document["status"] == "in_sync"
        return document

    def _target(self, outcome: Outcome) -> dict[str, Any]:
        target = outcome.target
        return {
            "name": target.name,
            "group": target.group,
            "location": self.locations.get(target.name),
            "schema": target.schema,
            "table": self.tables.get(target.name),
            "status": outcome.status,
            "exit_code": outcome.exit_code,
            "version_before": outcome.version_before,
            "version_after": outcome.version_after,
            "applied": outcome.applied,
            "duration_ms": outcome.duration_ms,
            "error": outcome.error,
            **outcome.details,
        }

    # -- text --------------------------------------------------------------------------
    def table_rows(self) -> list[tuple[str, ...]]:
        header = ("TARGET", "GROUP", "STATUS", "VERSION", self._count_header(), "TIME", "ERROR")
        rows: list[tuple[str, ...]] = [header]
        for o in self.run.outcomes:
            rows.append(
                (
                    o.target.name,
                    o.target.group,
                    o.status,
                    _versions(o),
                    self._count(o),
                    f"{o.duration_ms / 1000:.2f} s" if o.status != SKIPPED else "",
                    _one_line((o.error or {}).get("message", "")),
                )
            )
        return rows

    def _count_header(self) -> str:
        return {"migrate": "APPLIED", "plan": "WOULD APPLY", "verify": "CHECKED", "status": "PENDING"}[
            self.command
        ]

    def _count(self, o: Outcome) -> str:
        if self.command == "verify":
            return str(o.details.get("checked", "")) if o.status not in (SKIPPED, "unreachable") else ""
        if self.command == "status":
            return str(len(o.details.get("pending", []))) if "pending" in o.details else ""
        return str(len(o.applied)) if o.status != SKIPPED else ""

    def text(self) -> list[str]:
        rows = self.table_rows()
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
        ]
        lines += ["", self.headline()]
        lines += self.closing()
        return lines

    def headline(self) -> str:
        counts = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in self.counts.items() if n)
        total = len(self.run.outcomes)
        seconds = self.run.duration_ms / 1000
        release = f" (release {self.release})" if self.release else ""
        shard = f", shard {self.shard}" if self.shard else ""
        plural = "s" if total != 1 else ""
        summary = counts or "nothing to do"
        return f"{self.command} on {total} target{plural}{release}{shard} in {seconds:.2f} s: {summary}."

    def closing(self) -> list[str]:
        lines: list[str] = []
        if self.run.stopped:
            lines.append(f"Stopped early: {self.run.stopped}.")
        if self.failed and self.command != "status":
            lines.append(f"Failed: {', '.join(o.target.name for o in self.failed)}.")
        if self.run.skipped:
            lines.append(
                f"Not finished: {', '.join(o.target.name for o in self.run.skipped)}. Run the same command "
                "again to continue: targets already at the release are no-ops."
            )
        elif self.command == "migrate" and self.failed:
            lines.append("Fix the failures and run the same command again: the other targets are no-ops.")
        if self.command == "status":
            behind = [o.target.name for o in self.failed]
            lines.append(
                "Every target is at the release."
                if not behind
                else f"Not at the release: {', '.join(behind)}."
            )
        return lines

    # -- Markdown (a CI job summary) -----------------------------------------------------
    def markdown(self) -> str:
        icon = "✅" if self.ok else ("⏸️" if self.run.interrupted else "❌")
        rows = self.table_rows()
        out = [f"### {icon} pgship {self.command} --fleet", "", self.headline(), ""]
        out.append("| " + " | ".join(rows[0]) + " |")
        out.append("|" + "---|" * len(rows[0]))
        for row in rows[1:]:
            out.append("| " + " | ".join(_md(cell) for cell in row) + " |")
        out += ["", *self.closing(), ""]
        return "\n".join(out)


def _versions(o: Outcome) -> str:
    if o.status == SKIPPED:
        return ""
    before, after = o.version_before or "-", o.version_after or "-"
    return before if before == after else f"{before} -> {after}"


def _one_line(text: str, limit: int = 120) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first if len(first) <= limit else first[: limit - 3] + "..."


def _md(cell: str) -> str:
    return cell.replace("|", "\\|").replace("`", "'")


__all__ = ["HEALTH_STATES", "SUCCESS", "FleetReport"]
