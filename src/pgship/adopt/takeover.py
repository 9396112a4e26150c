"""Taking over another tool's tracking table: finding it, reading it, copying its history. The I/O.

What the rows mean is :mod:`pgship.adopt.recognise`'s job; here they are read from the
database, and the take-over runs in one transaction: all of it happens, or none of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from pgship.adopt.recognise import (
    DBMATE,
    DEFAULT_TABLES,
    GOLANG_MIGRATE,
    GOOSE,
    ForeignHistory,
    ForeignRefusal,
    ForeignRow,
    dbmate,
    flyway,
    golang_migrate,
    goose,
    shape,
)
from pgship.errors import PgshipError, Refused

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql


def find(
    conn: psycopg.Connection, schema: str | None, name: str, columns: list[str]
) -> ForeignHistory | None:
    """The other tool's table pgship should take over, or None (pgship's own table, or nothing to adopt).

    ``columns`` are those of the configured table (empty: it does not exist). When it does not
    exist, the tools' default tables are looked for in the same schema (or on the search_path).
    """
    if columns:
        tool = shape(columns)
        if tool not in (GOLANG_MIGRATE, DBMATE):
            return None
        if tool == DBMATE:  # pgship's shape less some columns: upgraded in place like a legacy table
            return ForeignHistory(DBMATE, schema, name, in_place=True)
        return replace(_read(conn, tool, schema, name), set_aside=f"{name}_golang_migrate")
    places = [f'"{schema}"."{{}}"', '"{}"'] if schema else ['"{}"']  # its schema, then the search_path
    candidates = [place.format(table) for table in DEFAULT_TABLES for place in places]
    located = conn.execute(  # one round trip for every candidate (this runs on each fresh database)
        "SELECT x.ord, n.nspname, c.relname, array_agg(a.attname::text) "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS x(name, ord) "
        "JOIN pg_class c ON c.oid = to_regclass(x.name) JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "GROUP BY x.ord, n.nspname, c.relname ORDER BY x.ord",
        (candidates,),
    ).fetchall()
    found: list[ForeignHistory] = []
    for _, table_schema, table, columns_found in located:
        tool = shape(columns_found)
        # never the configured table (it does not exist); the first place of each table wins
        if tool in DEFAULT_TABLES[table] and all(f.table != table for f in found):
            found.append(_read(conn, tool, table_schema, table))
    if len(found) > 1:
        names = " and ".join(f.description for f in found)
        return replace(
            found[0],
            rows=(),
            through=None,
            refusal=ForeignRefusal(
                [],
                f"the database has {names}: more than one tool has migrated it, so which history is "
                "true is unclear",
                "Check which version the schema is at and adopt the database with `pgship baseline V`.",
            ),
        )
    return found[0] if found else None


def _read(conn: psycopg.Connection, tool: str, schema: str | None, table: str) -> ForeignHistory:
    from psycopg import sql

    ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
    if tool == GOLANG_MIGRATE:
        rows = conn.execute(sql.SQL("SELECT version, dirty FROM {}").format(ident)).fetchall()
        return golang_migrate(schema, table, rows)
    if tool == DBMATE:
        rows = conn.execute(sql.SQL("SELECT version FROM {}").format(ident)).fetchall()
        return dbmate(schema, table, (r[0] for r in rows))
    if tool == GOOSE:
        rows = conn.execute(
            sql.SQL("SELECT id, version_id, is_applied, tstamp FROM {}").format(ident)
        ).fetchall()
        return goose(schema, table, rows)
    rows = conn.execute(
        sql.SQL("SELECT installed_rank, version, description, type, success, installed_on FROM {}").format(
            ident
        )
    ).fetchall()
    return flyway(schema, table, rows)


def require_taken_over(foreign: ForeignHistory | None, command: str) -> None:
    """Refuse a command that writes to pgship's table while another tool's table is still to take over."""
    if foreign is None or foreign.in_place:
        return
    raise Refused(
        f"`pgship {command}` works on pgship's tracking table, and this database still has "
        f"{foreign.description}",
        hint="Take it over first: `pgship migrate` (or `pgship baseline V`) copies its history into pgship's "
        f"table, then run `pgship {command}` again.",
    )


def failed_change(conn: psycopg.Connection, exc: Exception, doing: str, atomic: str) -> Exception:
    """What to raise when a change to a tracking table failed: the server's reason; nothing changed.

    A lost connection is returned as it is, for the caller to report (a COMMIT in flight has an
    unknown outcome).
    """
    if conn.closed or conn.broken:
        return exc
    reason = (str(exc).strip().splitlines() or ["unknown error"])[0]
    return PgshipError(
        f"could not {doing}: {reason}; nothing was changed",
        hint=f"{atomic}, so the database is as it was. Fix the cause and run pgship again.",
    )


def take_over(
    conn: psycopg.Connection,
    foreign: ForeignHistory,
    rows: Sequence[ForeignRow],
    *,
    target: sql.Composable,
    target_name: str,
    create: Sequence[sql.Composed],
) -> list[str]:
    """Copy ``rows`` into pgship's new table, in one transaction: all of it happens, or none of it.

    ``create`` makes pgship's table (``target``); a foreign table that has pgship's name is
    renamed aside first. The foreign table's rows are never changed.
    """
    import psycopg
    from psycopg import sql

    if foreign.refusal is not None:
        raise Refused(foreign.refusal.message, hint=foreign.refusal.hint, versions=foreign.refusal.versions)
    changes = []
    applied_by = f"adopted from {foreign.tool} ({foreign.qualified})"
    try:
        with conn.transaction():
            if foreign.set_aside:
                taken = conn.execute(
                    "SELECT to_regclass(%s) IS NOT NULL",
                    (
                        f'"{foreign.schema}"."{foreign.set_aside}"'
                        if foreign.schema
                        else f'"{foreign.set_aside}"',
                    ),
                ).fetchone()
                if taken and taken[0]:
                    raise Refused(
                        f"cannot take over {foreign.description}: the name it would be kept under, "
                        f"{foreign.set_aside}, is taken",
                        hint=f"Rename or drop {foreign.set_aside} (left by an earlier take-over?), then "
                        "run pgship again.",
                    )
                source = (
                    sql.Identifier(foreign.schema, foreign.table)
                    if foreign.schema
                    else sql.Identifier(foreign.table)
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(source, sql.Identifier(foreign.set_aside))
                )
                changes.append(f"kept {foreign.description} unchanged, renamed to {foreign.set_aside}")
            for statement in create:
                conn.execute(statement)
            if rows:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        sql.SQL(
                            "INSERT INTO {} (version, name, applied_at, applied_by) "
                            "VALUES (%s, %s, coalesce(%s::timestamptz, now()), %s)"
                        ).format(target),
                        [(r.version.text, r.name or "", r.applied_at, applied_by) for r in rows],
                    )
    except psycopg.Error as exc:
        raise failed_change(
            conn, exc, f"take over {foreign.description}", "The take-over runs in one transaction"
        ) from None
    changes.append(
        f"created the tracking table {target_name} from {foreign.description}: "
        f"{len(rows)} version(s) recorded as applied, none run again"
    )
    return changes


__all__ = ["failed_change", "find", "require_taken_over", "take_over"]
