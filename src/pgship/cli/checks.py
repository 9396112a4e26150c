"""Steps several commands share: the empty-directory refusal, the squawk lint, the replay's options."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pgship import config
from pgship.database import check_url, passwords_in
from pgship.options import target_version
from pgship.planner import Plan, empty_directory_refusal

if TYPE_CHECKING:
    from pgship.cli.context import Context
    from pgship.migrations import Discovery
    from pgship.replay import ReplayOptions


def with_empty_refusal(discovery: Discovery, plan: Plan, args: argparse.Namespace) -> Plan:
    """Add the refusal of an empty directory on a migrated database, unless --allow-empty."""
    refusal = None if getattr(args, "allow_empty", False) else empty_directory_refusal(discovery, plan)
    if refusal is not None:
        plan.refusals.append(refusal)
    return plan


#: Why a lint was skipped when squawk is missing: it comes with the optional extra.
LINT_MISSING = "squawk is not installed: pip install 'pgship[lint]'"


def lint_or_reason(migrations: list[Any], no_transaction: set[str]) -> tuple[list[Any], str | None]:
    """squawk's findings on ``migrations``, and why the lint was skipped (squawk missing), if it was.

    ``no_transaction``: the file names marked ``-- pgship:no-transaction``."""
    from pgship.lint import LintUnavailable, lint, squawk_binary

    try:
        return lint(migrations, no_transaction), None
    except LintUnavailable as exc:
        return [], LINT_MISSING if squawk_binary() is None else str(exc)


def lint_files(migrations: list[Any], scripts: dict[Any, Any]) -> tuple[list[Any], str | None]:
    """:func:`lint_or_reason` for parsed files (``scripts``: their analysis, by version)."""
    no_transaction = {
        m.filename for m in migrations if m.version in scripts and scripts[m.version].no_transaction
    }
    return lint_or_reason(migrations, no_transaction)


def replay_options(ctx: Context) -> ReplayOptions:
    """The replay options of verify and diff; the replay URL's password joins the secrets to scrub."""
    from pgship.replay import ReplayOptions

    url = config.replay_url(ctx.args.replay_url)
    ctx.out.secrets = sorted({*ctx.out.secrets, *passwords_in(url, environ={})}, key=len, reverse=True)
    check_url(url)
    live = ctx.settings.database_url if ctx.settings.has_database else None
    return ReplayOptions(
        url=url,
        pg_version=ctx.args.replay_pg_version,
        match_url=None if getattr(ctx.args, "no_database", False) else live,
        target=target_version(ctx.args),
        roles=tuple(ctx.args.replay_role),
    )


def replay_wanted(args: argparse.Namespace) -> bool:
    """Whether the command line asks for a replay (--replay, or an option that implies it)."""
    return bool(getattr(args, "replay", False) or args.replay_url or args.replay_pg_version)


__all__ = [
    "LINT_MISSING",
    "lint_files",
    "lint_or_reason",
    "replay_options",
    "replay_wanted",
    "with_empty_refusal",
]
