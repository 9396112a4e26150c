"""The types of every numeric command-line option, defined once and checked while parsing.

Checked by argparse, so a value that makes no sense (a negative wait, a zero timeout, which
PostgreSQL would read as "no timeout", a port out of range) is a usage error (exit 2) before
anything connects. Every command's parser takes its numeric options' types from here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgship.migrations import Version
    from pgship.runner import RunOptions


def seconds_type(*, zero_allowed: bool) -> Callable[[str], float]:
    """An argparse type for a duration: a finite number of seconds (``1.5`` or ``1.5s``).

    ``zero_allowed`` for waits (0: try once, do not wait); timeouts must be at least 1 ms, since
    PostgreSQL counts them in milliseconds and a 0 there means *no* timeout at all.
    """

    def parse(text: str) -> float:
        import math

        try:
            value = float(text.strip().removesuffix("s"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
        if zero_allowed and value < 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be 0 or more seconds")
        if not zero_allowed and value < 0.001:
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least 0.001 seconds (1 ms)")
        return value

    parse.__name__ = "seconds"  # argparse names the type in "invalid seconds value"
    return parse


def integer_type(minimum: int, maximum: int | None = None, what: str = "number") -> Callable[[str], int]:
    """An argparse type for a whole number within bounds."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"{minimum} or more"
            raise argparse.ArgumentTypeError(f"{text!r}: the {what} must be {bounds}")
        return value

    parse.__name__ = what
    return parse


#: The types of every numeric option of every command, checked while parsing: before anything connects.
wait_seconds = seconds_type(zero_allowed=True)  # --wait, --lock-wait, --cache-ttl: 0 means "do not wait"
timeout_seconds = seconds_type(zero_allowed=False)  # --lock-timeout, --statement-timeout, other timeouts
retry_count = integer_type(0, what="count")  # --lock-retries: 0 means one attempt, no retry
port_number = integer_type(1, 65535, what="port")
header_bytes = integer_type(1024, what="size in bytes")  # serve --max-header-size
connection_count = integer_type(1, what="number of connections")  # serve --max-connections
major_version = integer_type(1, what="major version")  # --pg-version: 14-18 are shipped


def run_options_from(args: argparse.Namespace) -> RunOptions:
    """The :class:`~pgship.runner.RunOptions` the patience flags of ``migrate`` and ``deploy`` ask for."""
    from pgship.runner import RunOptions

    return RunOptions(
        lock_wait_s=args.lock_wait,
        lock_timeout_s=args.lock_timeout,
        lock_retries=args.lock_retries,
        statement_timeout_s=args.statement_timeout,
    )


def version_text(text: str) -> str:
    """An argparse type for ``--target``: a version pgship can read, checked before anything connects
    (exit 2); the text is kept as given and parsed again by :func:`target_version`."""
    from pgship.migrations import Version

    try:
        Version.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None  # the message names the text
    return text


def target_version(args: argparse.Namespace) -> Version | None:
    """``--target``, parsed; a version pgship cannot read is a usage error (exit 2)."""
    from pgship.errors import UsageError
    from pgship.migrations import Version

    if not getattr(args, "target", None):
        return None
    try:
        return Version.parse(args.target)
    except ValueError as exc:
        raise UsageError(f"--target: {exc}") from None
