"""``pgship status``: every migration and its state."""

from __future__ import annotations

import argparse

from pgship.cli.context import Context
from pgship.cli.options import wait_option
from pgship.cli.render import STATUS_LIST_LIMIT, plan_payload, render_status
from pgship.errors import ExitCode
from pgship.fleet import commands as fleet
from pgship.planner import State

DESCRIPTION = (
    "List every version with its state: applied, pending, out_of_order, drifted (file edited\n"
    "after it was applied), no_checksum (applied by an older runner), missing (file deleted)\n"
    "or ahead (applied by a newer release). Changes nothing."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="exit 5 unless the database matches the files")
    listing = parser.add_mutually_exclusive_group()
    listing.add_argument(
        "--pending",
        action="store_true",
        help="list only pending migrations (in JSON too); counts stay complete",
    )
    listing.add_argument(
        "--all",
        action="store_true",
        help=f"list every migration even when there are more than {STATUS_LIST_LIMIT} (by default a long "
        "list shows only the migrations that are not plainly applied, with a count of the others)",
    )
    wait_option(parser)
    fleet.add_options(parser, "status")


def run(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "status")
    discovery = ctx.discover()
    with ctx.connect() as conn:
        plan = ctx.runner(conn).plan(discovery)
    if ctx.out.as_json:
        payload = {**ctx.header(), **plan_payload(plan)}
        if ctx.args.pending:
            pending = {str(e.version) for e in plan.with_state(State.PENDING, State.OUT_OF_ORDER)}
            payload["migrations"] = [m for m in payload["migrations"] if m["version"] in pending]
        ctx.out.document(payload)
    else:
        listing = "pending" if ctx.args.pending else ("all" if ctx.args.all else "auto")
        render_status(ctx.out, plan, listing=listing)
    if ctx.args.check and not plan.in_sync:
        return ExitCode.OUT_OF_SYNC
    return ExitCode.OK
