"""``pgship plan``: what migrate would do, without changing anything."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from pgship.cli.checks import lint_files, with_empty_refusal
from pgship.cli.context import Context
from pgship.cli.options import lint_options, plan_options, wait_option
from pgship.cli.render import plan_payload, render_plan
from pgship.errors import ExitCode, InvalidMigrations
from pgship.fleet import commands as fleet
from pgship.options import target_version

DESCRIPTION = (
    "Compare the files with the database, check the pending files and lint them with squawk.\n"
    "Exit 2 when migrate would refuse."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    plan_options(parser)
    wait_option(parser)
    lint_options(parser, default_on=True)
    fleet.add_options(parser, "plan")


def run(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "plan")
    from pgship.migrations import require_parsed

    args = ctx.args
    discovery = ctx.discover()
    with ctx.connect() as conn:
        plan = ctx.runner(conn).plan(
            discovery,
            target=target_version(args),
            allow_out_of_order=args.allow_out_of_order,
            allow_missing=args.allow_missing,
        )
    with_empty_refusal(discovery, plan, args)
    problems: list[Any] = []
    scripts: dict[Any, Any] = {}
    try:
        scripts = require_parsed(plan.to_apply)
    except InvalidMigrations as error:
        problems = error.problems
    findings, lint_error = lint_files(plan.to_apply, scripts) if args.lint else ([], None)
    refused = bool(plan.refusals or problems)
    failed_lint = bool(args.lint_strict and findings)
    payload = {
        **ctx.header(),
        **plan_payload(plan),
        "would_apply": [
            {
                "version": str(m.version),
                "file": m.filename,
                "no_transaction": bool(scripts.get(m.version) and scripts[m.version].no_transaction),
            }
            for m in plan.to_apply
        ],
        "refusals": [asdict(r) for r in plan.refusals],
        "problems": [p.to_dict() for p in problems],
        "lint": [f.to_dict() for f in findings],
        "lint_error": lint_error,
        "status": "refused" if refused else ("lint_failed" if failed_lint else "ok"),
    }
    if ctx.out.as_json:
        ctx.out.document(payload)
    else:
        render_plan(ctx.out, plan, problems, findings, lint_error)
    return ExitCode.INVALID if refused or failed_lint else ExitCode.OK
