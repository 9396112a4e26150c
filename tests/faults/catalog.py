"""What a database holds, read from PostgreSQL's catalogs, in a form two databases can be compared by.

The invariant of every fault trial is about the *database*, not pgship's own
bookkeeping: the tracking rows could say "k applied" while a table of migration
k+1 exists. A :class:`Snapshot` therefore records the schema objects (tables,
columns, defaults, comments, indexes and whether they are valid, constraints,
functions, views, types, sequences, triggers), an order-independent digest of
every table's rows, and the tracking table's rows (version, name, checksum) on
their own.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

import psycopg

# One round trip: every section as JSON. Objects of the tracking table (its primary key index)
# are reported under "tracking", never as schema, so a runner creating it is not a schema change.
_SNAPSHOT_SQL = """
WITH user_ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\\_%%' AND nspname <> 'information_schema'
),
tracking AS (SELECT to_regclass(%(tracking)s) AS oid),
rels AS (
    SELECT c.oid, n.nspname || '.' || c.relname AS name, c.relkind
    FROM pg_class c JOIN user_ns n ON n.oid = c.relnamespace
    WHERE c.oid IS DISTINCT FROM (SELECT oid FROM tracking)
      AND NOT EXISTS (SELECT 1 FROM pg_index i
                      WHERE i.indexrelid = c.oid AND i.indrelid = (SELECT oid FROM tracking))
      AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'i')
)
SELECT json_build_object(
  'schemas', (SELECT coalesce(json_agg(nspname ORDER BY nspname), '[]') FROM user_ns),
  'relations', (SELECT coalesce(json_agg(name || ' ' || relkind::text ORDER BY name), '[]') FROM rels),
  'columns', (
    SELECT coalesce(json_agg(r.name || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
        || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
        || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
        || coalesce(' comment ' || col_description(r.oid, a.attnum), '')
        ORDER BY r.name, a.attnum), '[]')
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum
    WHERE r.relkind IN ('r', 'v', 'm', 'p')),
  'indexes', (
    SELECT coalesce(json_agg(pg_get_indexdef(i.indexrelid)
        || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
        || CASE WHEN i.indisready THEN '' ELSE ' NOT READY' END ORDER BY 1), '[]')
    FROM pg_index i JOIN rels r ON r.oid = i.indexrelid),
  'constraints', (
    SELECT coalesce(json_agg(r.name || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
        ORDER BY r.name, con.conname), '[]')
    FROM pg_constraint con JOIN rels r ON r.oid = con.conrelid),
  'functions', (
    SELECT coalesce(json_agg(n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid)
        || ') ' || md5(p.prosrc) ORDER BY 1), '[]')
    FROM pg_proc p JOIN user_ns n ON n.oid = p.pronamespace),
  'views', (
    SELECT coalesce(json_agg(r.name || ' AS ' || pg_get_viewdef(r.oid) ORDER BY r.name), '[]')
    FROM rels r WHERE r.relkind IN ('v', 'm')),
  'types', (
    SELECT coalesce(json_agg(n.nspname || '.' || t.typname || ' ' || t.typtype::text
        || coalesce(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                            FROM pg_enum e WHERE e.enumtypid = t.oid), '') ORDER BY 1), '[]')
    FROM pg_type t JOIN user_ns n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND EXISTS (
        SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c'))),
  'triggers', (
    SELECT coalesce(json_agg(pg_get_triggerdef(tg.oid) ORDER BY 1), '[]')
    FROM pg_trigger tg JOIN rels r ON r.oid = tg.tgrelid WHERE NOT tg.tgisinternal),
  'tables', (SELECT coalesce(json_agg(r.oid::regclass::text ORDER BY r.name), '[]')
              FROM rels r WHERE r.relkind IN ('r', 'p'))
)
"""

_TRACKING_SQL = "SELECT version::text, name, checksum FROM {table} ORDER BY version::text"


@dataclass(frozen=True)
class Snapshot:
    """The schema (plus row digests) and the tracking rows of one database at one moment."""

    schema: dict[str, Any]
    tracking: tuple[tuple[str, str | None, str | None], ...]
    tracking_table_exists: bool

    @property
    def applied_versions(self) -> list[str]:
        return [row[0] for row in self.tracking]

    def invalid_indexes(self) -> list[str]:
        return [index for index in self.schema["indexes"] if index.endswith(("INVALID", "NOT READY"))]

    def without_invalid_indexes(self) -> dict[str, Any]:
        """The schema as it would be once INVALID indexes (left by an interrupted build) are dropped."""
        schema = dict(self.schema)
        invalid_names = {_index_name(index) for index in self.invalid_indexes()}
        schema["indexes"] = [i for i in schema["indexes"] if _index_name(i) not in invalid_names]
        schema["relations"] = [
            r
            for r in schema["relations"]
            if not (r.endswith(" i") and r[:-2].split(".")[-1] in invalid_names)
        ]
        return schema


def _index_name(indexdef: str) -> str:
    # "CREATE [UNIQUE] INDEX name ON ..."
    words = indexdef.split()
    return words[words.index("INDEX") + 1]


def take_snapshot(url: str, tracking_table: str = "schema_migrations") -> Snapshot:
    """Read the database at ``url``; never writes."""
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute(_SNAPSHOT_SQL, {"tracking": tracking_table}).fetchone()
        # json_agg order is not relied on: every list is sorted here
        schema = {key: sorted(value) for key, value in (row[0] if row else {}).items()}
        schema["rows"] = _row_digests(conn, schema.pop("tables", []))
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (tracking_table,)).fetchone()[0]
        tracking: tuple[tuple[str, str | None, str | None], ...] = ()
        if exists:
            tracking = tuple(
                tuple(r)  # type: ignore[misc]
                for r in conn.execute(_TRACKING_SQL.format(table=tracking_table)).fetchall()
            )
    return Snapshot(schema=schema, tracking=tracking, tracking_table_exists=bool(exists))


def _row_digests(conn: psycopg.Connection, tables: list[str]) -> dict[str, str]:
    """Row count and an order-independent hash of every row, per table, in one round trip."""
    if not tables:
        return {}
    from psycopg import sql

    parts = [
        sql.SQL(
            "SELECT {name}, count(*) || ':' || coalesce(sum(hashtext(t::text)::numeric), 0) FROM {table} t"
        ).format(name=sql.Literal(name), table=sql.SQL(name))  # regclass text: already quoted
        for name in tables
    ]
    rows = conn.execute(sql.SQL(" UNION ALL ").join(parts)).fetchall()
    return {name: digest for name, digest in rows}


def schema_diff(expected: dict[str, Any], actual: dict[str, Any], limit: int = 30) -> str:
    """A short unified diff of two schemas, for a failure message."""
    left = json.dumps(expected, indent=1, sort_keys=True).splitlines()
    right = json.dumps(actual, indent=1, sort_keys=True).splitlines()
    lines = list(difflib.unified_diff(left, right, "expected", "actual", lineterm="", n=1))
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return "\n".join(lines)
