"""The SQL that gives every migration a clean session and the run's timeouts. Pure: text in, text out.

A direct connection keeps one server backend for the whole run, so the reset runs at session level
between migrations (:func:`session_defaults`). Through a transaction pooler the backend is shared
with other clients: everything is reset *inside* the migration's transaction instead
(:func:`pooled_local_resets` after BEGIN, :func:`pooled_cleanup` before COMMIT).
"""

from __future__ import annotations

#: PostgreSQL 14 added ``client_connection_check_interval``
_CHECK_INTERVAL_SINCE = 140000


def session_defaults(server_version: int) -> list[str]:
    """What every migration starts from on a direct connection, as if it had a session of its own.

    The old runner's ``psql -f`` per file gave each file a fresh session; ``RESET ALL`` alone
    does not undo a ``SET SESSION AUTHORIZATION``, temporary tables, prepared statements, open
    ``WITH HOLD`` cursors or ``LISTEN``. ``DISCARD ALL`` would, but it also releases the run's
    advisory lock, so its parts are spelled out without ``pg_advisory_unlock_all()``. If this
    process dies mid-migration, ``client_connection_check_interval`` lets the server notice within
    a second and roll back, instead of finishing a long statement (and holding its locks) for nobody.
    """
    statements = [
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET ALL",
        "DISCARD TEMP",
        "DISCARD PLANS",
        "DISCARD SEQUENCES",
        "DEALLOCATE ALL",
        "CLOSE ALL",
        "UNLISTEN *",
    ]
    if server_version >= _CHECK_INTERVAL_SINCE:
        statements.append("SET client_connection_check_interval = 1000")
    return statements


#: Left out of the reset between migrations on a direct connection (:func:`reset_after_commit`):
#: ``DEALLOCATE ALL`` would drop the runner's own prepared statements (:mod:`pgship.prepared`), so the
#: statements a migration prepared with SQL's ``PREPARE`` are counted by the read-back and
#: deallocated one by one (:func:`deallocate_from_sql`); ``DISCARD PLANS`` would throw away their
#: plans, and a cached plan is rebuilt anyway whenever anything it depends on changes.
NOT_BETWEEN_MIGRATIONS = ("DEALLOCATE ALL", "DISCARD PLANS")


def reset_after_commit(server_version: int) -> list[str]:
    """:func:`session_defaults` as two statements, for the pipeline right after a migration's COMMIT.

    ``SET SESSION AUTHORIZATION DEFAULT`` comes first, on its own: the rest then runs as the runner's
    own role, whatever role the migration left the session in, in one ``DO`` block (``CLOSE ALL``
    through ``EXECUTE``: PL/pgSQL has a ``CLOSE`` of its own). One protocol message instead of nine.
    Without :data:`NOT_BETWEEN_MIGRATIONS`.
    """
    first, *rest = reset_between_migrations(server_version)
    body = "; ".join(f"EXECUTE '{s}'" if s == "CLOSE ALL" else s for s in rest)
    return [first, f"DO $pgship_reset$ BEGIN {body}; END $pgship_reset$"]


def reset_between_migrations(server_version: int) -> list[str]:
    """:func:`session_defaults` without :data:`NOT_BETWEEN_MIGRATIONS`, one statement each, for
    statements prepared once per run (:mod:`pgship.prepared`); ``SET SESSION AUTHORIZATION DEFAULT``
    first, so the rest runs as the runner's own role."""
    return [s for s in session_defaults(server_version) if s not in NOT_BETWEEN_MIGRATIONS]


def deallocate_from_sql() -> str:
    """Deallocate the prepared statements made with SQL's ``PREPARE`` (a migration's), and no others."""
    return (
        "DO $pgship_deallocate$ DECLARE p record; BEGIN FOR p IN SELECT name FROM "
        "pg_catalog.pg_prepared_statements WHERE from_sql LOOP EXECUTE 'DEALLOCATE ' || "
        "quote_ident(p.name); END LOOP; END $pgship_deallocate$"
    )


