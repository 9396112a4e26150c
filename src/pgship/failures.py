"""What went wrong with a migration, in words a person can act on. Pure: no database here.

Each function takes what failed (the server's error as :class:`ServerError`, the statement, the
migration) and the few facts the caller looked up in the database (INVALID indexes left behind,
which of the objects a file creates are missing), and returns the :mod:`pgship.errors` exception
to raise: its message, its hint and, through its class, the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgship.errors import ConnectionLost, FailureDetails, Interrupted, MigrationFailed
from pgship.guard import LOCK_RELEASED, TRACKING_MISSING

if TYPE_CHECKING:
    from pgship.migrations import MigrationFile
    from pgship.sqlscript import Script, Statement

#: SQLSTATEs of "already exists" errors: the typical result of rerunning a hand-applied migration.
ALREADY_EXISTS = frozenset({"42P07", "42701", "42710", "42P06", "42723", "42P04", "42712", "42P16"})


@dataclass(frozen=True)
class ServerError:
    """A database error as the failure report needs it (from a psycopg error: :func:`server_error`)."""

    primary: str
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    position: int | None = None  # 1-based character position in the statement


def first_line(exc: BaseException, default: str = "") -> str:
    """The first line of an exception's text."""
    return (str(exc).strip().splitlines() or [default])[0]


def server_error(exc: BaseException) -> ServerError:
    """The parts of a psycopg error (or any exception) a report uses."""
    diag: Any = getattr(exc, "diag", None)
    position = diag.statement_position if diag is not None else None
    return ServerError(
        primary=(diag.message_primary if diag is not None else None) or first_line(exc),
        sqlstate=getattr(exc, "sqlstate", None),
        detail=diag.message_detail if diag is not None else None,
        hint=diag.message_hint if diag is not None else None,
        position=int(position) if position else None,
    )


def wants_clash_check(error: ServerError, *, partial: bool, lost: bool) -> bool:
    """Whether the hint depends on which created objects exist (the caller probes, :func:`failure`)."""
    return not lost and not partial and error.sqlstate in ALREADY_EXISTS


def lost_connection(doing: str, exc: BaseException) -> ConnectionLost:
    """The server closed the connection (terminated, crashed, restarted): reported as such, not as a bug."""
    return ConnectionLost(
        f"the connection to the database was lost while {doing} ({first_line(exc, 'connection closed')})",
        hint="Each migration commits together with its tracking row, so the database holds exactly "
        "the migrations recorded as applied (`pgship status` lists them). Run the command again "
        "once the database is back (`pgship wait`).",
    )


