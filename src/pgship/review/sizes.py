"""How big the tables a release touches are in production: the catalog's estimates, read without locking.

One read-only transaction; each table is looked up by name with ``to_regclass``
(a table that does not exist yet is reported as such: an earlier migration of
the release creates it). ``pg_class.reltuples`` is the planner's row estimate,
kept fresh by autovacuum's ANALYZE; ``pg_total_relation_size`` counts the table,
its indexes and TOAST. A short ``lock_timeout`` keeps the review from queueing
behind a migration that holds ACCESS EXCLUSIVE on a table: that table's size is
then reported as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from pgship.database import one_row

_SIZE = """
SELECT c.relkind::text,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint
            WHEN pg_relation_size(c.oid) = 0 THEN 0 END,
       pg_total_relation_size(c.oid)
  FROM pg_class c
 WHERE c.oid = to_regclass(%s)
"""


@dataclass(frozen=True)
class TableSize:
    """One relation's size in production."""

    relation: str
    exists: bool
    rows: int | None = None  # None: never analysed (and not empty), or not readable right now
    bytes: int | None = None
    kind: str | None = None  # pg_class.relkind: r table, i index, m materialized view, p partitioned...
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``52,000 rows, 12 MB`` / ``new in this release`` / ``rows unknown (never analysed), 8 kB``."""
        if not self.exists:
            return "not in the database yet"
        rows = f"{self.rows:,} rows" if self.rows is not None else "rows unknown"
        if self.rows is None and self.note:
            rows += f" ({self.note})"
        return f"{rows}, {human_bytes(self.bytes)}" if self.bytes is not None else rows


def human_bytes(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def regclass_text(name: str) -> str:
    """A case-folded ``schema.name`` from a parse tree, quoted the way ``to_regclass`` reads it."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split(".") if part)


def server_major(conn: psycopg.Connection) -> int:
    return int(one_row(conn.execute("SHOW server_version_num"))[0]) // 10000


def table_sizes(conn: psycopg.Connection, relations: Iterable[str]) -> dict[str, TableSize]:
    """The size of each named relation, read in one read-only transaction; changes nothing."""
    sizes: dict[str, TableSize] = {}
    names = sorted(set(relations))
    if not names:
        return sizes
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute("SET LOCAL lock_timeout = '2s'")
        conn.execute("SET LOCAL statement_timeout = '30s'")
        for name in names:
            try:
                with conn.transaction():
                    row = conn.execute(_SIZE, (regclass_text(name),)).fetchone()
            except psycopg.errors.LockNotAvailable:
                sizes[name] = TableSize(name, True, note="locked by another session right now")
                continue
            if row is None:
                sizes[name] = TableSize(name, False)
                continue
            kind, rows, total = row
            note = "never analysed: run ANALYZE" if rows is None else None
            sizes[name] = TableSize(name, True, rows, total, kind, note)
    return sizes


__all__ = ["TableSize", "human_bytes", "regclass_text", "server_major", "table_sizes"]
