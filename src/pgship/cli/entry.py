"""``pgship``'s entry point: find the command, build its parser, run it, report errors, exit.

No decisions are made here beyond choosing what to call; every command exists as library
functions (``pgship.migrations``, ``pgship.runner``...) that tests and the specification can use
directly. Only the module of the command asked for is imported (:mod:`pgship.cli.registry`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pgship import __version__, config
from pgship.cli.context import BadArguments, Context, Parser
from pgship.cli.options import GLOBAL_VALUE_OPTIONS, global_options
from pgship.cli.registry import COMMANDS, command_name, load
from pgship.database import check_url, passwords_in
from pgship.errors import ExitCode, Interrupted, PgshipError, UsageError
from pgship.output import Output, library_output
from pgship.runner import hold_signals, release_held_signals

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

#: Every command (``None``), or only the ones named: the others get a summary but no options.
Wanted = Sequence[str] | None


def find_command(argv: Sequence[str]) -> str | None:
    """The command an argument list names (``up`` -> ``migrate``), without parsing it: the first word
    that is not an option or a global option's value. None when there is none (``pgship --help``)."""
    skip_next = False
    for word in argv:
        if skip_next:
            skip_next = False
            continue
        if word == "--":
            return None
        if word.startswith("-"):
            # "-d URL", "--table NAME", or an abbreviation argparse accepts ("--database URL")
            skip_next = "=" not in word and (
                word in GLOBAL_VALUE_OPTIONS
                or (word.startswith("--") and any(o.startswith(word) for o in GLOBAL_VALUE_OPTIONS))
            )
            continue
        return command_name(word)
    return None


def build_parser(wanted: Wanted = None) -> argparse.ArgumentParser:
    """The parser of every command (``wanted=None``: imports every command module); with ``wanted``
    named, the parser of only those (a command's own parser is all its run needs; building the other
    eleven cost a few milliseconds of every start-up); with ``wanted`` empty, every command listed
    from the registry's summaries (``pgship --help``, an unknown command) and none imported."""
    parser = Parser(
        prog="pgship",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgship {__version__}")
    global_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in COMMANDS.items():
        if wanted and name not in wanted:
            continue
        sub = commands.add_parser(
            name,
            help=spec.summary,
            aliases=list(spec.aliases),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        global_options(sub)
        sub.set_defaults(command=name)
        if wanted is None or name in wanted:
            command = load(name)
            sub.description = command.description
            if command.epilog:
                sub.epilog = command.epilog
            command.add_arguments(sub)
    return parser


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
    words = list(sys.argv[1:] if argv is None else argv)
    name = find_command(words)
    parser = build_parser([name] if name else [])
    try:
        args = parser.parse_args(words)
    except BadArguments as bad:
        return bad_arguments(bad, words)
    as_json = bool(getattr(args, "json", False))
    out = Output(as_json=as_json)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # ValueError: not the main thread (in-process use)
            signal.signal(signal.SIGTERM, _raise_interrupt)
    with library_output(out, debug=config.debug(), restore=not for_process):
        return run_command(args, out)


def run_command(args: argparse.Namespace, out: Output) -> int:
    """Run the parsed command; every error becomes its exit code and a report (text or JSON)."""
    try:
        settings = config.resolve(
            database_url=getattr(args, "database_url", None),
            migrations_dir=getattr(args, "migrations_dir", None),
            table=getattr(args, "table", None),
        )
        out.secrets = passwords_in(settings.database_url)
        direct = config.direct_url(getattr(args, "direct_url", None))
        if direct:  # the pooler's way around: its password is as secret as the main one
            out.secrets = sorted({*out.secrets, *passwords_in(direct, environ={})}, key=len, reverse=True)
        if args.command != "new" and not getattr(args, "no_database", False):
            check_url(settings.database_url)  # a malformed URL is bad input (exit 2), before anything runs
        command = load(args.command)
        needs = command.spec.needs
        if needs is not None and needs.missing():
            raise UsageError(needs.message(args.command), hint="Nothing was run.")
        code = int(command.run(Context(args, settings, out)))
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
        if config.debug():
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


def bad_arguments(bad: BadArguments, argv: list[str]) -> int:
    """An unparsable command line: usage and the reason (or a JSON document), exit 2, nothing run."""
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


__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "bad_arguments",
    "build_parser",
    "find_command",
    "main",
    "run",
    "run_command",
]
