"""``pgship migrate`` (alias ``up``): apply pending migrations."""

from __future__ import annotations

import argparse
import contextlib

from pgship.cli.checks import with_empty_refusal
from pgship.cli.context import Context
from pgship.cli.options import plan_options, pooler_options, run_options, wait_option
from pgship.cli.render import migrate_payload, render_migrate
from pgship.errors import ExitCode, PgshipError, Refused
from pgship.fleet import commands as fleet
from pgship.options import run_options_from, target_version
from pgship.output import status_for
from pgship.runner import MigrateResult, Runner, hold_signals, raise_refusals

DESCRIPTION = (
    "Apply pending migrations in version order, each in its own transaction with its\n"
    "tracking row. Refuses (exit 2, nothing changed) on invalid files, edited or deleted\n"
    "applied migrations, and pending files older than the newest applied one."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_options(parser)
    wait_option(parser)
    run_options(parser)
    fleet.add_options(parser, "migrate")
    pooler_options(parser)


def newest_applied(runner: Runner, result: MigrateResult) -> str | None:
    """The newest version in the tracking table after a run that applied out-of-order files.

    The last file applied is then not the newest version applied (002 applied after 003).
    """
    if not result.applied:
        return None
    try:
        rows = runner.read_history().rows
    except PgshipError:
        return None
    return str(max(row.version for row in rows)) if rows else None


def run(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "migrate")
    args = ctx.args
    discovery = ctx.discover()
    options = run_options_from(args)
    with ctx.locking_runner(options) as (runner, conn):
        if not discovery.migrations and not args.allow_empty:
            raise_refusals(with_empty_refusal(discovery, ctx.runner(conn).plan(discovery), args))
        try:
            result = runner.migrate(
                discovery,
                target=target_version(args),
                allow_out_of_order=args.allow_out_of_order,
                allow_missing=args.allow_missing,
            )
            hold_signals()  # the run is decided: report it whole; a late signal only changes the exit code
        except PgshipError as error:
            partial = error.partial_result
            if isinstance(partial, MigrateResult) and isinstance(error, Refused) and not partial.applied:
                with contextlib.suppress(Exception):  # refused before counting: count for the report
                    partial.already_applied = len(ctx.runner(conn).read_history().rows)
            if isinstance(partial, MigrateResult):
                if partial.applied and not ctx.out.as_json:
                    ctx.out.stop_progress()
                    ctx.out.line(
                        f"{len(partial.applied)} migration(s) applied before the failure stay applied."
                    )
                partial.warnings = [*discovery.warnings, *partial.warnings]
                payload = {**ctx.header(), **migrate_payload(partial, status_for(error))}
                error.payload = payload
            raise
        latest = newest_applied(ctx.runner(conn), result) if args.allow_out_of_order else None
    for warning in result.warnings:
        ctx.out.warn(warning)
    result.warnings = [*discovery.warnings, *result.warnings]  # in JSON too (printed already as text)
    ctx.out.stop_progress()
    if ctx.out.as_json:
        ctx.out.document({**ctx.header(), **migrate_payload(result, "ok")})
        return ExitCode.OK
    newest = discovery.latest
    render_migrate(ctx.out, result, latest=latest, newest_file=newest.version if newest else None)
    return ExitCode.OK
