"""The tracking table: which migrations a database has applied.

Columns: ``version`` (primary key), ``name``, ``applied_at``, plus ``checksum``,
``execution_ms`` and ``applied_by``. A table left by a hand-written runner
(only ``version, name, applied_at``; ``version`` may even be an integer) is
upgraded in place by adding the missing columns; nothing is dropped or
rewritten. Writes never rely on a unique constraint, so a legacy table without
one keeps working. Tables that golang-migrate, dbmate, goose or Flyway built are
recognised and taken over by :mod:`pgship.adopt` (hooks in :func:`read` and
:func:`ensure`).

Every statement pgship runs on the tracking table is built (or run) here, the runner's guard
reads and its record/forget writes included: so this module is longer than ~400 lines, and one
place answers "what does pgship do to my tracking table".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pgship import adopt
from pgship.database import one_row
from pgship.digest import sha256
from pgship.migrations import Discovery, Version

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

DEFAULT_TABLE = "schema_migrations"
PGSHIP_COLUMNS = {
    "version": "text",
    "name": "text",
    "applied_at": "timestamptz NOT NULL DEFAULT now()",
    "checksum": "text",
    "execution_ms": "integer",
    "applied_by": "text",
}


@dataclass(frozen=True)
class TrackingTable:
    """The table's (optionally schema-qualified) name, as the user configured it."""

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, text: str) -> TrackingTable:
        """``name``, ``schema.name``, or either part double-quoted (``"public"."schema_migrations"``).

        Names are taken exactly as written (pgship quotes them): ``Schema_Migrations`` is not
        ``schema_migrations``. Quotes only delimit; they do not change the name.
        """
        parts = _split_name(text)
        if parts is None or len(parts) > 2 or not all(parts):
            raise ValueError(
                f"{text!r} is not a table name pgship accepts: use letters, digits and _, "
                "optionally schema-qualified (app.schema_migrations) or double-quoted"
            )
        if len(parts) == 1:
            return cls(name=parts[0])
        return cls(name=parts[1], schema=parts[0])

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name

    def identifier(self) -> sql.Identifier:
        from psycopg import sql

        return sql.Identifier(self.schema, self.name) if self.schema else sql.Identifier(self.name)

    def regclass_text(self) -> str:
        """The quoted name ``to_regclass()`` expects."""

        def quote(part: str) -> str:
            return '"' + part.replace('"', '""') + '"'

        return f"{quote(self.schema)}.{quote(self.name)}" if self.schema else quote(self.name)

    @property
    def lock_key(self) -> int:
        """A stable 64-bit advisory-lock key for this table, shared by every pgship process.

        Take it from the *resolved* table (:func:`resolve`, always schema-qualified): two spellings
        of one table (``schema_migrations``, ``public.schema_migrations``) must share one lock.
        """
        digest = sha256(f"pgship:{self}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)


_NAME_PART = re.compile(r'"((?:[^"]|"")+)"|([A-Za-z0-9_]+)')


def _split_name(text: str) -> list[str] | None:
    """The dot-separated parts of a table name, quotes removed; None if it is not one."""
    parts: list[str] = []
    position = 0
    while True:
        match = _NAME_PART.match(text, position)
        if match is None:
            return None
        parts.append(match[1].replace('""', '"') if match[1] is not None else match[2])
        position = match.end()
        if position == len(text):
            return parts
        if text[position] != ".":
            return None
        position += 1


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """One row of the tracking table."""

    version: Version
    name: str | None
    applied_at: datetime | None
    checksum: str | None
    execution_ms: int | None
    applied_by: str | None


@dataclass
class History:
    """The tracking table as read: whether it exists, which columns it lacks, its rows."""

    exists: bool = False
    missing_columns: list[str] = field(default_factory=list)
    rows: list[AppliedMigration] = field(default_factory=list)
    unreadable_versions: list[str] = field(default_factory=list)
    foreign: adopt.ForeignHistory | None = None  # another tool's table, to take over (pgship.adopt)

    @property
    def is_legacy(self) -> bool:
        return self.exists and bool(self.missing_columns)

    def by_version(self) -> dict[Version, AppliedMigration]:
        return {row.version: row for row in self.rows}

    def resolved(self, discovery: Discovery, *, baseline: bool = False) -> History:
        """With another tool's table: every version it counts as applied (golang-migrate: each file up
        to its one row). ``baseline``: a person's ``pgship baseline`` overrides a refusal. Pure."""
        foreign = self.foreign
        if foreign is None or foreign.in_place:
            return self
        foreign = foreign.baselined() if baseline else foreign
        found = adopt.applied_rows(foreign, ((m.version, m.name) for m in discovery.migrations))
        rows = [AppliedMigration(r.version, r.name, r.applied_at, None, None, foreign.tool) for r in found]
        return replace(self, rows=rows, foreign=foreign)


def read(conn: psycopg.Connection, table: TrackingTable) -> History:
    """Read the tracking table without writing anything (it may not exist yet)."""
    from psycopg import sql

    columns = [
        row[0]
        for row in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped",
            (table.regclass_text(),),
        )
    ]
    foreign = adopt.find(conn, table.schema, table.name, columns)  # another tool's table (pgship.adopt)
    if foreign is not None and not foreign.in_place:
        rows = [
            AppliedMigration(r.version, r.name, r.applied_at, None, None, foreign.tool) for r in foreign.rows
        ]
        return History(bool(columns), list(PGSHIP_COLUMNS), rows, list(foreign.unreadable), foreign)
    if not columns:
        return History()
    if "version" not in columns:
        from pgship.errors import Refused

        raise Refused(
            f"table {table} exists but has no version column, so it is not a migration tracking table",
            hint="Point pgship at its own table with --table NAME (or PGSHIP_TABLE).",
        )
    selected = [
        sql.SQL("{}::text").format(sql.Identifier(column))
        if column == "version"
        else sql.Identifier(column)
        if column in columns
        else sql.NULL
        for column in PGSHIP_COLUMNS
    ]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selected), table.identifier())
    history = History(exists=True, missing_columns=[c for c in PGSHIP_COLUMNS if c not in columns])
    _collect(history, conn.execute(query))
    history.foreign = foreign
    return history


