"""``pgship wait``: wait until the database accepts connections."""

from __future__ import annotations

import argparse
import time

from pgship.cli.context import Context
from pgship.cli.options import seconds_option, wait_option
from pgship.errors import ExitCode

DESCRIPTION = (
    "Poll the database until it accepts a connection (exit 0) or --wait runs out (exit 3).\n"
    "A wrong password, a missing database or role fails at once (exit 6): waiting will not help."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    wait_option(parser, default=60.0)
    # the name of this option before every other command's: still accepted, no longer shown
    seconds_option(parser, "--timeout", dest="wait", default=None, help=argparse.SUPPRESS)


def run(ctx: Context) -> int:
    started = time.monotonic()
    with ctx.connect() as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    waited = time.monotonic() - started
    if ctx.out.as_json:
        ctx.out.document(
            {**ctx.header(), "status": "ok", "waited_s": round(waited, 2), "server_version": version}
        )
    else:
        ctx.out.line(f"The database accepts connections (PostgreSQL {version}, after {waited:.1f} s).")
    return ExitCode.OK
