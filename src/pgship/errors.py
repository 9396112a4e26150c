"""Errors pgship reports, each carrying its exit code (README.md and docs/DEPLOYMENT.md list them).

Every error knows what went wrong *and* what the reader should do next, so the
CLI can render the same object as a human message or as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit codes shared by every command."""

    OK = 0
    FAILED = 1  # a migration or a deploy stage failed
    INVALID = 2  # bad input or a refusal (bad files, drift, out of order); nothing changed
    UNREACHABLE = 3  # the database did not accept connections within the wait
    LOCKED = 4  # another runner held the migration lock for the whole wait
    OUT_OF_SYNC = 5  # status --check / diff: the database does not match the files
    REJECTED = 6  # the database refused the connection for good (password, missing database or role)
    GATE = 7  # review --fail-on: a pending migration crosses the team's threshold
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the migration files, located as precisely as we can."""

    file: str | None
    message: str
    fix: str = ""
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        """``file:line:column`` with the parts that are known."""
        parts = [self.file or "<migrations>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PgshipError(Exception):
    """Base class: a message, a hint on what to do, and an exit code."""

    exit_code: ExitCode = ExitCode.FAILED
    kind: str = "error"
    #: The JSON document a command prints with the error (set by the CLI when it has one)
    payload: dict[str, Any] | None = None

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.partial_result: Any = None  # set by operations that did some work before failing

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "hint": self.hint}


class InvalidMigrations(PgshipError):
    """The files cannot be run as they are; raised before the database is written."""

    exit_code = ExitCode.INVALID
    kind = "invalid_migrations"

    def __init__(self, problems: list[Problem], *, message: str = "") -> None:
        count = len(problems)
        summary = message or f"{count} problem{'s' if count != 1 else ''} in the migration files"
        super().__init__(summary, hint="Nothing was changed in the database. Fix the files and run again.")
        self.problems = problems

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "problems": [p.to_dict() for p in self.problems]}


class Refused(PgshipError):
    """The database and the files disagree in a way that needs a decision (drift, out of order)."""

    exit_code = ExitCode.INVALID
    kind = "refused"

    def __init__(self, message: str, *, hint: str = "", versions: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.versions = versions or []

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "versions": self.versions}


class UsageError(PgshipError):
    """A command was called with options that cannot work together or a bad value."""

    exit_code = ExitCode.INVALID
    kind = "usage"


class DatabaseUnavailable(PgshipError):
    """No connection could be made within the wait."""

    exit_code = ExitCode.UNREACHABLE
    kind = "database_unavailable"

    def __init__(self, message: str, *, hint: str = "", attempts: int = 0, waited_s: float = 0.0) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts
        self.waited_s = waited_s

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "attempts": self.attempts, "waited_s": round(self.waited_s, 1)}


class ConnectionRejected(DatabaseUnavailable):
    """The server answered and refused: a wrong password, a missing database or role, a bad parameter.

    Waiting will not fix it, so it has its own exit code: a CI wrapper that retries exit 3 must not
    retry this one.
    """

    exit_code = ExitCode.REJECTED
    kind = "connection_rejected"


class ConnectionLost(PgshipError):
    """The server closed the connection mid-command (terminated backend, crash, restart, network)."""

    exit_code = ExitCode.FAILED
    kind = "connection_lost"


class LockNotAcquired(PgshipError):
    """Another runner kept the advisory lock for the whole wait."""

    exit_code = ExitCode.LOCKED
    kind = "lock_not_acquired"


@dataclass
class FailureDetails:
    """Where and why a migration failed, as the server reported it."""

    version: str
    file: str
    line: int | None = None
    statement: str | None = None
    sqlstate: str | None = None
    server_message: str = ""
    detail: str | None = None
    hint: str | None = None
    position: int | None = None
    partial: bool = False  # a no-transaction migration may have left some statements applied
    extra: dict[str, Any] = field(default_factory=dict)


class MigrationFailed(PgshipError):
    """A migration's SQL failed on the server; the migration was rolled back (or may be partial)."""

    exit_code = ExitCode.FAILED
    kind = "migration_failed"

    def __init__(self, details: FailureDetails, *, message: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        details = asdict(self.details)
        details.pop("extra")
        details["server_hint"] = details.pop("hint")  # the server's HINT must not replace pgship's
        return {**super().to_dict(), **details, **self.details.extra}


class StageFailed(PgshipError):
    """A deploy stage other than the migrations failed: a command, or the health gate."""

    exit_code = ExitCode.FAILED
    kind = "stage_failed"

    def __init__(self, message: str, *, hint: str = "", output: list[str] | None = None) -> None:
        super().__init__(message, hint=hint)
        self.output = output or []  # the last lines the command printed

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "output": self.output}


class Interrupted(PgshipError):
    """The user or the platform asked pgship to stop (Ctrl-C, SIGTERM)."""

    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"