def rows_as_json_query(table: TrackingTable) -> sql.Composed:
    """One statement returning every row as JSON, whatever columns the table has (legacy or not).

    Lets a caller that must stay within one round trip (the health check) read the
    table without first asking the catalogue which columns exist. A missing table
    raises ``UndefinedTable``.
    """
    from psycopg import sql

    return sql.SQL("SELECT to_jsonb(t) FROM {} AS t").format(table.identifier())


def from_json_rows(rows: Iterable[Mapping[str, Any]]) -> History:
    """The history from :func:`rows_as_json_query`'s rows. Pure.

    Raises ``ValueError`` when a row has no ``version``: the table is not a tracking table.
    """
    rows = list(rows)
    columns = set(rows[0]) if rows else set(PGSHIP_COLUMNS)
    if "version" not in columns:
        raise ValueError("the table has no version column, so it is not a migration tracking table")
    if adopt.shape(columns) == adopt.GOLANG_MIGRATE:  # not taken over yet: one row stands for all up to it
        foreign = adopt.golang_migrate(None, "schema_migrations", [(r["version"], r["dirty"]) for r in rows])
        applied = [AppliedMigration(r.version, None, None, None, None, foreign.tool) for r in foreign.rows]
        return History(True, list(PGSHIP_COLUMNS), applied, list(foreign.unreadable), foreign)
    history = History(exists=True, missing_columns=[c for c in PGSHIP_COLUMNS if c not in columns])
    _collect(
        history,
        (
            (
                row["version"],
                row.get("name"),
                _timestamp(row.get("applied_at")),
                row.get("checksum"),
                row.get("execution_ms"),
                row.get("applied_by"),
            )
            for row in rows
        ),
    )
    return history


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _collect(history: History, rows: Iterable[tuple[Any, ...]]) -> None:
    """Parse versions and keep one row per version (the one with a checksum, if any)."""
    merged: dict[Version, AppliedMigration] = {}
    for version_text, name, applied_at, checksum, execution_ms, applied_by in rows:
        try:
            version = Version.parse(str(version_text).strip())
        except ValueError:
            history.unreadable_versions.append(str(version_text))
            continue
        row = AppliedMigration(version, name, applied_at, checksum, execution_ms, applied_by)
        previous = merged.get(version)
        if previous is None or (previous.checksum is None and checksum is not None):
            merged[version] = row
    history.rows = sorted(merged.values(), key=lambda r: r.version.key)