def failure(
    migration: MigrationFile,
    statement: Statement | None,
    error: ServerError,
    *,
    partial: bool,
    at_commit: bool = False,
    after_commit: bool = False,
    lost: bool = False,
    invalid_indexes: list[str] | None = None,
    missing_objects: list[str] | None = None,
) -> MigrationFailed:
    """A statement (or the COMMIT) failed. ``lost``: the connection is gone. ``partial``: a no-transaction
    file, whose earlier statements stay applied. ``after_commit``: the migration committed with its row;
    the runner's own statements after it failed. ``invalid_indexes``: INVALID indexes in the database
    (asked for a partial failure). ``missing_objects``: what the file creates that does not exist, when
    :func:`wants_clash_check` (None: it could not be told)."""
    line = statement.line if statement else None
    position = None
    if error.position and statement is not None:
        position = error.position
        line = statement.line + statement.text.count("\n", 0, position - 1)
    details = FailureDetails(
        version=str(migration.version),
        file=migration.filename,
        line=line,
        statement=statement.text if statement else None,
        sqlstate=error.sqlstate,
        server_message=error.primary,
        detail=error.detail,
        hint=error.hint,
        position=position,
        partial=partial,
    )
    where = f"{migration.filename}:{line}" if line else migration.filename
    if lost:
        message = f"{where}: the connection to the database was lost ({error.primary})"
        if partial:
            hint = (
                "This migration runs without a transaction: statements before the failing one stay "
                "applied. Run `pgship migrate` again once the database is back: it reruns the file, and "
                "drops and rebuilds an index a CREATE INDEX CONCURRENTLY left INVALID."
            )
        elif at_commit:
            hint = (
                "The connection dropped while committing: the migration may or may not be applied. "
                "Run `pgship status` to see, then `pgship migrate` to continue."
            )
        else:
            hint = (
                "PostgreSQL rolls back an unfinished transaction, so nothing of this migration was "
                "applied; migrations before it stay applied. Run `pgship migrate` again once the "
                "database is back (`pgship wait`)."
            )
        return MigrationFailed(details, message=message, hint=hint)
    state = f" [SQLSTATE {error.sqlstate}]" if error.sqlstate else ""
    if after_commit:
        return MigrationFailed(
            details,
            message=f"{migration.filename}: applied and recorded, but resetting the session after it "
            f"failed: {error.primary}{state}",
            hint="The migration is applied (`pgship status` lists it); the run stopped before the next "
            "one. Run `pgship migrate` again to continue.",
        )
    if at_commit:
        message = f"{migration.filename}: failed at COMMIT: {error.primary}{state}"
    else:
        message = f"{where}: {error.primary}{state}"
    if partial:
        invalid = invalid_indexes or []
        hint = (
            "This migration runs without a transaction (-- pgship:no-transaction): statements before "
            "the failing one stay applied and it is not recorded. "
            + (
                f"INVALID indexes left behind: {', '.join(invalid)} - the rerun drops and rebuilds one "
                "this file builds by name; drop any other with DROP INDEX CONCURRENTLY. "
                if invalid
                else ""
            )
            + "Make the statements safe to rerun (IF NOT EXISTS), then run `pgship migrate` again."
        )
    else:
        hint = (
            "The migration was rolled back: nothing of it is applied, migrations before it stay "
            "applied, none after it ran. Fix the file and run `pgship migrate` again."
        )
        if error.sqlstate in ALREADY_EXISTS:
            hint = clash_hint(migration, hint, missing_objects)
    return MigrationFailed(details, message=message, hint=hint)


def clash_hint(migration: MigrationFile, hint: str, missing: list[str] | None) -> str:
    """An "already exists" error: suggest ``baseline`` only if the database holds all the file creates.

    ``baseline`` records a migration without running it, so it is right only for a migration
    that was applied by hand. A file that repeats one existing table among new ones is a name
    clash, and recording it would leave the new objects missing for ever. ``missing``: the objects
    the file creates that do not exist (``["?"]`` if the check failed), None if they are unknown.
    """
    if missing is None:
        return f"{hint} {migration.filename} conflicts with an existing object: rename what it creates."
    if not missing:
        return (
            f"{hint} Everything {migration.filename} creates already exists: if it was applied "
            "by hand (psql in an emergency), record it without running it again: pgship baseline "
            f"{migration.version}"
        )
    return (
        f"{hint} {migration.filename} conflicts with an existing object (it was not applied by hand: "
        f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} does not exist yet): rename "
        "what it creates, or drop the old object in the migration if that is the intent."
    )


def seconds(value: float) -> str:
    return f"{value:g} s"


def lock_failure(
    failed: MigrationFailed, attempts: int, last_timeout_s: float, *, partial: bool = False
) -> MigrationFailed:
    """``failed`` (from :func:`failure`) was a lock timeout on every attempt: say so, and what to do."""
    failed.details.extra["lock_attempts"] = attempts
    failed.message = (
        f"{failed.message} - gave up waiting for a lock after {attempts} attempt"
        f"{'s' if attempts > 1 else ''} (last lock_timeout {seconds(last_timeout_s)})"
    )
    failed.hint = (
        "A long transaction holds a lock this migration needs. Find it with "
        "`SELECT pid, state, xact_start, query FROM pg_stat_activity WHERE xact_start < now() - "
        "interval '1 minute'`, let it finish (or end it), then run `pgship migrate` again. "
        + ("Nothing of this migration was applied." if not partial else failed.hint)
    )
    return failed