def pooled_local_resets(server_version: int) -> list[str]:
    """Through a transaction pooler: the clean-session reset, local to the migration's transaction.

    The server backend is shared with the pooler's other clients, so nothing is reset (or set) at
    session level: settings another client's ``SET`` left on this backend go back to their
    defaults for this transaction only, and so do the role and ``search_path``.
    """
    resets = [
        "SET LOCAL SESSION AUTHORIZATION DEFAULT",
        "SET LOCAL ROLE NONE",
        "SELECT pg_catalog.set_config(name, reset_val, true) FROM pg_catalog.pg_settings "
        "WHERE source = 'session' AND (context = 'user' OR context = 'superuser' AND "
        "(SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)) "
        "AND lower(name) NOT IN ('session_authorization', 'role', 'transaction_isolation', "
        "'transaction_read_only', 'transaction_deferrable', 'client_encoding', 'datestyle', "
        "'timezone', 'intervalstyle', 'standard_conforming_strings', 'application_name')",
        "SET LOCAL search_path TO DEFAULT",
    ]
    if server_version >= _CHECK_INTERVAL_SINCE:
        resets.append("SET LOCAL client_connection_check_interval = 1000")
    return resets


def pooled_cleanup() -> list[str]:
    """Through a transaction pooler: undo, before COMMIT, the session state the migration left.

    The backend goes back to the pooler's other clients after the COMMIT, so nothing can be reset
    at session level afterwards; reset *inside* the transaction, it commits with the migration.
    It is the clean-session reset of :func:`session_defaults`, except that only prepared
    statements made with SQL ``PREPARE`` are deallocated (a pooler may track protocol-level
    ones of its own on the backend).
    """
    return [
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET ALL",
        "DISCARD TEMP",
        "DISCARD SEQUENCES",
        "CLOSE ALL",
        "UNLISTEN *",
        deallocate_from_sql(),
    ]


def milliseconds(seconds: float | None) -> str:
    """A timeout setting's value: ``'1500ms'``, or ``0`` (none) for None or zero."""
    return f"'{int(seconds * 1000)}ms'" if seconds else "0"


def begin(
    lock_timeout_s: float,
    statement_timeout_s: float | None,
    *,
    pooled: bool,
    server_version: int,
    also: str | None = None,
) -> list[str]:
    """BEGIN and the migration's own settings, local to its transaction.

    The settings are one ``SELECT`` of ``set_config(..., true)`` calls (what ``SET LOCAL`` does), with
    ``also`` (another expression, such as the guard's counters) in the same statement.
    """
    # through a pooler another client's session-level default_transaction_read_only may be on the backend
    parts = ["BEGIN READ WRITE" if pooled else "BEGIN"]
    if pooled:
        parts.extend(pooled_local_resets(server_version))
    parts.append(settings_sql(milliseconds(lock_timeout_s), statement_timeout_s, also=also))
    return parts


def settings_sql(lock_timeout: str, statement_timeout_s: float | None, *, also: str | None = None) -> str:
    """The ``SELECT`` of :func:`begin`: ``lock_timeout`` is SQL (a literal such as ``'3000ms'``, or
    ``$1`` in a prepared statement)."""
    settings = [f"pg_catalog.set_config('lock_timeout', {lock_timeout}, true)"]
    if statement_timeout_s:
        settings.append(
            f"pg_catalog.set_config('statement_timeout', {milliseconds(statement_timeout_s)}, true)"
        )
    if also:
        settings.append(also)
    return f"SELECT {', '.join(settings)}"


def own_statement_timeout(statement_timeout_s: float | None, *, local: bool = True) -> str:
    """The runner's own statements (row, guard) get ``--statement-timeout``, not a migration's."""
    return f"SET{' LOCAL' if local else ''} statement_timeout = {milliseconds(statement_timeout_s)}"


def session_timeouts(lock_timeout_s: float | None, statement_timeout_s: float | None) -> str:
    """Both timeouts at session level, for a statement of a no-transaction migration."""
    return (
        f"SET lock_timeout = {milliseconds(lock_timeout_s)}; "
        f"SET statement_timeout = {milliseconds(statement_timeout_s)}"
    )