def ensure(
    conn: psycopg.Connection, table: TrackingTable, history: History, reason: str | None = None
) -> list[str]:
    """Create the table, or add the columns a legacy one lacks. Returns what was done, in words.

    ``reason`` says why the table is created where it is (from :func:`resolve`).
    """
    import psycopg
    from psycopg import sql

    changes = []
    if history.foreign is not None and not history.foreign.in_place:  # another tool's table (pgship.adopt)
        current = read(conn, table)
        if current.foreign is None:  # a runner we waited for has taken it over already
            return ensure(conn, table, current)
        rows = [adopt.ForeignRow(r.version, r.name, r.applied_at) for r in history.rows]
        creating = create_statements(table)
        return adopt.take_over(
            conn, history.foreign, rows, target=table.identifier(), target_name=str(table), create=creating
        )
    if not history.exists:
        for statement in create_statements(table):
            conn.execute(statement)
        changes.append(f"created the tracking table {table}" + (f" ({reason})" if reason else ""))
    elif history.missing_columns:
        additions = sql.SQL(", ").join(
            sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(sql.Identifier(c), sql.SQL(PGSHIP_COLUMNS[c]))
            for c in history.missing_columns
        )
        owner = f"{history.foreign.tool}'s" if history.foreign else "the legacy"
        try:
            conn.execute(sql.SQL("ALTER TABLE {} {}").format(table.identifier(), additions))
        except psycopg.Error as exc:
            atomic = "It is one ALTER TABLE"
            raise adopt.failed_change(conn, exc, f"upgrade {owner} tracking table {table}", atomic) from None
        changes.append(f"upgraded {owner} tracking table {table}: added {', '.join(history.missing_columns)}")
    return changes


def create_statements(table: TrackingTable) -> list[sql.Composed]:
    """The statements that create pgship's tracking table (and its schema)."""
    from psycopg import sql

    statements = []
    if table.schema:
        statements.append(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.schema)))
    statements.append(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (version text PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now(), checksum text, execution_ms integer, "
            "applied_by text)"
        ).format(table.identifier())
    )
    return statements


@dataclass(frozen=True)
class Resolved:
    """Where the tracking table is (always schema-qualified) and, when it does not exist yet, why there."""

    table: TrackingTable
    reason: str | None = None


_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")


def resolve(conn: psycopg.Connection, table: TrackingTable) -> Resolved:
    """The schema-qualified tracking table a name means, found without trusting ``search_path``.

    A migration can change the search_path of every later session (``ALTER DATABASE ... SET
    search_path``, ``ALTER ROLE ... SET``), so an unqualified name is resolved in this order:

    1. a pgship tracking table of that name (it has ``version`` and ``checksum`` columns) in exactly
       one schema: that one, wherever the search_path points now;
    2. several: the one the search_path reaches, else a refusal naming them (``--table schema.name``);
    3. another tool's table of that name on the search_path (adoption): its schema;
    4. none yet: the first existing schema of the search_path, else ``public``, else a refusal.
       Once created there, rule 1 finds it from then on.
    """
    from pgship.errors import Refused

    if table.schema:
        return Resolved(table)
    rows = conn.execute(
        "SELECT n.nspname, c.oid = to_regclass(%s) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relname = %s AND c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\\_temp\\_%%' "
        "AND (SELECT count(*) FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND NOT a.attisdropped "
        "AND a.attname IN ('version', 'checksum')) = 2 ORDER BY n.nspname",
        (table.regclass_text(), table.name),
    ).fetchall()
    if len(rows) == 1:
        return Resolved(TrackingTable(table.name, rows[0][0]))
    if rows:
        visible = [schema for schema, on_path in rows if on_path]
        if visible:
            return Resolved(TrackingTable(table.name, visible[0]))
        raise Refused(
            f"pgship tracking tables named {table.name} exist in the schemas "
            f"{', '.join(r[0] for r in rows)}, and the search_path reaches none of them",
            hint=f"Name the one to use: --table SCHEMA.{table.name} (or PGSHIP_TABLE).",
        )
    row = conn.execute(
        "SELECT n.nspname FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (table.regclass_text(),),
    ).fetchone()
    if row is not None:
        return Resolved(TrackingTable(table.name, row[0]))
    first, path, has_public = one_row(
        conn.execute(
            "SELECT current_schema(), current_setting('search_path'), "
            "EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'public')"
        )
    )
    if first is not None and first not in _SYSTEM_SCHEMAS and not first.startswith("pg_"):
        return Resolved(TrackingTable(table.name, first), "the first existing schema of the search_path")
    if has_public:
        return Resolved(
            TrackingTable(table.name, "public"),
            f"no schema of the search_path ({path}) exists yet, so in public",
        )
    raise Refused(
        f"no schema to create the tracking table {table.name} in: none of the search_path ({path}) exists, "
        "and there is no public schema",
        hint=f"Name its schema: --table SCHEMA.{table.name} (pgship creates the schema if needed).",
    )


