"""The options several commands share, each defined once (the types they check: :mod:`pgship.options`)."""

from __future__ import annotations

import argparse

from pgship import config
from pgship.options import major_version, retry_count, timeout_seconds, version_text, wait_seconds


def global_options(parser: argparse.ArgumentParser) -> None:
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


#: The global options that take a value: the command's name is the first word that is not one of them.
GLOBAL_VALUE_OPTIONS = ("-d", "--database-url", "-m", "--migrations-dir", "--table")


def seconds_option(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    default: float | None,
    help: str,
    timeout: bool = False,
    dest: str | None = None,
) -> None:
    """A duration in seconds: a wait (0 allowed) or, with ``timeout``, a timeout (at least 1 ms)."""
    action = parser.add_argument(
        flag,
        type=timeout_seconds if timeout else wait_seconds,
        default=default,
        metavar="SECONDS",
        help=help,
    )
    if dest:
        action.dest = dest


def wait_option(parser: argparse.ArgumentParser, default: float = 0.0) -> None:
    seconds_option(
        parser,
        "--wait",
        default=default,
        help=f"wait up to SECONDS for the database to accept connections (default: {default:g})",
    )


def plan_options(parser: argparse.ArgumentParser) -> None:
    """Which pending migrations a run takes (migrate, plan, deploy)."""
    parser.add_argument(
        "--target", metavar="VERSION", type=version_text, help="apply only up to this version (inclusive)"
    )
    parser.add_argument(
        "--allow-out-of-order",
        action="store_true",
        help="apply pending files older than the newest applied version instead of refusing",
    )
    parser.add_argument(
        "--allow-missing", action="store_true", help="run even though applied migrations' files were deleted"
    )
    allow_empty_option(parser)


def allow_empty_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="accept a migrations directory with no files although the database has applied migrations "
        "(refused by default: the directory is probably the wrong one)",
    )


def pg_version_option(parser: argparse.ArgumentParser, *, implies: str = "") -> None:
    """``--pg-version N``: the major of the embedded PostgreSQL a replay runs on."""
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


def replay_arguments(parser: argparse.ArgumentParser, *, implies_replay: bool) -> None:
    """Where a replay runs (verify, diff, review): --replay-url, --pg-version, --replay-role."""
    implies = ". Implies --replay" if implies_replay else ""
    parser.add_argument(
        "--replay-url",
        metavar="URL",
        default=None,
        help="replay in a scratch database on this server (created, then dropped; needs CREATEDB) "
        f"instead of an embedded PostgreSQL; default: {config.REPLAY_URL_ENV} if set" + implies,
    )
    pg_version_option(parser, implies=implies)
    parser.add_argument(
        "--replay-role",
        action="append",
        default=[],
        metavar="NAME",
        help="create this role on the replay server first, for migrations that GRANT to it (repeatable)",
    )


def run_options(parser: argparse.ArgumentParser) -> None:
    """How patient a migration run is (migrate, deploy)."""
    from pgship.runner import RunOptions

    seconds_option(
        parser,
        "--lock-wait",
        default=RunOptions.lock_wait_s,
        help="wait this long for another run's lock, then exit 4 (default: %(default)g)",
    )
    seconds_option(
        parser,
        "--lock-timeout",
        default=RunOptions.lock_timeout_s,
        timeout=True,
        help="lock_timeout for a migration's first attempt; doubled on each retry (default: %(default)g)",
    )
    parser.add_argument(
        "--lock-retries",
        type=retry_count,
        default=RunOptions.lock_retries,
        metavar="N",
        help="retries after a lock timeout (default: %(default)d)",
    )
    seconds_option(
        parser,
        "--statement-timeout",
        default=None,
        timeout=True,
        help="statement_timeout for migrations (default: none)",
    )


def pooler_options(parser: argparse.ArgumentParser) -> None:
    """Working through a connection pooler (migrate, baseline, repair, deploy)."""
    from pgship.config import LEASE_TTL_S as DEFAULT_TTL_S

    parser.add_argument(
        "--direct-url",
        metavar="URL",
        default=None,
        help="an address that reaches PostgreSQL without the pooler; when the database URL goes through "
        "a transaction pooler, the lock and the migrations run on it "
        f"(default: {config.DIRECT_URL_ENV} if set)",
    )
    seconds_option(
        parser,
        "--lease-ttl",
        default=DEFAULT_TTL_S,
        timeout=True,
        help="through a transaction pooler without --direct-url, the run locks with a lease row renewed "
        "in the background; a runner that dies blocks the next one for at most this long "
        "(default: %(default)g)",
    )


def lint_options(parser: argparse.ArgumentParser, *, default_on: bool) -> None:
    if default_on:
        parser.add_argument("--no-lint", dest="lint", action="store_false", help="skip the squawk lint")
    else:
        parser.add_argument("--lint", action="store_true", help="also lint the files with squawk")
    parser.add_argument("--lint-strict", action="store_true", help="lint findings fail the command (exit 2)")


__all__ = [
    "GLOBAL_VALUE_OPTIONS",
    "allow_empty_option",
    "global_options",
    "lint_options",
    "pg_version_option",
    "plan_options",
    "pooler_options",
    "replay_arguments",
    "run_options",
    "seconds_option",
    "wait_option",
]
