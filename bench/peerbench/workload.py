"""The benchmark's migrations: one deterministic SQL workload, written in every tool's file format.

Every tool applies exactly the same statements, so differences in time are the
runners' own costs. Migration ``i`` (1-based) is one of five kinds, cycling:
create a table with an index, add a column, index that column, insert a few
rows, create a view. Each group of five works on its own table, so any
prefix of the sequence is a valid schema.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

TRACKING_TABLE = "schema_migrations"
TRACKING_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TRACKING_TABLE} ("
    "version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
)
KINDS = ("create_table", "add_column", "create_index", "insert_rows", "create_view")
ROWS_PER_INSERT = 3


@dataclass(frozen=True)
class Migration:
    number: int  # 1-based position in the sequence
    name: str
    sql: str

    def version(self, width: int) -> str:
        return f"{self.number:0{width}d}"


def migration(number: int) -> Migration:
    """The ``number``-th migration of the workload (1-based)."""
    group, kind = divmod(number - 1, len(KINDS))
    table = f"t{group}"
    if kind == 0:
        sql = (
            f"CREATE TABLE {table} (\n"
            "    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
            "    name text NOT NULL,\n"
            "    created_at timestamptz NOT NULL DEFAULT now()\n"
            ");\n"
            f"CREATE INDEX {table}_name_idx ON {table} (name);\n"
        )
    elif kind == 1:
        sql = f"ALTER TABLE {table} ADD COLUMN score integer NOT NULL DEFAULT 0;\n"
    elif kind == 2:
        sql = f"CREATE INDEX {table}_score_idx ON {table} (score);\n"
    elif kind == 3:
        sql = f"INSERT INTO {table} (name, score) VALUES ('alpha', 1), ('beta', 2), ('gamma', 3);\n"
    else:
        sql = f"CREATE VIEW v{group} AS SELECT id, name, score FROM {table} WHERE score > 1;\n"
    return Migration(number, f"{KINDS[kind]}_{table}", sql)


def migrations(count: int) -> list[Migration]:
    return [migration(number) for number in range(1, count + 1)]


@dataclass(frozen=True)
class ExpectedSchema:
    """What the database holds after the first ``count`` migrations, whoever applied them."""

    tables: int
    score_columns: int
    score_indexes: int
    rows: int
    views: int

    @classmethod
    def after(cls, count: int) -> ExpectedSchema:
        def kinds_upto(kind: int) -> int:  # how many of 1..count have this kind
            return (count + len(KINDS) - 1 - kind) // len(KINDS)

        return cls(
            tables=kinds_upto(0),
            score_columns=kinds_upto(1),
            score_indexes=kinds_upto(2),
            rows=ROWS_PER_INSERT * kinds_upto(3),
            views=kinds_upto(4),
        )


# Counts what the workload creates, so a run that exits 0 but applied nothing
# (or half) is caught. Rows are summed by ROW_COUNT_QUERY over TABLES_QUERY's tables.
SCHEMA_QUERY = r"""
SELECT
  (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'public' AND c.relkind = 'r' AND c.relname ~ '^t\d+$'),
  (SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'public' AND c.relname ~ '^t\d+$' AND a.attname = 'score' AND NOT a.attisdropped),
  (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname ~ '^t\d+_score_idx$'),
  (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
    WHERE s.nspname = 'public' AND c.relkind = 'v' AND c.relname ~ '^v\d+$')
"""
TABLES_QUERY = r"""
SELECT c.relname FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
 WHERE s.nspname = 'public' AND c.relkind = 'r' AND c.relname ~ '^t\d+$'
"""


def row_count_query(tables: list[str]) -> str:
    """One statement summing the rows of the workload's tables (names come from TABLES_QUERY)."""
    if not tables:
        return "SELECT 0"
    counts = " UNION ALL ".join(f'SELECT count(*) AS n FROM public."{name}"' for name in tables)
    return f"SELECT sum(n) FROM ({counts}) AS per_table"


def _width(count: int) -> int:
    return max(3, len(str(count)))


def write_numbered_dir(directory: Path, items: list[Migration]) -> Path:
    """``NNN_name.sql`` files: pgship's format, the psql loop's, and yoyo's (applied in file-name order)."""
    directory.mkdir(parents=True, exist_ok=True)
    width = _width(len(items))
    for item in items:
        (directory / f"{item.version(width)}_{item.name}.sql").write_text(item.sql)
    return directory


def dbmate_version(number: int) -> str:
    """A timestamp version, one second apart, as ``dbmate new`` would write them."""
    moment = dt.datetime(2024, 1, 1) + dt.timedelta(seconds=number)
    return moment.strftime("%Y%m%d%H%M%S")


def write_dbmate_dir(directory: Path, items: list[Migration]) -> Path:
    """``<timestamp>_name.sql`` files with dbmate's ``-- migrate:up`` / ``-- migrate:down`` sections."""
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        text = f"-- migrate:up\n{item.sql}\n-- migrate:down\n"
        (directory / f"{dbmate_version(item.number)}_{item.name}.sql").write_text(text)
    return directory


def floor_script(items: list[Migration]) -> str:
    """Everything in one psql session: each migration and its tracking row in one transaction."""
    width = _width(len(items))
    parts = [TRACKING_DDL + ";\n"]
    for item in items:
        parts.append(
            "BEGIN;\n"
            f"{item.sql}"
            f"INSERT INTO {TRACKING_TABLE} (version, name) VALUES ('{item.version(width)}', '{item.name}');\n"
            "COMMIT;\n"
        )
    return "".join(parts)


@dataclass(frozen=True)
class WorkloadFiles:
    count: int
    numbered: Path  # pgship, the psql loop and the minimal psycopg runner
    dbmate: Path
    yoyo: Path
    floor: Path


def write_workload(root: Path, count: int) -> WorkloadFiles:
    """Write the first ``count`` migrations in every format under ``root``."""
    items = migrations(count)
    floor = root / "floor.sql"
    root.mkdir(parents=True, exist_ok=True)
    floor.write_text(floor_script(items))
    return WorkloadFiles(
        count=count,
        numbered=write_numbered_dir(root / "migrations", items),
        dbmate=write_dbmate_dir(root / "db" / "migrations", items),
        yoyo=write_numbered_dir(root / "yoyo", items),
        floor=floor,
    )
