"""The ``pgship`` command line: parse arguments, call the library, render the result, exit.

No decisions are made here beyond choosing what to call; every command exists
as library functions (``pgship.migrations``, ``pgship.runner``...) that tests
and the specification can use directly.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pgship import __version__, config
from pgship.database import ConnectAttempt, check_url, connect, describe, passwords_in
from pgship.errors import ExitCode, Interrupted, InvalidMigrations, PgshipError, Refused, UsageError
from pgship.fleet import commands as fleet
from pgship.history import TrackingTable
from pgship.lease import DEFAULT_TTL_S as DEFAULT_LEASE_TTL_S
from pgship.migrations import TEMPLATE_NAME, Discovery, Version, discover, next_version, validate_new_name
from pgship.options import (
    major_version,
    retry_count,
    run_options_from,
    target_version,
    timeout_seconds,
    wait_seconds,
)
from pgship.output import Output, library_output, status_for
from pgship.planner import Plan, State, empty_directory_refusal
from pgship.runner import (
    Event,
    MigrateResult,
    Runner,
    RunOptions,
    hold_signals,
    raise_refusals,
    release_held_signals,
)

if TYPE_CHECKING:
    from pgship.locking import ConnectionChoice
    from pgship.replay import ReplayOptions
    from pgship.schema import SchemaDiff

DESCRIPTION = """\
Ship PostgreSQL schema changes forward, safely.

pgship applies <version>_<description>.sql files in version order, each in its
own transaction together with its row in the tracking table, under an advisory
lock so two deploys never collide. Edited, deleted or out-of-order migrations
stop the run before anything changes.
"""

EPILOG = """\
settings: flags > environment (DATABASE_URL or PG* variables, PGSHIP_MIGRATIONS_DIR,
PGSHIP_TABLE) > [tool.pgship] in pyproject.toml (migrations_dir, table).

exit codes: 0 ok, 1 a migration or stage failed, 2 invalid input or refused (nothing
changed), 3 database unreachable within the wait (worth retrying), 4 lock not acquired,
5 not in sync (status --check, diff), 6 the database refused the connection for good
(wrong password, no such database or role, a refused parameter: do not retry),
7 review --fail-on threshold crossed, 130 interrupted.

examples:
  pgship status                      what is applied, what is pending
  pgship migrate --wait 60           wait up to 60 s for the database, then apply
  pgship new add_orders_table        create the next migration from TEMPLATE.sql
  pgship --json status --check       machine-readable; exit 5 if not in sync
