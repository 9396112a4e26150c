"""``pgship verify``: check the migration files (and, with a database, their checksums; with
``--replay``, that they rebuild the schema from nothing). The checks make one result, rendered once."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pgship.cli.checks import lint_files, replay_options, replay_wanted, with_empty_refusal
from pgship.cli.context import Context
from pgship.cli.options import allow_empty_option, lint_options, replay_arguments, wait_option
from pgship.cli.render import plan_payload, render_findings
from pgship.errors import ExitCode, PgshipError
from pgship.fleet import commands as fleet
from pgship.output import Output

if TYPE_CHECKING:
    from pgship.migrations import Discovery
    from pgship.planner import Plan
    from pgship.replay import ReplayResult

DESCRIPTION = (
    "Parse every migration file and report every problem with file and line. With a database\n"
    "(-d or DATABASE_URL), also check that applied migrations were not edited or deleted.\n"
    "With --replay, also apply every migration to an empty throwaway database, with the same\n"
    "rules as migrate, and report the first file that fails there (exit 1): a set that no\n"
    "longer rebuilds the schema from nothing breaks every new environment."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-database", action="store_true", help="check the files only, even if a URL is set"
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="also replay every migration on an empty database (embedded PostgreSQL unless --replay-url)",
    )
    allow_empty_option(parser)
    replay_arguments(parser, implies_replay=True)
    lint_options(parser, default_on=False)
    wait_option(parser)
    fleet.add_options(parser, "verify")


@dataclass
class Verification:
    """What verify found: the files, the database's comparison (if one was checked), lint, replay."""

    discovery: Discovery
    plan: Plan | None
    refusals: list[dict[str, Any]]
    findings: list[Any]
    lint_error: str | None
    strict_lint: bool
    replay: ReplayResult | None = None

    @property
    def failed(self) -> bool:
        return bool(self.refusals) or bool(self.strict_lint and self.findings)

    @property
    def latest(self) -> str | None:
        latest = self.discovery.latest
        return str(latest.version) if latest else None

    def payload(self, header: dict[str, Any], *, with_status: bool = True) -> dict[str, Any]:
        payload: dict[str, Any] = {**header, "files": len(self.discovery.migrations), "latest": self.latest}
        if self.plan is not None:
            payload.update(plan_payload(self.plan))
            payload["refusals"] = self.refusals
        else:
            payload["database"] = None
        payload["lint"] = [f.to_dict() for f in self.findings]
        payload["lint_error"] = self.lint_error
        if with_status:
            payload["status"] = "failed" if self.failed else "ok"
        if self.replay is not None:
            payload["replay"] = self.replay.to_dict()
        return payload


def render_verification(out: Output, result: Verification) -> None:
    from pgship.migrations import printable_name

    discovery = result.discovery
    if discovery.migrations:
        out.line(f"{len(discovery.migrations)} migration files are valid (newest {result.latest}).")
    else:
        out.line(f"Nothing to check: no migration files in {printable_name(str(discovery.directory))}.")
    plan = result.plan
    if plan is not None and not result.refusals and plan.applied_count:
        out.line(f"Applied migrations match their files ({plan.applied_count} checked).")
    elif plan is not None and not result.refusals:
        out.line("The database has no applied migration yet: nothing to compare.")
    for refusal in result.refusals:
        out.line(f"error: {refusal['message']}\n  {refusal['hint']}")
    render_findings(out, result.findings, result.lint_error)
    if result.replay is not None:
        out.line(result.replay.summary())


def run(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "verify")
    from pgship.migrations import discover_and_parse

    args = ctx.args
    discovery, scripts = discover_and_parse(ctx.settings.migrations_dir)  # every problem in one run
    for warning in discovery.warnings:
        ctx.out.warn(warning)
    plan: Plan | None = None
    refusals: list[dict[str, Any]] = []
    if ctx.settings.has_database and not args.no_database:
        with ctx.connect() as conn:
            plan = with_empty_refusal(discovery, ctx.runner(conn).plan(discovery, allow_missing=False), args)
        refusals = [asdict(r) for r in plan.refusals if r.kind != "out_of_order"]
    findings, lint_error = lint_files(discovery.migrations, scripts) if args.lint else ([], None)
    result = Verification(discovery, plan, refusals, findings, lint_error, strict_lint=args.lint_strict)
    if replay_wanted(args):
        from pgship.replay import replay

        try:
            result.replay = replay(discovery, ctx.table, replay_options(ctx))
        except BaseException as error:
            render_verification(ctx.out, result)  # what was checked stands; the error follows
            if isinstance(error, PgshipError):  # the error's own status: failed, invalid, unreachable...
                error.payload = result.payload(ctx.header(), with_status=False)
            raise
    render_verification(ctx.out, result)
    ctx.out.document(result.payload(ctx.header()))
    return ExitCode.INVALID if result.failed else ExitCode.OK
