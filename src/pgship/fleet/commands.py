"""``pgship migrate|status|plan|verify --fleet``: the options, and one command run over every target.

The command modules of ``pgship.cli`` add these options to their four commands and hand over to
:func:`run` when a fleet is asked for; everything else a fleet needs lives in this package, imported
only then (adding the options and :func:`wanted` stay cheap for a single-database run).
"""

from __future__ import annotations

import argparse
import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgship import config
from pgship.errors import ExitCode, UsageError
from pgship.options import run_options_from, target_version

if TYPE_CHECKING:
    from pgship.fleet.orchestrate import Outcome
    from pgship.fleet.report import FleetReport
    from pgship.fleet.targets import FleetSpec, Target
    from pgship.output import Output

DEFAULT_PARALLEL = 4
FLEET_COMMANDS = ("migrate", "status", "plan", "verify")


def add_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The fleet flags of ``command`` (one of :data:`FLEET_COMMANDS`)."""
    group = parser.add_argument_group(
        "fleet (many databases)",
        f"Run {command} on every target of a fleet: the canary group first and alone, then the other "
        "groups (waves) in order, N targets at a time, each exactly as a single-database run, then one "
        "combined report. Exit 0 when every target is fine, 1 listing those that failed (or the code "
        "they all share).",
    )
    group.add_argument(
        "--fleet",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help=f"the fleet file (default: ./{config.FLEET_FILE}, else [tool.pgship.fleet] in pyproject.toml)",
    )
    group.add_argument(
        "--fleet-query",
        metavar="SQL",
        default=None,
        help="targets are the rows of this query on the command's database (columns database and/or "
        "schema; optional name, group); implies --fleet",
    )
    group.add_argument(
        "--parallel",
        type=_positive,
        default=DEFAULT_PARALLEL,
        metavar="N",
        help="targets at a time, one connection each (default: %(default)d)",
    )
    if command == "migrate":
        group.add_argument(
            "--on-error",
            choices=("stop", "continue"),
            default="stop",
            help="stop: after a failure no new target starts (those in flight finish their current "
            "migration); continue: try every target (default: %(default)s). A failed canary always stops.",
        )
    group.add_argument(
        "--shard",
        metavar="K/N",
        default=None,
        help="only the K-th of N slices of the targets (stable hash of the name), for CI matrices",
    )
    group.add_argument(
        "--markdown",
        metavar="FILE",
        default=None,
        help="also write the report as Markdown (default when $GITHUB_STEP_SUMMARY is set: appended there)",
    )


def wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for a fleet run."""
    return getattr(args, "fleet", None) is not None or bool(getattr(args, "fleet_query", None))


def run(ctx: Any, command: str) -> int:
    """Run ``command`` on every target; render the combined report; return the exit code."""
    from pgship.fleet import execute
    from pgship.fleet.orchestrate import Control, run_waves
    from pgship.fleet.report import FleetReport
    from pgship.fleet.targets import parse_shard, plan_waves, select_shard

    gc.enable()  # a fleet run creates and drops a connection per target: keep memory flat
    args, out = ctx.args, ctx.out
    spec = load_spec(args, Path.cwd())
    shard = parse_shard(args.shard) if args.shard else None
    connections = execute.Connections(
        ctx.settings.database_url, os.environ, wait_s=getattr(args, "wait", 0.0)
    )
    out.secrets = sorted({*out.secrets, *connections.secrets(spec)}, key=len, reverse=True)
    discovery = ctx.discover()
    if command == "verify":
        from pgship.migrations import require_parsed

        require_parsed(discovery.migrations)
    version = target_version(args) if command in ("migrate", "plan") else None
    if version is not None and version not in discovery.by_version():
        raise UsageError(
            f"--target {version}: there is no migration file with that version",
            hint="Pick a version listed by `pgship status`.",
        )
    targets = execute.resolve_targets(spec, connections)
    if shard:
        targets = select_shard(targets, *shard)
    waves = plan_waves(targets, spec.groups, spec.canary)
    work = execute.TargetRun(
        connections,
        discovery,
        ctx.settings.table,
        options=run_options_from(args) if command == "migrate" else None,
        target_version=version,
        allow_out_of_order=bool(getattr(args, "allow_out_of_order", False)),
        allow_missing=bool(getattr(args, "allow_missing", False)),
    )
    on_error = getattr(args, "on_error", "continue") if command == "migrate" else "continue"
    progress = LiveProgress(out, command, len(targets))
    if not out.as_json:
        shown = f", shard {args.shard}" if shard else ""
        out.line(
            f"{command} on {len(targets)} target(s) from {spec.origin}{shown}: "
            + ", ".join(f"{w.group}{' (canary)' if w.canary else ''} {len(w.targets)}" for w in waves)
            + f"; {args.parallel} at a time"
        )
    try:
        fleet_run = run_waves(
            waves,
            getattr(work, command),
            parallel=args.parallel,
            on_error=on_error,
            on_progress=progress.update,
            control=Control(on_stop=progress.stopping, on_second_interrupt=progress.abandon),
        )
    finally:
        progress.close()
    report = FleetReport(
        command,
        fleet_run,
        spec.origin,
        str(discovery.latest.version) if discovery.latest else None,
        args.parallel,
        on_error,
        shard=args.shard if shard else None,
        locations={t.name: execute.location(t, connections) for t in targets},
        tables={t.name: t.tracking_table(ctx.settings.table) for t in targets},
        check=bool(getattr(args, "check", False)),
    )
    render(out, report, args.markdown, {"migrations_dir": str(ctx.settings.migrations_dir)})
    return report.exit_code()


