"""The guard: the last statement of a migration's transaction, before COMMIT. Pure SQL builders.

It proves, inside the transaction (so a failure rolls the migration back with it), that the run
still holds its migration lock and that the migration left other versions' tracking rows alone.
The tracking table's own SQL (row hashes and their sum) comes from :mod:`pgship.history`.
"""

from __future__ import annotations

from pgship.history import KnownRows

#: Where a transaction keeps the tracking table's write counters as it started (``SET LOCAL``).
GUARD_SETTING = "pgship.tracking_writes_at_begin"

#: SQLSTATEs the runner's own guard raises (class "PG" is not PostgreSQL's).
LOCK_RELEASED = "PGL01"
TRACKING_CHANGED = "PGT01"
TRACKING_MISSING = "PGT02"


def lock_held_sql(lock_key: int | None) -> str:
    """An expression: this session holds the advisory lock ``lock_key`` (None: a lease run, TRUE)."""
    if lock_key is None:
        return "TRUE"  # the lease check (Lease.check_statement) runs next to the guard instead
    unsigned = lock_key & 0xFFFFFFFFFFFFFFFF
    return (
        "EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted "
        f"AND pid = pg_catalog.pg_backend_pid() AND classid = '{unsigned >> 32}'::oid "
        f"AND objid = '{unsigned & 0xFFFFFFFF}'::oid AND objsubid = 1)"
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


def dollar_quoted(body: str, tag: str) -> str:
    """``body`` between ``$tag$`` quotes that it does not contain (a value in it may hold any text)."""
    candidate, n = tag, 0
    while f"${candidate}$" in body:
        n += 1
        candidate = f"{tag}_{n}"
    return f"${candidate}${body}${candidate}$"


def guard_sql(
    lock_held: str, rows: KnownRows, others_sum: str, own: tuple[str, ...], *, first: str = ""
) -> str:
    """The guard: ``lock_held`` (:func:`lock_held_sql`) is true, and only ``own`` rows changed.

    The tracking table check is O(1) when the transaction's only write to the table was our row (the
    server's per-transaction counters, and the same file: no TRUNCATE or rewrite); otherwise
    ``others_sum`` (:func:`pgship.history.others_sum_sql`) is computed and compared with what the run
    knows (``rows``). ``first``: statements (each ending in ``;``) the same ``DO`` block runs before
    the checks, such as the tracking row itself: one protocol message for both.
    """
    oid = f"'{rows.oid}'::oid"
    body = (
        f" BEGIN {first}"
        f"IF NOT {lock_held} THEN RAISE EXCEPTION USING ERRCODE = '{LOCK_RELEASED}', "
        "MESSAGE = 'pgship: the migration released the migration lock'; END IF; "
        f"IF (pg_catalog.current_setting('{GUARD_SETTING}', true) = {write_counts_sql(rows.oid, -1)} "
        f"AND pg_catalog.pg_relation_filenode({oid}) = '{rows.filenode}'::oid) IS NOT TRUE THEN "
        f"IF {others_sum} IS DISTINCT FROM {rows.expected(own)} THEN "
        f"RAISE EXCEPTION USING ERRCODE = '{TRACKING_CHANGED}', "
        "MESSAGE = 'pgship: the migration changed the tracking table'; END IF; END IF; "
        "END "
    )
    return f"DO {dollar_quoted(body, 'pgship_guard')}"