"""


# -- argument parsing --------------------------------------------------------------
def _global_options(parser: argparse.ArgumentParser) -> None:
    """Options accepted before or after the command: `pgship --json status` = `pgship status --json`."""
    group = parser.add_argument_group("global options")
    suppress = argparse.SUPPRESS
    group.add_argument(
        "-d",
        "--database-url",
        metavar="URL",
        default=suppress,
        help="PostgreSQL URL (default: DATABASE_URL, else libpq's PG* variables)",
    )
    group.add_argument(
        "-m",
        "--migrations-dir",
        metavar="DIR",
        default=suppress,
        help=f"directory of migration files (default: {config.DEFAULT_MIGRATIONS_DIR})",
    )
    group.add_argument(
        "--table",
        metavar="NAME",
        default=suppress,
        help="tracking table, optionally schema-qualified (default: schema_migrations)",
    )
    group.add_argument(
        "--json", action="store_true", default=suppress, help="print one JSON document instead of text"
    )


def _wait_option(parser: argparse.ArgumentParser, default: float = 0.0) -> None:
    parser.add_argument(
        "--wait",
        type=wait_seconds,
        default=default,
        metavar="SECONDS",
        help=f"wait up to SECONDS for the database to accept connections (default: {default:g})",
    )


def _plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="VERSION", help="apply only up to this version (inclusive)")
    parser.add_argument(
        "--allow-out-of-order",
        action="store_true",
        help="apply pending files older than the newest applied version instead of refusing",
    )
    parser.add_argument(
        "--allow-missing", action="store_true", help="run even though applied migrations' files were deleted"
    )
    _allow_empty_option(parser)


def _allow_empty_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept a migrations directory with no files although the database has applied migrations "
        "(refused by default: the directory is probably the wrong one)",
    )


def _replay_arguments(parser: argparse.ArgumentParser, *, implies_replay: bool) -> None:
    implies = ". Implies --replay" if implies_replay else ""
    parser.add_argument(
        "--replay-url",
        metavar="URL",
        default=None,
        help="replay in a scratch database on this server (created, then dropped; needs CREATEDB) "
        "instead of an embedded PostgreSQL; default: PGSHIP_REPLAY_URL if set" + implies,
    )
    parser.add_argument(
        "--pg-version",
        "--replay-pg-version",
        dest="replay_pg_version",
        type=major_version,
        metavar="N",
        default=None,
        help="replay on an embedded PostgreSQL N (14-18, with the contrib extensions pgcrypto, uuid-ossp, "
        "pg_trgm, citext, hstore, ltree, btree_gist, btree_gin, ...); default: the live database's major "
        "when there is one, else 16" + implies,
    )
    parser.add_argument(
        "--replay-role",
        action="append",
        default=[],
        metavar="NAME",
        help="create this role on the replay server first, for migrations that GRANT to it (repeatable)",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """How patient a migration run is (migrate, deploy)."""
    parser.add_argument(
        "--lock-wait",
        type=wait_seconds,
        default=RunOptions.lock_wait_s,
        metavar="SECONDS",
        help="wait this long for another run's lock, then exit 4 (default: %(default)g)",
    )
    parser.add_argument(
        "--lock-timeout",
        type=timeout_seconds,
        default=RunOptions.lock_timeout_s,
        metavar="SECONDS",
        help="lock_timeout for a migration's first attempt; doubled on each retry (default: %(default)g)",
    )
    parser.add_argument(
        "--lock-retries",
        type=retry_count,
        default=RunOptions.lock_retries,
        metavar="N",
        help="retries after a lock timeout (default: %(default)d)",
    )
    parser.add_argument(
        "--statement-timeout",
        type=timeout_seconds,
        default=None,
        metavar="SECONDS",
        help="statement_timeout for migrations (default: none)",
    )


def add_pooler_options(parser: argparse.ArgumentParser) -> None:
    """Working through a connection pooler (migrate, baseline, repair)."""
    parser.add_argument(
        "--direct-url",
        metavar="URL",
        default=None,
        help="an address that reaches PostgreSQL without the pooler; when the database URL goes through "
        "a transaction pooler, the lock and the migrations run on it (default: PGSHIP_DIRECT_URL if set)",
    )
    parser.add_argument(
        "--lease-ttl",
        type=timeout_seconds,
        default=DEFAULT_LEASE_TTL_S,
        metavar="SECONDS",
        help="through a transaction pooler without --direct-url, the run locks with a lease row renewed "
        "in the background; a runner that dies blocks the next one for at most this long "
        "(default: %(default)g)",
    )


def _lint_options(parser: argparse.ArgumentParser, *, default_on: bool) -> None:
    if default_on:
        parser.add_argument("--no-lint", dest="lint", action="store_false", help="skip the squawk lint")
    else:
        parser.add_argument("--lint", action="store_true", help="also lint the files with squawk")
    parser.add_argument("--lint-strict", action="store_true", help="lint findings fail the command (exit 2)")


class BadArguments(Exception):
    """The command line cannot be parsed (raised instead of argparse's print-and-exit)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse, except that an error is raised, so ``main`` reports it like any bad input (JSON too)."""

    def error(self, message: str) -> NoReturn:
        raise BadArguments(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pgship",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgship {__version__}")
    _global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        name: str, summary: str, description: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            aliases=list(aliases),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _global_options(sub)
        sub.set_defaults(command=name)
        return sub

    status = add(
        "status",
        "show every migration and its state",
        "List every version with its state: applied, pending, out_of_order, drifted (file edited\n"
        "after it was applied), no_checksum (applied by an older runner), missing (file deleted)\n"
        "or ahead (applied by a newer release). Changes nothing.",
    )
    status.add_argument("--check", action="store_true", help="exit 5 unless the database matches the files")
    listing = status.add_mutually_exclusive_group()
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
    _wait_option(status)
    fleet.add_options(status, "status")

    migrate = add(
        "migrate",
        "apply pending migrations",
        "Apply pending migrations in version order, each in its own transaction with its\n"
        "tracking row. Refuses (exit 2, nothing changed) on invalid files, edited or deleted\n"
        "applied migrations, and pending files older than the newest applied one.",
        aliases=["up"],
    )
    _plan_options(migrate)
    _wait_option(migrate)
    add_run_options(migrate)
    fleet.add_options(migrate, "migrate")
    add_pooler_options(migrate)

    plan = add(
        "plan",
        "show what migrate would do, without changing anything",
        "Compare the files with the database, check the pending files and lint them with squawk.\n"
        "Exit 2 when migrate would refuse.",
    )
    _plan_options(plan)
    _wait_option(plan)
    _lint_options(plan, default_on=True)
    fleet.add_options(plan, "plan")

    verify = add(
        "verify",
        "check the migration files (and, with a database, their checksums)",
        "Parse every migration file and report every problem with file and line. With a database\n"
        "(-d or DATABASE_URL), also check that applied migrations were not edited or deleted.\n"
        "With --replay, also apply every migration to an empty throwaway database, with the same\n"
        "rules as migrate, and report the first file that fails there (exit 1): a set that no\n"
        "longer rebuilds the schema from nothing breaks every new environment.",
    )
    verify.add_argument(
        "--no-database", action="store_true", help="check the files only, even if a URL is set"
    )
    verify.add_argument(
        "--replay",
        action="store_true",
        help="also replay every migration on an empty database (embedded PostgreSQL unless --replay-url)",
    )
    _allow_empty_option(verify)
    _replay_arguments(verify, implies_replay=True)
    _lint_options(verify, default_on=False)
    _wait_option(verify)
    fleet.add_options(verify, "verify")

    diff = add(
        "diff",
        "compare the live database's schema with what the migrations build",
        "Replay the migrations on an empty throwaway database (as verify --replay), read both\n"
        "schemas from the catalogs and compare them object by object: tables, columns, indexes,\n"
        "constraints, views, functions, sequences, types, extensions, policies, triggers. Lists\n"
        "what exists only in live (made by hand?), what is missing from live, and what differs.\n"
        "Reads the live database only. Exit 0 when equal, 5 when they differ.",
    )
    diff.add_argument(
        "--target", metavar="VERSION", help="replay only up to this version (compare with an older release)"
    )
    _replay_arguments(diff, implies_replay=False)
    _wait_option(diff)

    new = add(
        "new",
        "create the next migration file from the template",
        f"Create <next version>_NAME.sql from {TEMPLATE_NAME} in the migrations directory (or a\n"
        "built-in template). The version is one more than the newest, with the same width.",
    )
    new.add_argument("name", help="what the migration does, e.g. add_orders_table")

    baseline = add(
        "baseline",
        "record migrations up to VERSION as applied without running them",
        "Adopt a database whose schema already exists (made by hand or another tool): record every\n"
        "migration up to VERSION as applied, without running it.",
    )
    baseline.add_argument("version", help="the version whose schema the database already has")
    _wait_option(baseline)
    add_pooler_options(baseline)

    repair = add(
        "repair",
        "accept the current checksum of edited migrations",
        "For the rare deliberate edit of an applied migration (a comment, formatting): record the\n"
        "files' current checksums, listing each change. Never re-runs anything.",
    )
    repair.add_argument(
        "--forget-missing",
        action="store_true",
        help="also delete tracking rows of applied migrations whose files were deleted",
    )
    _wait_option(repair)
    add_pooler_options(repair)

    wait = add(
        "wait",
        "wait until the database accepts connections",
        "Poll the database until it accepts a connection (exit 0) or --wait runs out (exit 3).\n"
        "A wrong password, a missing database or role fails at once (exit 6): waiting will not help.",
    )
    _wait_option(wait, default=60.0)
    # the name of this option before every other command's: still accepted, no longer shown
    wait.add_argument("--timeout", dest="wait", type=wait_seconds, help=argparse.SUPPRESS)

    for extension in _EXTENSIONS:
        extension(add)
    return parser


# -- commands ----------------------------------------------------------------------
class Context:
    """What every command gets: parsed arguments, resolved settings and the output."""

    def __init__(self, args: argparse.Namespace, settings: config.Settings, out: Output) -> None:
        self.args = args
        self.settings = settings
        self.out = out
        self.connection: ConnectionChoice | None = None  # how a locking command reached the server

    @property
    def table(self) -> TrackingTable:
        try:
            return TrackingTable.parse(self.settings.table)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def discover(self) -> Discovery:
        discovery = discover(self.settings.migrations_dir)
        for warning in discovery.warnings:
            self.out.warn(warning)
        return discovery

    def connect(self, wait_s: float | None = None) -> Any:
        wait = getattr(self.args, "wait", 0.0) if wait_s is None else wait_s

        def on_retry(attempt: ConnectAttempt) -> None:
            if attempt.attempt == 1 or attempt.attempt % 5 == 0:
                self.out.warn(
                    f"database not ready ({attempt.error.splitlines()[0]}); retrying for "
                    f"{attempt.remaining_s:.0f} s more"
                )

        return connect(
            self.settings.database_url, wait_s=wait, on_retry=on_retry, named=self.settings.has_database
        )

    @contextlib.contextmanager
    def locking_runner(self, options: RunOptions | None = None) -> Iterator[tuple[Runner, Any]]:
        """A runner for a command that takes the migration lock, and its connection (see
        :func:`pgship.locking.locking_runner`: direct, through a pooler, or refused)."""
        from pgship.locking import DIRECT_URL_ENV, locking_runner

        def chosen(choice: ConnectionChoice) -> None:
            self.connection = choice
            if choice.note and not self.out.as_json:
                self.out.line(choice.note)

        with (
            self.connect() as conn,
            locking_runner(
                conn,
                url=self.settings.database_url,
                direct_url=getattr(self.args, "direct_url", None) or os.environ.get(DIRECT_URL_ENV) or None,
                table=self.table,
                lease_ttl_s=getattr(self.args, "lease_ttl", DEFAULT_LEASE_TTL_S),
                make_runner=lambda c, **locking: self.runner(c, options, **locking),
                on_choice=chosen,
                named=self.settings.has_database,
                wait_s=getattr(self.args, "wait", 0.0),
            ) as (runner, used),
        ):
            yield runner, used

    def runner(self, conn: Any, options: RunOptions | None = None, **locking: Any) -> Runner:
        target = describe(self.settings.database_url)

        def on_event(event: Event) -> None:
            if event.kind == "plan":  # name the database before changing it: logs show where it ran
                table = event.data.get("table", self.settings.table)  # resolved: schema-qualified
                event = Event("plan", f"{target} ({table}): {event.message}", event.data)
            self.out.event(event)
            for message in event.data.get("messages", ()) if event.kind == "applied" else ():
                self.out.line(f"    {message['severity']}: {message['message']}")  # RAISE WARNING/NOTICE

        return Runner(conn, self.table, options=options, on_event=on_event, **locking)

    def header(self) -> dict[str, Any]:
        header = {
            "command": self.args.command,
            "database": describe(self.settings.database_url),
            "table": str(self.settings.table),
            "migrations_dir": str(self.settings.migrations_dir),
        }
        if self.connection is not None:
            header["connection"] = self.connection.to_json()
        return header


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


def _with_empty_refusal(discovery: Discovery, plan: Plan, args: argparse.Namespace) -> Plan:
    """Add the refusal of an empty directory on a migrated database, unless --allow-empty."""
    refusal = None if getattr(args, "allow_empty", False) else empty_directory_refusal(discovery, plan)
    if refusal is not None:
        plan.refusals.append(refusal)
    return plan


def cmd_status(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "status")
    discovery = ctx.discover()
    with ctx.connect() as conn:
        plan = ctx.runner(conn).plan(discovery)
    payload = {**ctx.header(), **plan_payload(plan)}
    if ctx.args.pending:
        pending = {str(e.version) for e in plan.with_state(State.PENDING, State.OUT_OF_ORDER)}
        payload["migrations"] = [m for m in payload["migrations"] if m["version"] in pending]
    if ctx.out.as_json:
        ctx.out.document(payload)
    else:
        listing = "pending" if ctx.args.pending else ("all" if ctx.args.all else "auto")
        render_status(ctx.out, plan, listing=listing)
    if ctx.args.check and not plan.in_sync:
        return ExitCode.OUT_OF_SYNC
    return ExitCode.OK


def cmd_migrate(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "migrate")
    args = ctx.args
    discovery = ctx.discover()
    options = run_options_from(args)
    with ctx.locking_runner(options) as (runner, conn):
        if not discovery.migrations and not args.allow_empty:
            raise_refusals(_with_empty_refusal(discovery, ctx.runner(conn).plan(discovery), args))
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
    seconds = result.duration_ms / 1000
    if result.applied:
        ctx.out.line(
            f"Applied {len(result.applied)} migration{'s' if len(result.applied) != 1 else ''} "
            f"in {seconds:.2f} s ({result.already_applied} already applied). "
            f"Database is at version {latest or result.applied[-1].version}."
        )
    else:
        newest = discovery.latest
        at = f" at version {newest.version}" if newest and result.already_applied else ""
        ctx.out.line(
            f"Nothing to apply: the database is up to date{at} ({result.already_applied} migrations applied)."
        )
    return ExitCode.OK


def cmd_plan(ctx: Context) -> int:
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
    _with_empty_refusal(discovery, plan, args)
    problems: list[Any] = []
    scripts: dict[Any, Any] = {}
    try:
        scripts = require_parsed(plan.to_apply)
    except InvalidMigrations as error:
        problems = error.problems
    findings, lint_error = _lint(ctx, plan.to_apply, scripts) if args.lint else ([], None)
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


def cmd_verify(ctx: Context) -> int:
    if fleet.wanted(ctx.args):
        return fleet.run(ctx, "verify")
    from pgship.migrations import discover_and_parse, printable_name

    args = ctx.args
    discovery, scripts = discover_and_parse(ctx.settings.migrations_dir)  # every problem in one run
    for warning in discovery.warnings:
        ctx.out.warn(warning)
    payload: dict[str, Any] = {
        **ctx.header(),
        "files": len(discovery.migrations),
        "latest": str(discovery.latest.version) if discovery.latest else None,
    }
    plan: Plan | None = None
    if ctx.settings.has_database and not args.no_database:
        with ctx.connect() as conn:
            plan = _with_empty_refusal(discovery, ctx.runner(conn).plan(discovery, allow_missing=False), args)
        payload.update(plan_payload(plan))
        payload["refusals"] = [asdict(r) for r in plan.refusals if r.kind != "out_of_order"]
    else:
        payload["database"] = None
    findings, lint_error = _lint(ctx, discovery.migrations, scripts) if args.lint else ([], None)
    payload["lint"] = [f.to_dict() for f in findings]
    payload["lint_error"] = lint_error
    refusals = payload.get("refusals", [])
    failed = bool(refusals) or bool(args.lint_strict and findings)
    payload["status"] = "failed" if failed else "ok"
    if not ctx.out.as_json:
        if discovery.migrations:
            ctx.out.line(
                f"{len(discovery.migrations)} migration files are valid (newest {payload['latest']})."
            )
        else:
            where = printable_name(str(discovery.directory))
            ctx.out.line(f"Nothing to check: no migration files in {where}.")
        if plan is not None and not refusals and plan.applied_count:
            ctx.out.line(f"Applied migrations match their files ({plan.applied_count} checked).")
        elif plan is not None and not refusals:
            ctx.out.line("The database has no applied migration yet: nothing to compare.")
        for refusal in refusals:
            ctx.out.line(f"error: {refusal['message']}\n  {refusal['hint']}")
        _render_findings(ctx.out, findings, lint_error)
    if args.replay or args.replay_url or args.replay_pg_version:
        payload["replay"] = _verify_replay(ctx, discovery, payload)
    ctx.out.document(payload)
    return ExitCode.INVALID if failed else ExitCode.OK


def _replay_options(ctx: Context) -> ReplayOptions:
    """The replay options of verify and diff; the replay URL's password joins the secrets to scrub."""
    import os

    from pgship.replay import ReplayOptions

    url = ctx.args.replay_url or os.environ.get("PGSHIP_REPLAY_URL") or None
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


def _verify_replay(ctx: Context, discovery: Discovery, payload: dict[str, Any]) -> dict[str, Any]:
    from pgship.replay import replay

    try:
        result = replay(discovery, ctx.table, _replay_options(ctx))
    except PgshipError as error:
        payload.pop("status")  # the error's own status: failed, invalid, unreachable...
        error.payload = payload
        raise
    ctx.out.line(result.summary())
    return result.to_dict()


def cmd_diff(ctx: Context) -> int:
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
            ctx.settings.database_url, discovery, ctx.table, _replay_options(ctx), wait_s=ctx.args.wait
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


def cmd_new(ctx: Context) -> int:
    from datetime import date

    name = ctx.args.name
    reason = validate_new_name(name)
    if reason:
        raise UsageError(reason, hint="Example: pgship new add_orders_table")
    directory = ctx.settings.migrations_dir
    created_dir = False
    if not directory.exists():
        directory.mkdir(parents=True)
        created_dir = True
    discovery = ctx.discover()
    version = next_version(discovery)
    path = directory / f"{version}_{name}.sql"
    template_path = directory / TEMPLATE_NAME
    template = template_path.read_text(encoding="utf-8") if template_path.is_file() else BUILTIN_TEMPLATE
    text = (
        template.replace("{{version}}", version)
        .replace("{{name}}", name)
        .replace("{{date}}", date.today().isoformat())
    )
    path.write_text(text, encoding="utf-8")
    payload = {
        **ctx.header(),
        "version": version,
        "file": str(path),
        "template": str(template_path) if template_path.is_file() else "built-in",
        "created_directory": created_dir,
    }
    if ctx.out.as_json:
        ctx.out.document(payload)
    else:
        ctx.out.line(f"Created {_relative(path)}")
        ctx.out.line("Write the schema change in it, then check it with `pgship verify` and `pgship plan`.")
    return ExitCode.OK


def _relative(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter, and what people type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def cmd_baseline(ctx: Context) -> int:
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


def cmd_repair(ctx: Context) -> int:
    discovery = ctx.discover()
    with ctx.locking_runner() as (runner, _):
        changes = runner.repair(discovery, forget_missing=ctx.args.forget_missing)
    if ctx.out.as_json:
        ctx.out.document({**ctx.header(), "changes": [asdict(c) for c in changes], "status": "ok"})
        return ExitCode.OK
    if not changes:
        ctx.out.line("Nothing to repair: every applied migration matches its file.")
    for change in changes:
        if change.action == "forgotten":
            ctx.out.line(
                f"  forgot   {change.version} (file deleted; its schema changes stay in the database)"
            )
        else:
            old = (change.old_checksum or "none")[:12]
            ctx.out.line(f"  accepted {change.file}: checksum {old} -> {(change.new_checksum or '')[:12]}")
    return ExitCode.OK


def cmd_wait(ctx: Context) -> int:
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


BUILTIN_TEMPLATE = """\
-- {{version}}_{{name}}: <one line on what this changes and why>
--
-- pgship runs this whole file in one transaction, together with its row in the
-- tracking table: if any statement fails, nothing of it is applied.
-- * Never edit this file once it is applied anywhere; write a new migration.
-- * Keep it small: one schema change per migration.
-- * Build indexes on existing tables with CREATE INDEX CONCURRENTLY, in a file of
--   its own whose first line is: -- pgship:no-transaction
-- * Add NOT NULL columns with a DEFAULT, or in steps (expand, backfill, contract).

"""


# -- rendering ---------------------------------------------------------------------
def plan_payload(plan: Plan) -> dict[str, Any]:
    """The stable JSON shape of a comparison (status, plan, verify)."""
    counts = {state.value: 0 for state in State}
    for entry in plan.entries:
        counts[entry.state.value] += 1
    pending = plan.with_state(State.PENDING, State.OUT_OF_ORDER)
    return {
        "in_sync": plan.in_sync,
        "summary": counts,
        "latest_applied": str(plan.latest_applied) if plan.latest_applied else None,
        "pending": [str(e.version) for e in pending],
        "migrations": [
            {
                "version": str(entry.version),
                "name": entry.name,
                "file": entry.file.filename if entry.file else None,
                "state": entry.state.value,
                "applied_at": entry.applied.applied_at.isoformat()
                if entry.applied and entry.applied.applied_at
                else None,
                "execution_ms": entry.applied.execution_ms if entry.applied else None,
                "applied_by": entry.applied.applied_by if entry.applied else None,
                "checksum": entry.file.checksum if entry.file else None,
                "recorded_checksum": entry.applied.checksum if entry.applied else None,
            }
            for entry in plan.entries
        ],
        "warnings": plan.warnings,
    }


def migrate_payload(result: MigrateResult, status: str) -> dict[str, Any]:
    """The stable JSON shape of a migrate run."""
    if status == "ok" and not result.applied:
        status = "up_to_date"
    return {
        "status": status,
        "applied": [asdict(a) for a in result.applied],
        "already_applied": result.already_applied,
        "adopted": result.adopted,
        "table_changes": result.table_changes,
        "tracking_table": result.tracking_table,
        "warnings": result.warnings,
        "duration_ms": result.duration_ms,
    }


#: A lint finding repeated in this many files or more is shown once, with the count and the first files.
LINT_GROUP_FROM = 4
#: Above this many migrations, `status` lists only those not plainly applied (unless --all).
STATUS_LIST_LIMIT = 50
_STATE_NOTES = {
    State.PENDING: "pending",
    State.OUT_OF_ORDER: "out of order",
    State.DRIFTED: "EDITED after apply",
    State.NO_CHECKSUM: "applied (no checksum yet)",
    State.MISSING: "applied, FILE MISSING",
    State.AHEAD: "applied by a newer release",
    State.APPLIED: "applied",
}
_STATE_COUNTS = {  # the summary line under the table: "5 applied, 1 pending, 1 file missing"
    State.APPLIED: "applied",
    State.NO_CHECKSUM: "without checksum (recorded on the next migrate)",
    State.PENDING: "pending",
    State.OUT_OF_ORDER: "out of order",
    State.DRIFTED: "edited after apply",
    State.MISSING: "file missing",
    State.AHEAD: "from a newer release",
}


def render_status(out: Output, plan: Plan, *, listing: str = "auto") -> None:
    """The status table: every row (``all``), pending rows (``pending``), or, for ``auto``, every row
    of a short list and the rows needing attention (not plainly applied) of a long one."""
    if not plan.entries:
        out.line("No migrations: no files and nothing recorded in the database.")
        return
    entries = plan.entries
    not_listed = 0
    if listing == "pending":
        entries = plan.with_state(State.PENDING, State.OUT_OF_ORDER)
    elif listing == "auto" and len(entries) > STATUS_LIST_LIMIT:
        entries = [e for e in entries if e.state != State.APPLIED]
        not_listed = len(plan.entries) - len(entries)
    rows = [("VERSION", "STATE", "APPLIED AT", "MS", "NAME")]
    for entry in entries:
        applied = entry.applied
        rows.append(
            (
                str(entry.version),
                _STATE_NOTES[entry.state],
                applied.applied_at.strftime("%Y-%m-%d %H:%M:%S") if applied and applied.applied_at else "",
                str(applied.execution_ms) if applied and applied.execution_ms is not None else "",
                entry.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    if listing == "pending" and not entries:
        rows = []
        out.line("No pending migrations.")
    for row in rows:
        out.line(
            "  "
            + "  ".join(
                cell.ljust(widths[i]) if i != 3 else cell.rjust(widths[i]) for i, cell in enumerate(row)
            ).rstrip()
        )
    summary = ", ".join(
        f"{len(plan.with_state(state))} {_STATE_COUNTS[state]}" for state in State if plan.with_state(state)
    )
    if not_listed:
        latest = plan.latest_applied
        out.line(
            f"  ({not_listed} applied migrations not listed, up to {latest}; `pgship status --all` lists "
            "every one, `--pending` only the pending ones)"
        )
    out.line()
    out.line(f"{summary}.")
    for warning in plan.warnings:
        out.warn(warning)
    for refusal in plan.refusals:
        out.line(f"migrate would refuse: {refusal.message}\n  {refusal.hint}")
    if plan.in_sync:
        out.line("The database is in sync with the migration files.")
    elif plan.to_apply and not plan.refusals:
        out.line(f"Run `pgship migrate` to apply {len(plan.to_apply)} pending migration(s).")


def render_plan(
    out: Output, plan: Plan, problems: list[Any], findings: list[Any], lint_error: str | None
) -> None:
    if plan.refusals:
        for refusal in plan.refusals:
            out.line(f"migrate would refuse: {refusal.message}\n  {refusal.hint}")
    if problems:
        out.line("migrate would refuse: problems in pending files:")
        for problem in problems:
            out.line(f"  {problem.location()}: {problem.message}\n      fix: {problem.fix}")
    if plan.to_apply:
        out.line(f"migrate would apply {len(plan.to_apply)} migration(s), in this order:")
        for migration in plan.to_apply:
            out.line(f"  {migration.filename}")
    elif not plan.refusals:
        out.line("Nothing to apply: the database is up to date.")
    for warning in plan.warnings:
        out.warn(warning)
    _render_findings(out, findings, lint_error)


def render_diff(out: Output, result: SchemaDiff, database: str) -> None:
    """A schema comparison for people: one line per difference, then what to do."""
    for warning in result.warnings:
        out.warn(warning)
    replay = result.replay
    source = (
        f"the migrations replayed on an empty database ({replay.location}, {replay.applied} "
        f"migrations, {replay.total_ms / 1000:.2f} s)"
        if replay
        else "the migrations"
    )
    compared = sum(result.migrations_counts.values())
    if result.equal:
        where = f"; replayed on {replay.location}" if replay else ""
        out.line(
            f"The live database ({database}) has the schema the migrations build "
            f"({compared} objects compared{where})."
        )
        return
    out.line(f"Compared the live database ({database}) with {source}.")
    count = len(result.differences)
    out.line(f"{count} difference{'s' if count != 1 else ''}:")
    for difference in result.differences:
        out.line(f"  {difference.message}")
        for line in difference.detail:
            out.line(f"      {line}")
    out.line()
    out.line(
        "To fix: undo the manual change in the live database, or keep it by writing a migration that "
        "makes it (pgship new NAME), apply it, and run `pgship diff` again."
    )


def _render_findings(out: Output, findings: list[Any], lint_error: str | None) -> None:
    if lint_error:
        out.warn(f"lint skipped: {lint_error}")
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for finding in findings:  # the same finding in many files is one line, not thousands
        groups.setdefault((finding.rule, finding.message, finding.help or ""), []).append(finding)
    for (rule, message, help_text), found in groups.items():
        if len(found) <= LINT_GROUP_FROM - 1:
            for finding in found:
                out.line(f"lint: {finding.file}:{finding.line}:{finding.column}: {message} [{rule}]")
        else:
            shown = ", ".join(f"{f.file}:{f.line}" for f in found[:3])
            out.line(
                f"lint: {message} [{rule}] in {len(found):,} files: {shown}, and {len(found) - 3:,} more "
                "(`--json` lists every one)"
            )
        if help_text:
            out.line(f"      {help_text}")


def _lint(ctx: Context, migrations: list[Any], scripts: dict[Any, Any]) -> tuple[list[Any], str | None]:
    from pgship.lint import LintUnavailable, lint

    no_transaction = {
        m.filename for m in migrations if m.version in scripts and scripts[m.version].no_transaction
    }
    try:
        return lint(migrations, no_transaction), None
    except LintUnavailable as exc:
        return [], str(exc)


COMMANDS: dict[str, Callable[[Context], int]] = {
    "status": cmd_status,
    "migrate": cmd_migrate,
    "plan": cmd_plan,
    "verify": cmd_verify,
    "diff": cmd_diff,
    "new": cmd_new,
    "baseline": cmd_baseline,
    "repair": cmd_repair,
    "wait": cmd_wait,
}
#: Functions that add more subcommands (serve, deploy) and register them in COMMANDS.
_EXTENSIONS: list[Callable[[Callable[..., argparse.ArgumentParser]], None]] = []


def register_command(
    name: str,
    add_parser: Callable[[Callable[..., argparse.ArgumentParser]], None],
    handler: Callable[[Context], int],
) -> None:
    """Add a subcommand from another module: ``add_parser(add)`` builds its parser, ``handler`` runs it."""
    COMMANDS[name] = handler
    _EXTENSIONS.append(add_parser)


# -- entry point -------------------------------------------------------------------
def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run() -> None:
    """The console script: a short-lived process, so the cyclic garbage collector stays off.

    Discovery and planning allocate thousands of small objects that live until exit; the collector
    would walk them repeatedly (about 10 ms at 1000 migrations) to free nothing. ``pgship serve``
    turns it back on: it runs for days.
    """
    gc.disable()
    try:
        code = main(for_process=True)
    except KeyboardInterrupt:  # landed between main's handlers and here: the command had finished
        code = int(ExitCode.INTERRUPTED)
    hold_signals()  # interpreter shutdown restores the default handlers: a SIGTERM then would give 143
    if release_held_signals():
        print("pgship: interrupted after the command completed; its report above stands", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    hold_signals()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)  # no interpreter shutdown: nothing is left to clean up, and no window for SIG_DFL


def main(argv: Sequence[str] | None = None, *, for_process: bool = False) -> int:
    """Run one pgship command; returns the exit code.

    ``for_process``: this process ends with the command, so what libraries print while it exits
    (finalizers of connections) stays routed through the scrubber.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except BadArguments as bad:
        return _bad_arguments(bad, list(sys.argv[1:] if argv is None else argv))
    as_json = bool(getattr(args, "json", False))
    out = Output(as_json=as_json)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # ValueError: not the main thread (in-process use)
            signal.signal(signal.SIGTERM, _raise_interrupt)
    with library_output(out, debug=_debug(), restore=not for_process):
        return _run_command(args, out)


def _run_command(args: argparse.Namespace, out: Output) -> int:
    try:
        settings = config.resolve(
            database_url=getattr(args, "database_url", None),
            migrations_dir=getattr(args, "migrations_dir", None),
            table=getattr(args, "table", None),
        )
        out.secrets = passwords_in(settings.database_url)
        direct = getattr(args, "direct_url", None) or os.environ.get("PGSHIP_DIRECT_URL")
        if direct:  # the pooler's way around: its password is as secret as the main one
            out.secrets = sorted({*out.secrets, *passwords_in(direct, environ={})}, key=len, reverse=True)
        if args.command != "new" and not getattr(args, "no_database", False):
            check_url(settings.database_url)  # a malformed URL is bad input (exit 2), before anything runs
        ctx = Context(args, settings, out)
        code = int(COMMANDS[args.command](ctx))
        if release_held_signals():
            out.warn("interrupted after the run completed: everything reported above is done")
            return int(ExitCode.INTERRUPTED)
        return code
    except PgshipError as error:
        out.error(error, getattr(error, "payload", None) or {"command": args.command})
        return int(error.exit_code)
    except KeyboardInterrupt:
        interrupted = Interrupted(
            "interrupted", hint="Nothing in flight was committed. Run the command again."
        )
        out.error(interrupted, {"command": args.command})
        return int(interrupted.exit_code)
    except Exception as exc:
        if _debug():
            raise
        out.stop_progress()
        unexpected = PgshipError(
            f"unexpected {type(exc).__name__}: {exc}",
            hint="This is a bug in pgship; rerun with PGSHIP_DEBUG=1 for a traceback and report it.",
        )
        out.error(unexpected, {"command": args.command})
        return int(ExitCode.FAILED)
    finally:
        out.stop_progress()


def _bad_arguments(bad: BadArguments, argv: list[str]) -> int:
    """An unparsable command line: usage and the reason (or a JSON document), exit 2, nothing run."""
    import os

    secrets = {secret for arg in argv for secret in passwords_in(arg, environ={})}
    out = Output(as_json="--json" in argv, secrets=[*secrets, *passwords_in(None, os.environ)])
    if not out.as_json:
        out.stderr.write(out.clean(bad.parser.format_usage()))
    command = next((arg for arg in argv if arg in COMMANDS), None)
    error = UsageError(
        f"{bad.parser.prog}: {bad.message}", hint=f"See `{bad.parser.prog} --help`. Nothing was run."
    )
    out.error(error, {"command": command})
    return int(ExitCode.INVALID)


def _debug() -> bool:
    import os

    return os.environ.get("PGSHIP_DEBUG") == "1"


# serve and deploy register themselves through _EXTENSIONS (imported last: they use this module)
from pgship import cli_release  # noqa: E402, F401
from pgship.review import command as review_command  # noqa: E402

review_command.register(register_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["COMMANDS", "Context", "build_parser", "main"]