def guard_failure(
    migration: MigrationFile,
    code: str,
    *,
    table: str,
    lease_table: str | None = None,
    partial: bool,
    statements: int = 0,
) -> MigrationFailed:
    """The guard (:mod:`pgship.guard`) stopped the run: the lock (or lease) is gone, or the tracking
    table was changed (``code``: one of the guard's SQLSTATEs). ``lease_table``: a lease run's lease."""
    if code == LOCK_RELEASED and lease_table is not None:
        what = (
            f"this run lost its migration lease ({lease_table}) before {migration.filename} could "
            "commit: it expired unrenewed (the runner paused, or lost the database), or the migration "
            "itself deleted or changed the lease row"
        )
        why = "another deploy may have taken over, so the run stops here"
    elif code == LOCK_RELEASED:
        what = (
            f"{migration.filename} released the migration lock (pg_advisory_unlock, "
            "pg_advisory_unlock_all or DISCARD ALL)"
        )
        why = "another deploy may be applying migrations now, so the run stops here"
    elif code == TRACKING_MISSING:
        what = f"{migration.filename} dropped or renamed the tracking table {table}"
        why = "pgship cannot record it, so the run stops here"
    else:
        what = (
            f"{migration.filename} changed the tracking table {table}: it inserted, updated or "
            "deleted rows of other versions"
        )
        why = "those rows are pgship's record of what ran, so the run stops here"
    details = FailureDetails(
        version=str(migration.version),
        file=migration.filename,
        sqlstate=code,
        server_message=what,
        partial=partial,
    )
    if partial:
        hint = (
            f"It runs without a transaction: its {statements} statement(s) stay applied, but it is NOT "
            f"recorded; {why}. Remove that statement from the file, check the database (and "
            f"{table}), then run `pgship migrate` again."
        )
    else:
        hint = (
            f"It was rolled back: nothing of it is applied and it is not recorded; {why}. A migration "
            "must leave the migration lock and other versions' tracking rows alone: remove that "
            "statement and run `pgship migrate` again."
        )
    return MigrationFailed(details, message=what, hint=hint)


def interrupted(
    in_flight: tuple[MigrationFile, Script] | None,
    applied_files: list[str],
    *,
    checked: bool,
    problem: str = "",
    executed: int = 0,
) -> Interrupted:
    """A stop signal ended the run. ``in_flight``: the migration it was applying, if any;
    ``applied_files``: what this run applied (as checked in the database); ``checked``: whether the
    database could be read afterwards (else ``problem`` says why); ``executed``: statements of a
    no-transaction file that had completed."""
    done = f"; applied by this run: {', '.join(applied_files)}" if applied_files else ""
    rerun = "Run `pgship migrate` again to continue."
    if in_flight is None:
        return Interrupted(
            f"interrupted with no migration in flight{done or '; this run applied none'}",
            hint=f"Every migration it applied is committed and recorded. {rerun}",
        )
    migration, script = in_flight
    if not checked:
        return Interrupted(
            f"interrupted while applying {migration.filename}; whether it committed could not be "
            f"checked ({problem}){done}",
            hint=f"Run `pgship status` to see whether {migration.filename} is applied, then "
            "`pgship migrate` to continue.",
        )
    if applied_files and applied_files[-1] == migration.filename:
        return Interrupted(
            f"interrupted just after {migration.filename} was committed: it is applied and recorded, "
            f"no later migration started{done}",
            hint=rerun,
        )
    if script.no_transaction:
        return Interrupted(
            f"stopped while applying {migration.filename}, which runs without a transaction: "
            f"{executed} of {len(script.statements)} statements had completed, and it is not "
            f"recorded{done}",
            hint="Run `pgship migrate` again: it reruns the file (keep its statements safe to rerun, "
            "IF NOT EXISTS) and rebuilds an index a CREATE INDEX CONCURRENTLY of it left INVALID.",
        )
    return Interrupted(
        f"stopped while applying {migration.filename}; it was rolled back, nothing of it is applied{done}",
        hint=f"Migrations before it stay applied. {rerun}",
    )
