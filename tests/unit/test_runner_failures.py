"""The runner's failure reports as pure functions: which message, hint and exit code for each way a
migration can fail (pgship.failures). No database: the errors are psycopg's own classes."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pgerrors

from pgship import failures
from pgship.errors import ConnectionLost, ExitCode, Interrupted, MigrationFailed
from pgship.guard import LOCK_RELEASED, TRACKING_CHANGED, TRACKING_MISSING
from pgship.migrations import MigrationFile, Version, checksum_of
from pgship.sqlscript import Script, analyse


def migration(version: str = "003", name: str = "add_orders", text: str = "SELECT 1;\n") -> MigrationFile:
    return MigrationFile(
        Version.parse(version), name, Path("/m"), f"{version}_{name}.sql", text, checksum_of(text)
    )


TEXT = "CREATE TABLE a (id int);\n\nALTER TABLE b\n  ADD COLUMN c int;\n"


def script(text: str = TEXT) -> Script:
    parsed = analyse(text)
    assert not parsed.problems
    return parsed


def test_a_statement_error_names_file_line_and_sqlstate_and_says_it_was_rolled_back():
    body = script()
    alter = body.statements[1]
    error = failures.ServerError('column "c" already exists', sqlstate="42701", position=17)
    failed = failures.failure(migration(text=TEXT), alter, error, partial=False, missing_objects=None)
    assert isinstance(failed, MigrationFailed) and failed.exit_code == ExitCode.FAILED
    assert failed.details.line == 4  # the position's line inside the statement, not the statement's first
    assert failed.message == '003_add_orders.sql:4: column "c" already exists [SQLSTATE 42701]'
    assert "rolled back: nothing of it is applied" in failed.hint
    assert "conflicts with an existing object: rename" in failed.hint  # nothing probed: no baseline advice
    assert failed.to_dict()["statement"] == alter.text


def test_an_already_exists_error_suggests_baseline_only_when_everything_the_file_creates_exists():
    error = failures.ServerError('relation "a" already exists', sqlstate="42P07")
    body = script()
    everything = failures.failure(migration(), body.statements[0], error, partial=False, missing_objects=[])
    assert "pgship baseline 003" in everything.hint
    clash = failures.failure(
        migration(),
        body.statements[0],
        error,
        partial=False,
        missing_objects=['"b".c', "x", "y", "z", "v", "w"],
    )
    assert "baseline" not in clash.hint
    assert '"b".c, x, y, z, v ... does not exist yet' in clash.hint


def test_the_clash_check_is_wanted_only_for_already_exists_in_a_transaction_on_a_live_connection():
    exists = failures.ServerError("x", sqlstate="42P07")
    other = failures.ServerError("x", sqlstate="22012")
    assert failures.wants_clash_check(exists, partial=False, lost=False)
    assert not failures.wants_clash_check(exists, partial=True, lost=False)
    assert not failures.wants_clash_check(exists, partial=False, lost=True)
    assert not failures.wants_clash_check(other, partial=False, lost=False)


def test_a_failure_at_commit_says_so():
    error = failures.ServerError("insert violates deferred constraint", sqlstate="23503")
    failed = failures.failure(migration(), None, error, partial=False, at_commit=True)
    assert failed.message == (
        "003_add_orders.sql: failed at COMMIT: insert violates deferred constraint [SQLSTATE 23503]"
    )


def test_a_failure_after_commit_says_the_migration_is_applied():
    error = failures.ServerError("canceling statement due to statement timeout", sqlstate="57014")
    failed = failures.failure(migration(), None, error, partial=False, after_commit=True)
    assert failed.message == (
        "003_add_orders.sql: applied and recorded, but resetting the session after it failed: "
        "canceling statement due to statement timeout [SQLSTATE 57014]"
    )
    assert "is applied" in failed.hint and "rolled back" not in failed.hint


@pytest.mark.parametrize(
    ("partial", "at_commit", "says"),
    [
        (False, False, "nothing of this migration was applied"),
        (False, True, "may or may not be applied"),
        (True, False, "statements before the failing one stay applied"),
    ],
)
def test_a_lost_connection_tells_what_is_applied(partial, at_commit, says):
    error = failures.ServerError("server closed the connection unexpectedly")
    failed = failures.failure(
        migration(), script().statements[0], error, partial=partial, at_commit=at_commit, lost=True
    )
    assert failed.message == (
        "003_add_orders.sql:1: the connection to the database was lost (server closed the connection "
        "unexpectedly)"
    )
    assert says in failed.hint
    assert failed.exit_code == ExitCode.FAILED


def test_a_no_transaction_failure_names_the_invalid_indexes_left_behind():
    error = failures.ServerError("deadlock detected", sqlstate="40P01")
    failed = failures.failure(
        migration(), script().statements[0], error, partial=True, invalid_indexes=["public.idx_a"]
    )
    assert failed.details.partial
    assert "INVALID indexes left behind: public.idx_a" in failed.hint
    clean = failures.failure(migration(), script().statements[0], error, partial=True, invalid_indexes=[])
    assert "INVALID" not in clean.hint and "not recorded" in clean.hint


def test_a_lock_timeout_on_every_attempt_counts_the_attempts_and_names_the_last_timeout():
    exc = pgerrors.LockNotAvailable("canceling statement due to lock timeout")
    error = failures.server_error(exc)
    assert error.sqlstate == "55P03" and error.primary == "canceling statement due to lock timeout"
    failed = failures.lock_failure(
        failures.failure(migration(), script().statements[1], error, partial=False), 4, 24.0
    )
    assert failed.message.endswith("gave up waiting for a lock after 4 attempts (last lock_timeout 24 s)")
    assert failed.to_dict()["lock_attempts"] == 4
    assert "pg_stat_activity" in failed.hint and "Nothing of this migration was applied." in failed.hint
    partial = failures.lock_failure(
        failures.failure(migration(), script().statements[1], error, partial=True), 1, 3.0, partial=True
    )
    assert partial.message.endswith("after 1 attempt (last lock_timeout 3 s)")
    assert "statements before the failing one stay applied" in partial.hint


@pytest.mark.parametrize(
    ("code", "lease", "what"),
    [
        (LOCK_RELEASED, None, "released the migration lock (pg_advisory_unlock"),
        (LOCK_RELEASED, "public.schema_migrations_lease", "lost its migration lease"),
        (TRACKING_CHANGED, None, "changed the tracking table public.schema_migrations"),
        (TRACKING_MISSING, None, "dropped or renamed the tracking table public.schema_migrations"),
    ],
)
def test_a_guard_failure_says_what_the_migration_did(code, lease, what):
    failed = failures.guard_failure(
        migration(), code, table="public.schema_migrations", lease_table=lease, partial=False
    )
    assert what in failed.message
    assert failed.details.sqlstate == code and failed.exit_code == ExitCode.FAILED
    assert "rolled back" in failed.hint
    partial = failures.guard_failure(
        migration(), code, table="public.schema_migrations", lease_table=lease, partial=True, statements=2
    )
    assert "its 2 statement(s) stay applied, but it is NOT recorded" in partial.hint


def test_a_connection_lost_outside_a_migration_is_exit_1_with_what_to_do():
    lost = failures.lost_connection("migrating", psycopg.OperationalError("terminating connection\nmore"))
    assert isinstance(lost, ConnectionLost) and lost.exit_code == ExitCode.FAILED
    assert lost.message == "the connection to the database was lost while migrating (terminating connection)"
    assert "`pgship wait`" in lost.hint
    assert "(connection closed)" in failures.lost_connection("x", psycopg.OperationalError("")).message


def test_an_interrupt_reports_exit_130_and_what_the_database_holds():
    in_tx = (migration(), script())
    cases = {
        "none": failures.interrupted(None, [], checked=True),
        "between": failures.interrupted(None, ["001_a.sql"], checked=True),
        "unknown": failures.interrupted(in_tx, [], checked=False, problem="no connection"),
        "committed": failures.interrupted(in_tx, ["001_a.sql", "003_add_orders.sql"], checked=True),
        "rolled back": failures.interrupted(in_tx, ["001_a.sql"], checked=True),
        "partial": failures.interrupted(
            (migration(), script("-- pgship:no-transaction\nSELECT 1;\nSELECT 2;\n")),
            [],
            checked=True,
            executed=1,
        ),
    }
    assert all(isinstance(e, Interrupted) and e.exit_code == ExitCode.INTERRUPTED for e in cases.values())
    assert cases["none"].message == "interrupted with no migration in flight; this run applied none"
    assert cases["between"].message.endswith("no migration in flight; applied by this run: 001_a.sql")
    assert "could not be checked (no connection)" in cases["unknown"].message
    assert "just after 003_add_orders.sql was committed" in cases["committed"].message
    assert cases["rolled back"].message == (
        "stopped while applying 003_add_orders.sql; it was rolled back, nothing of it is applied; "
        "applied by this run: 001_a.sql"
    )
    assert "1 of 2 statements had completed, and it is not recorded" in cases["partial"].message


def test_the_first_line_of_an_error_and_seconds():
    assert failures.first_line(ValueError("a\nb")) == "a"
    assert failures.seconds(1.5) == "1.5 s" and failures.seconds(3.0) == "3 s"
