"""``pgship repair``: accept the current checksum of edited migrations."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from pgship.cli.context import Context
from pgship.cli.options import pooler_options, wait_option
from pgship.errors import ExitCode
from pgship.output import Output

DESCRIPTION = (
    "For the rare deliberate edit of an applied migration (a comment, formatting): record the\n"
    "files' current checksums, listing each change. Never re-runs anything."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forget-missing",
        action="store_true",
        help="also delete tracking rows of applied migrations whose files were deleted",
    )
    wait_option(parser)
    pooler_options(parser)


def render_repair(out: Output, changes: list[Any]) -> None:
    if not changes:
        out.line("Nothing to repair: every applied migration matches its file.")
    for change in changes:
        if change.action == "forgotten":
            out.line(f"  forgot   {change.version} (file deleted; its schema changes stay in the database)")
        else:
            old = (change.old_checksum or "none")[:12]
            out.line(f"  accepted {change.file}: checksum {old} -> {(change.new_checksum or '')[:12]}")


def run(ctx: Context) -> int:
    discovery = ctx.discover()
    with ctx.locking_runner() as (runner, _):
        changes = runner.repair(discovery, forget_missing=ctx.args.forget_missing)
    if ctx.out.as_json:
        ctx.out.document({**ctx.header(), "changes": [asdict(c) for c in changes], "status": "ok"})
    else:
        render_repair(ctx.out, changes)
    return ExitCode.OK