#: One tracking row as a 60-bit number, whatever the session's DateStyle or TimeZone (``applied_at`` is
#: left out). Rows are summed, so the runner updates its expected total per migration in O(1).
ROW_HASH = (
    "('x' || pg_catalog.substr(pg_catalog.md5(ROW(t.version::text, t.name::text, t.checksum::text, "
    "t.applied_by::text, t.execution_ms::text)::text), 1, 15))::pg_catalog.bit(60)::pg_catalog.int8"
)


def row_hashes_query(table: TrackingTable, versions: tuple[str, ...] | None = None) -> str:
    """``(version, hash)`` of every row (or of the rows of ``versions``). Needs a pgship-shaped table."""
    if versions is None:
        return _row_hashes_text(table)
    return f"{_row_hashes_text(table)} WHERE t.version::text IN ({_literals(versions)})"


def readback_query(table: TrackingTable, versions: tuple[str, ...] | str, oid: int) -> str:
    """What a run reads back after a migration's COMMIT, in one statement: first ``(<the table's
    file>, <how many prepared statements SQL's PREPARE left in the session>)``, then ``(hash,
    version)`` for each row of ``versions`` (literals, or an SQL list such as ``$1, $2``)."""
    return (
        f"SELECT pg_catalog.pg_relation_filenode('{oid}'::oid)::pg_catalog.int8, "
        "(SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements WHERE from_sql)::text "
        f"UNION ALL {_hashes_versions_text(table)} WHERE t.version::text IN ({_in_list(versions)})"
    )


def others_sum_sql(table: TrackingTable, versions: tuple[str, ...] | str) -> str:
    """An expression: the sum of the hashes of every row *not* of ``versions`` (a numeric); ``versions``
    are literals, or an SQL list such as ``$1, $2``."""
    before, after = _others_sum_text(table)
    return f"{before}{_in_list(versions)}{after}"


def _in_list(versions: tuple[str, ...] | str) -> str:
    return versions if isinstance(versions, str) else _literals(versions)


# Composed once per table with psycopg's sql module (quoting the table's name), then filled with
# versions per migration: composing for each of a thousand migrations cost more than sending it.
@functools.lru_cache(maxsize=16)
def _row_hashes_text(table: TrackingTable) -> str:
    from psycopg import sql

    return (
        sql.SQL("SELECT t.version::text, {} FROM {} AS t")
        .format(sql.SQL(ROW_HASH), table.identifier())
        .as_string(None)
    )


@functools.lru_cache(maxsize=16)
def _hashes_versions_text(table: TrackingTable) -> str:
    from psycopg import sql

    return (
        sql.SQL("SELECT {}, t.version::text FROM {} AS t")
        .format(sql.SQL(ROW_HASH), table.identifier())
        .as_string(None)
    )


@functools.lru_cache(maxsize=16)
def _others_sum_text(table: TrackingTable) -> tuple[str, str]:
    from psycopg import sql

    text = (
        sql.SQL(
            "(SELECT coalesce(pg_catalog.sum(h), 0) FROM (SELECT {} AS h FROM {} AS t "
            "WHERE t.version::text NOT IN (@@versions@@)) AS rows)"
        )
        .format(sql.SQL(ROW_HASH), table.identifier())
        .as_string(None)
    )
    before, _, after = text.partition("@@versions@@")
    return before, after


def _literals(values: tuple[str, ...]) -> str:
    return ", ".join(_quote(v) for v in values)