def load_spec(args: argparse.Namespace, cwd: Path) -> FleetSpec:
    """The fleet asked for: ``--fleet-query``, ``--fleet FILE``, ``./pgship.fleet.toml`` or pyproject."""
    from pgship.fleet.targets import fleet_from_pyproject, query_spec, read_fleet_file

    if args.fleet_query:
        if args.fleet:
            raise UsageError("--fleet FILE and --fleet-query both name the targets", hint="Use one of them.")
        return query_spec(args.fleet_query)
    if args.fleet:
        path = Path(args.fleet)
        return read_fleet_file(path if path.is_absolute() else cwd / path)
    if (cwd / config.FLEET_FILE).is_file():
        return read_fleet_file(cwd / config.FLEET_FILE)
    spec = fleet_from_pyproject(cwd / "pyproject.toml") if (cwd / "pyproject.toml").is_file() else None
    if spec is None:
        raise UsageError(
            f"--fleet: no {config.FLEET_FILE} here and no [tool.pgship.fleet] in pyproject.toml",
            hint=f"Create {config.FLEET_FILE} (see docs/DEPLOYMENT.md, Many databases), "
            "pass --fleet FILE, or enumerate targets with --fleet-query SQL.",
        )
    return spec


def render(
    out: Output, report: FleetReport, markdown: str | None, extra: dict[str, Any] | None = None
) -> None:
    if out.as_json:
        out.document({**report.to_dict(), **(extra or {})})
    else:
        out.line()
        for line in report.text():
            out.line(line)
    summary = report.markdown()
    targets = [Path(markdown)] if markdown else []
    step_summary = config.step_summary()
    if step_summary is not None:
        targets.append(step_summary)
    for path in targets:
        try:
            with path.open("a", encoding="utf-8") as handle:
                handle.write(out.clean(summary) + "\n")
        except OSError as exc:
            out.warn(f"could not write the Markdown report to {path}: {exc.strerror or exc}")


class LiveProgress:
    """Targets done, failed and in flight: a live bar on a terminal, one line per target otherwise."""

    def __init__(self, out: Output, command: str, total: int) -> None:
        self.out = out
        self.command = command
        self.total = total
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self._bar: Any = None
        self._task: Any = None
        if out.interactive and total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn(f"[bold]{command}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=total)

    def update(self, kind: str, target: Target, outcome: Outcome | None) -> None:
        # called by the orchestrator under its lock: one update at a time
        if kind == "start":
            self.in_flight += 1
        elif outcome is not None:
            self.in_flight -= 1
            self.done += 1
            self.failed += int(outcome.failed)
            if self._bar is None:
                self.out.line(self._line(target, outcome))
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.done,
                description=f"{self.failed} failed, {self.in_flight} in flight",
            )
            self._bar.refresh()  # the counts first, then the failure's line above the bar
            if outcome is not None and outcome.failed:
                self._bar.console.print(
                    self.out.clean(self._line(target, outcome)), markup=False, highlight=False
                )

    def stopping(self, reason: str) -> None:
        """Say at once that the run is stopping (on stderr, in JSON mode too: people wait on it)."""
        message = (
            f"pgship: stopping ({reason}): no new target starts; targets in flight finish the migration "
            "they are applying"
        )
        if self._bar is not None:
            self._bar.console.print(self.out.clean(message), markup=False, highlight=False)
        else:
            print(self.out.clean(message), file=self.out.stderr, flush=True)

    def abandon(self) -> None:
        """A second Ctrl-C: leave now. PostgreSQL rolls back the migrations in flight (each commits
        with its tracking row, so nothing is left half-recorded); the rerun applies them again."""
        self.close()
        print(
            self.out.clean(
                "pgship: interrupted again: leaving without waiting; PostgreSQL rolls back the migrations "
                "in flight (a -- pgship:no-transaction one keeps the statements it completed). Run the same "
                "command again to continue."
            ),
            file=self.out.stderr,
            flush=True,
        )
        os._exit(int(ExitCode.INTERRUPTED))

    def _line(self, target: Target, outcome: Outcome) -> str:
        versions = outcome.version_before or "-"
        if outcome.version_after != outcome.version_before:
            versions += f" -> {outcome.version_after or '-'}"
        error = (outcome.error or {}).get("message", "") if outcome.failed else ""
        count = f", {len(outcome.applied)} applied" if self.command == "migrate" else ""
        tail = f": {error.splitlines()[0]}" if error else ""
        return (
            f"  [{self.done}/{self.total}] {outcome.status:<11} {target.name}  ({versions}{count}, "
            f"{outcome.duration_ms / 1000:.2f} s){tail}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


__all__ = ["DEFAULT_PARALLEL", "FLEET_COMMANDS", "add_options", "load_spec", "render", "run", "wanted"]
