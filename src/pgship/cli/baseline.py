"""``pgship baseline VERSION``: record migrations up to VERSION as applied without running them."""

from __future__ import annotations

import argparse

from pgship.cli.context import Context
from pgship.cli.options import pooler_options, wait_option
from pgship.errors import ExitCode, UsageError
from pgship.migrations import Version

DESCRIPTION = (
    "Adopt a database whose schema already exists (made by hand or another tool): record every\n"
    "migration up to VERSION as applied, without running it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("version", help="the version whose schema the database already has")
    wait_option(parser)
    pooler_options(parser)


def run(ctx: Context) -> int:
    try:
        version = Version.parse(ctx.args.version)
    except ValueError as exc:
        raise UsageError(f"baseline: {exc}") from None
    discovery = ctx.discover()
    with ctx.locking_runner() as (runner, _):
        recorded = runner.baseline(discovery, version)
    if ctx.out.as_json:
        ctx.out.document({**ctx.header(), "baseline": str(version), "recorded": recorded, "status": "ok"})
    else:
        ctx.out.line(
            f"Recorded {len(recorded)} migration(s) up to {version} as applied, without running them."
            if recorded
            else f"Nothing to record: every migration up to {version} is already recorded."
        )
    return ExitCode.OK