def version_spellings(version: str) -> tuple[str, str]:
    """The texts a version's row may hold: as written (``003``) and plain (``3``, a legacy integer column)."""
    return (version, plain_version(version))


def record_statement(
    table: TrackingTable,
    *,
    version: str,
    name: str,
    checksum: str | None,
    execution_ms: int | None,
    applied_by: str,
) -> sql.Composed:
    """An upsert of one row that works with or without a unique constraint on ``version``.

    A migration written for the old runner may insert its own row first; this
    statement then completes that row instead of adding a second one.
    """
    from psycopg import sql

    values = {
        "name": sql.Literal(name),
        "checksum": sql.Literal(checksum),
        "execution_ms": sql.Literal(execution_ms),
        "applied_by": sql.Literal(applied_by),
        "applied_at": sql.SQL("now()"),
    }
    return _upsert(table, values, sql.Literal(version), sql.Literal(plain_version(version)))


def _upsert(
    table: TrackingTable,
    values: Mapping[str, sql.Composable],
    version: sql.Composable,
    plain: sql.Composable,
    inserted: sql.Composable | None = None,
) -> sql.Composed:
    """``inserted``: the version as the new row's value, when it is not ``version`` (a parameter of its
    own, so the server gives it the column's type, while ``version`` is compared as text)."""
    from psycopg import sql

    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), v) for k, v in values.items()
    )
    columns = sql.SQL(", ").join(sql.Identifier(k) for k in ("version", *values))
    return sql.SQL(
        "WITH updated AS (UPDATE {table} SET {assignments} WHERE version::text IN ({version}, {plain}) "
        "RETURNING 1) "
        "INSERT INTO {table} ({columns}) SELECT {inserted}, {values} WHERE NOT EXISTS (SELECT 1 FROM updated)"
    ).format(
        table=table.identifier(),
        assignments=assignments,
        version=version,
        inserted=version if inserted is None else inserted,
        plain=plain,
        columns=columns,
        values=sql.SQL(", ").join(values.values()),
    )


#: ``execution_ms`` measured by the server: the transaction started at the migration's BEGIN.
SERVER_TIMED_MS = "(extract(epoch FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer"
_FIELDS = ("version", "plain", "name", "checksum", "applied_by")
_MARKER = re.compile(r"@@(\w+)@@")


class RecordTemplate:
    """:func:`record_statement` composed once per run, with the server timing the migration.

    Composing and quoting a statement with psycopg's ``sql`` module for each of a thousand
    migrations cost more than the round trip it rides in; filling five literals into a
    ready string does not. Values stay untyped literals, so a legacy ``integer`` version
    column takes them as before.
    """

    def __init__(self, table: TrackingTable, conn: psycopg.Connection) -> None:
        from psycopg import sql

        marker = {field: sql.SQL(f"@@{field}@@") for field in _FIELDS}
        values = {
            "name": marker["name"],
            "checksum": marker["checksum"],
            "execution_ms": sql.SQL(SERVER_TIMED_MS),
            "applied_by": marker["applied_by"],
            "applied_at": sql.SQL("now()"),
        }
        self._text = _upsert(table, values, marker["version"], marker["plain"]).as_string(conn)

    def render(self, *, version: str, name: str, checksum: str | None, applied_by: str) -> str:
        literals = {
            "version": _quote(version),
            "plain": _quote(plain_version(version)),
            "name": _quote(name),
            "checksum": _quote(checksum),
            "applied_by": _quote(applied_by),
        }
        return _MARKER.sub(lambda match: literals[match[1]], self._text)  # one pass: values never rescanned


def prepared_record_sql(table: TrackingTable, conn: psycopg.Connection) -> str:
    """:class:`RecordTemplate`'s statement with parameters, for a statement prepared once per run:
    ``$1`` and ``$2`` the version's spellings (compared as text), ``$3`` name, ``$4`` checksum,
    ``$5`` applied_by, ``$6`` the version as the new row's value."""
    from psycopg import sql

    values = {
        "name": sql.SQL("$3"),
        "checksum": sql.SQL("$4"),
        "execution_ms": sql.SQL(SERVER_TIMED_MS),
        "applied_by": sql.SQL("$5"),
        "applied_at": sql.SQL("now()"),
    }
    return _upsert(table, values, sql.SQL("$1"), sql.SQL("$2"), sql.SQL("$6")).as_string(conn)


