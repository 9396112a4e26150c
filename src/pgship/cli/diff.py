"""``pgship diff``: compare the live database's schema with what the migrations build."""

from __future__ import annotations

import argparse

from pgship.cli.checks import replay_options
from pgship.cli.context import Context
from pgship.cli.options import replay_arguments, wait_option
from pgship.cli.render import render_diff
from pgship.errors import ExitCode, PgshipError, UsageError
from pgship.options import version_text

DESCRIPTION = (
    "Replay the migrations on an empty throwaway database (as verify --replay), read both\n"
    "schemas from the catalogs and compare them object by object: tables, columns, indexes,\n"
    "constraints, views, functions, sequences, types, extensions, policies, triggers. Lists\n"
    "what exists only in live (made by hand?), what is missing from live, and what differs.\n"
    "Reads the live database only. Exit 0 when equal, 5 when they differ."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        metavar="VERSION",
        type=version_text,
        help="replay only up to this version (compare with an older release)",
    )
    replay_arguments(parser, implies_replay=False)
    wait_option(parser)


def run(ctx: Context) -> int:
    from pgship import schema
    from pgship.migrations import require_parsed

    discovery = ctx.discover()
    require_parsed(discovery.migrations)
    if not ctx.settings.has_database:
        raise UsageError(
            "diff compares a live database with the migrations: name the database",
            hint="Pass -d postgresql://user:password@host:5432/dbname or set DATABASE_URL.",
        )
    try:
        result = schema.diff(
            ctx.settings.database_url, discovery, ctx.table, replay_options(ctx), wait_s=ctx.args.wait
        )
    except PgshipError as error:
        error.payload = ctx.header()
        raise
    if ctx.out.as_json:
        document = {**ctx.header(), "status": "equal" if result.equal else "different", **result.to_dict()}
        document["replay_location"] = result.replay.location if result.replay else None
        ctx.out.document(document)
    else:
        render_diff(ctx.out, result, ctx.header()["database"])
    return ExitCode.OK if result.equal else ExitCode.OUT_OF_SYNC
