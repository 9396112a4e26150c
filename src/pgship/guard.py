"""The guard: the last statement of a migration's transaction, before COMMIT. Pure SQL builders.

It proves, inside the transaction (so a failure rolls the migration back with it), that the run
still holds its migration lock and that the migration left other versions' tracking rows alone.
The tracking table's own SQL (row hashes and their sum) comes from :mod:`pgship.history`.

The guard is one plain ``SELECT``, not a PL/pgSQL ``DO`` block: a ``DO`` block is compiled, and each
of its statements planned, anew for every migration, which cost more server time than the checks
themselves. Plain SQL has no ``RAISE``, so a failed check casts its own message to an integer: the
server answers ``invalid input syntax for type integer: "pgship: ..."`` (SQLSTATE 22P02), and
:func:`failed_check` turns that answer, from the guard's statement and no other, back into the
check that failed.
"""

from __future__ import annotations

from pgship.history import KnownRows

#: Where a transaction keeps the tracking table's write counters as it started (``SET LOCAL``).
GUARD_SETTING = "pgship.tracking_writes_at_begin"

#: SQLSTATEs the runner's own guard raises (class "PG" is not PostgreSQL's).
LOCK_RELEASED = "PGL01"
TRACKING_CHANGED = "PGT01"
TRACKING_MISSING = "PGT02"


#: The messages a failed check casts to an integer (see the module's docstring), by SQLSTATE of the check
MESSAGES = {
    LOCK_RELEASED: "pgship: the migration released the migration lock",
    TRACKING_CHANGED: "pgship: the migration changed the tracking table",
}
_CAST_FAILED = "22P02"  # invalid_text_representation


def lock_held_sql(lock_key: int | None) -> str:
    """An expression: this session holds the advisory lock ``lock_key`` (None: a lease run, TRUE).

    PostgreSQL has no cheap "do I hold this lock" question (``pg_locks`` copies the whole lock table,
    about 0.15 ms), so the expression asks three that only touch this backend's own lock counts,
    evaluated left to right and stopping at the first false:

    1. ``pg_try_advisory_xact_lock``: true if this session holds the lock, or nobody does (then it
       takes it until the transaction ends); false if another session holds it.
    2. ``pg_advisory_unlock``: true only if this session held it at session level, which the run
       does; it then drops that hold, but the hold taken in 1 keeps the lock this backend's: no
       other session can take it in between.
    3. ``pg_try_advisory_lock``: takes the session-level hold back (granted at once: this backend
       holds the lock).

    So the run's session-level hold is unchanged when the answer is true; when it is false the
    migration is rolled back. A session that lost its hold gets a WARNING from step 2.
    """
    if lock_key is None:
        return "TRUE"  # the lease check (Lease.check_statement) runs next to the guard instead
    key = f"'{lock_key}'::pg_catalog.int8"
    return (
        f"(pg_catalog.pg_try_advisory_xact_lock({key}) AND pg_catalog.pg_advisory_unlock({key}) "
        f"AND pg_catalog.pg_try_advisory_lock({key}))"
    )


def write_counts_sql(oid: int, offset: int) -> str:
    """An expression: the server's count of this session's inserts and of all writes to the tracking
    table not yet flushed to the statistics (they accumulate over transactions until the session is
    idle), as text, ``offset`` added to each."""
    relation = f"'{oid}'::oid"
    inserted = f"pg_catalog.pg_stat_get_xact_tuples_inserted({relation})"
    written = (
        f"{inserted} + pg_catalog.pg_stat_get_xact_tuples_updated({relation}) "
        f"+ pg_catalog.pg_stat_get_xact_tuples_deleted({relation})"
    )
    return f"pg_catalog.format('%s:%s', {inserted} + {offset}, {written} + {offset})"


def counts_at_begin(oid: int) -> str:
    """An expression for the statement after BEGIN: keep the write counters as the transaction starts
    (the guard's fast path)."""
    return f"pg_catalog.set_config('{GUARD_SETTING}', {write_counts_sql(oid, 0)}, true)"


def counts_at_begin_sql(oid: int) -> str:
    """:func:`counts_at_begin` as a statement of its own."""
    return f"SELECT {counts_at_begin(oid)}"


def _unless(condition: str, code: str) -> str:
    """A column that is 0 when ``condition`` is true and otherwise fails with check ``code``'s message.

    The cast applies to the whole ``CASE``, which is not a constant, so the server evaluates it when
    the row is produced, never while planning.
    """
    return f"(CASE WHEN {condition} THEN '0' ELSE '{MESSAGES[code]}' END)::pg_catalog.int4"


def guard_sql(lock_held: str, oid: int, filenode: str, others_sum: str, expected: str) -> str:
    """The guard: ``lock_held`` (:func:`lock_held_sql`) is true, and only the migration's own rows of
    the tracking table (oid ``oid``) changed.

    The tracking table check is O(1) when the transaction's only write to the table was our row (the
    server's per-transaction counters, and the same file, ``filenode``: no TRUNCATE or rewrite);
    otherwise ``others_sum`` (:func:`pgship.history.others_sum_sql`) is computed and compared with
    what the run knows (``expected``): a ``CASE`` evaluates it only when the fast path fails. The lock
    is checked first. ``filenode`` and ``expected`` are SQL: literals, or parameters of a prepared
    statement.
    """
    untouched = (
        f"CASE WHEN (pg_catalog.current_setting('{GUARD_SETTING}', true) = {write_counts_sql(oid, -1)} "
        f"AND pg_catalog.pg_relation_filenode('{oid}'::oid) = {filenode}) IS TRUE THEN TRUE "
        f"ELSE {others_sum} IS NOT DISTINCT FROM {expected} END"
    )
    checks = [] if lock_held == "TRUE" else [_unless(lock_held, LOCK_RELEASED)]
    checks.append(_unless(untouched, TRACKING_CHANGED))
    return f"SELECT {', '.join(checks)}"


def guard_for(lock_held: str, rows: KnownRows, others_sum: str, own: tuple[str, ...]) -> str:
    """:func:`guard_sql` with what the run knows (``rows``) as literals."""
    return guard_sql(lock_held, rows.oid, f"'{rows.filenode}'::oid", others_sum, str(rows.expected(own)))


def failed_check(sqlstate: str | None, message: str) -> str | None:
    """Which check failed (:data:`LOCK_RELEASED`, :data:`TRACKING_CHANGED`), from the server's error
    for the guard's statement; None for any other error (a timeout, a lost connection)."""
    if sqlstate != _CAST_FAILED:
        return None
    for code, text in MESSAGES.items():
        if f'"{text}"' in message:
            return code
    return None