def _quote(value: str | None) -> str:
    """A SQL literal (standard_conforming_strings, on by default since PostgreSQL 9.1)."""
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def plain_version(version: str) -> str:
    """The version as a legacy integer column holds it: ``003`` is ``3``."""
    return ".".join(str(int(part)) for part in version.split("."))


def set_checksum(conn: psycopg.Connection, table: TrackingTable, version: Version, checksum: str) -> None:
    """Record ``checksum`` for an applied version (adopting a legacy row, or a deliberate repair)."""
    from psycopg import sql

    conn.execute(
        sql.SQL("UPDATE {} SET checksum = %s WHERE version::text = %s OR version::text = %s").format(
            table.identifier()
        ),
        (checksum, version.text, ".".join(str(p) for p in version.parts)),
    )


def record(
    conn: psycopg.Connection,
    table: TrackingTable,
    *,
    version: str,
    name: str,
    checksum: str | None,
    execution_ms: int | None,
    applied_by: str,
) -> None:
    """Write (or complete) one migration's tracking row, on its own (:func:`record_statement`)."""
    conn.execute(
        record_statement(
            table,
            version=version,
            name=name,
            checksum=checksum,
            execution_ms=execution_ms,
            applied_by=applied_by,
        )
    )


def forget(conn: psycopg.Connection, table: TrackingTable, version: Version) -> None:
    """Delete the row(s) of ``version`` (``repair --forget-missing``: its file was deleted)."""
    from psycopg import sql

    conn.execute(
        sql.SQL("DELETE FROM {} WHERE version::text IN (%s, %s)").format(table.identifier()),
        (version.text, ".".join(str(p) for p in version.parts)),
    )


def recorded_versions(conn: psycopg.Connection, table: TrackingTable) -> set[str]:
    """Every version text the table holds; empty if the table does not exist."""
    from psycopg import sql

    if one_row(conn.execute("SELECT to_regclass(%s)", (table.regclass_text(),)))[0] is None:
        return set()
    rows = conn.execute(sql.SQL("SELECT version::text FROM {}").format(table.identifier())).fetchall()
    return {row[0] for row in rows}


def is_intact(conn: psycopg.Connection, table: TrackingTable) -> bool:
    """The table is still there with all of pgship's columns (a migration may drop or rename it)."""
    if one_row(conn.execute("SELECT to_regclass(%s)", (table.regclass_text(),)))[0] is None:
        return False
    return not read(conn, table).missing_columns


def others_sum(conn: psycopg.Connection, table: TrackingTable, versions: tuple[str, ...]) -> Any:
    """The sum of the hashes of every row not of ``versions`` (:func:`others_sum_sql`), as read now."""
    return one_row(conn.execute(f"SELECT {others_sum_sql(table, versions)}"))[0]


class KnownRows:
    """The tracking table as this run knows it: each version's row hashes and their total."""

    def __init__(self, oid: int, filenode: int | None) -> None:
        self.oid = oid
        self.filenode = filenode
        self._by_version: dict[str, list[int]] = {}
        self._total = 0

    def expected(self, own: tuple[str, ...]) -> int:
        """The sum of the hashes of every row not of ``own`` (what the guard's query must find)."""
        return self._total - sum(h for version in own for h in self._by_version.get(version, ()))

    def replace(self, own: tuple[str, ...], rows: Any) -> None:
        """Forget the rows of ``own``, then add ``rows`` (``(version, hash)`` pairs)."""
        for version in own:
            self._total -= sum(self._by_version.pop(version, ()))
        for version, value in rows:
            self._by_version.setdefault(version, []).append(value)
            self._total += value


def read_known_rows(conn: psycopg.Connection, table: TrackingTable) -> KnownRows:
    """Every row's hash, the table's oid and its file (a TRUNCATE or rewrite changes the file)."""
    oid, filenode = one_row(
        conn.execute(
            "SELECT to_regclass(%s)::oid, pg_catalog.pg_relation_filenode(to_regclass(%s))",
            (table.regclass_text(), table.regclass_text()),
        )
    )
    rows = KnownRows(oid, filenode)
    rows.replace((), conn.execute(row_hashes_query(table)).fetchall())
    return rows
