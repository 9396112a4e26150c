"""Which lock each statement of a migration takes, on which relation, and what work it does.

Pure: reads PostgreSQL's parse tree (pglast) of a migration's text and applies
the lock levels PostgreSQL documents ("Explicit Locking", table-level locks, and
each command's reference page). No database is involved; the integration test
``tests/integration/test_review_locks.py`` holds every rule here against the
locks a real server takes (``pg_locks``).

The claims are deliberately about the *strongest* lock a statement takes on a
relation, because that is what decides who waits: ACCESS EXCLUSIVE blocks even
``SELECT``; SHARE and stronger block writes; SHARE UPDATE EXCLUSIVE and weaker
block neither.

One file although over 400 lines: after the model (the lock modes and what a review says),
most of it is the rule table, one handler per kind of statement with the lock its reference
page documents, and the dispatch table that names them. Kept together, the whole table reads
against PostgreSQL's documentation in one place, as ``test_review_locks.py`` checks it
against ``pg_locks``.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

_NON_ASCII = re.compile(r"[^\x00-\x7f]")


class LockMode(IntEnum):
    """PostgreSQL's table-level lock modes, weakest to strongest (their conflict order)."""

    NONE = 0
    ACCESS_SHARE = 1
    ROW_SHARE = 2
    ROW_EXCLUSIVE = 3
    SHARE_UPDATE_EXCLUSIVE = 4
    SHARE = 5
    SHARE_ROW_EXCLUSIVE = 6
    EXCLUSIVE = 7
    ACCESS_EXCLUSIVE = 8

    @property
    def label(self) -> str:
        """As the documentation writes it: ``ACCESS EXCLUSIVE``."""
        return "none" if self is LockMode.NONE else self.name.replace("_", " ")

    @property
    def pg_name(self) -> str | None:
        """As ``pg_locks.mode`` shows it: ``AccessExclusiveLock``."""
        if self is LockMode.NONE:
            return None
        return "".join(part.capitalize() for part in self.name.split("_")) + "Lock"

    @property
    def slug(self) -> str:
        """As ``--fail-on`` spells it: ``access-exclusive``."""
        return self.name.lower().replace("_", "-")

    @property
    def blocks_reads(self) -> bool:
        return self is LockMode.ACCESS_EXCLUSIVE

    @property
    def blocks_writes(self) -> bool:
        """SHARE and stronger conflict with ROW EXCLUSIVE, the lock INSERT/UPDATE/DELETE take."""
        return self >= LockMode.SHARE

    @property
    def effect(self) -> str:
        """What the application notices while the lock is held."""
        if self.blocks_reads:
            return "blocks reads and writes"
        if self.blocks_writes:
            return "blocks writes"
        if self is LockMode.NONE:
            return "no lock on an existing table"
        if self is LockMode.SHARE_UPDATE_EXCLUSIVE:
            return "does not block reads or writes (blocks schema changes and VACUUM)"
        return "does not block reads or writes"

    @classmethod
    def from_pg_name(cls, name: str) -> LockMode:
        for mode in cls:
            if mode.pg_name == name:
                return mode
        raise ValueError(f"unknown lock mode {name!r}")

    @classmethod
    def from_slug(cls, text: str) -> LockMode:
        wanted = text.strip().lower().replace("_", "-").replace(" ", "-")
        for mode in cls:
            if mode is not LockMode.NONE and mode.slug == wanted:
                return mode
        names = ", ".join(m.slug for m in cls if m is not LockMode.NONE)
        raise ValueError(f"{text!r} is not a lock mode (one of: {names})")


class Work:
    """What a statement does to a table's data while it holds its lock."""

    NONE = "none"
    SCAN = "scan"  # reads every row (validation, index build): time grows with the table
    REWRITE = "rewrite"  # writes a new copy of the table and its indexes: time and disk grow with it
    ROWS = "rows"  # writes rows (DML): row locks, WAL and bloat grow with the rows touched


_WORK_ORDER = {Work.NONE: 0, Work.ROWS: 1, Work.SCAN: 2, Work.REWRITE: 3}


@dataclass(frozen=True)
class RelationLock:
    """The strongest lock a statement takes on one relation, and why."""

    relation: str  # as written in the migration, case-folded: "customers", "shop.orders"
    mode: LockMode
    work: str = Work.NONE
    reason: str = ""
    new: bool = False  # the relation is created by this statement (nobody else can be waiting for it)


@dataclass(frozen=True)
class StatementReview:
    """One statement of a migration: what it is, what it locks, what it costs."""

    line: int
    kind: str  # "ALTER TABLE ... ADD COLUMN"
    text: str
    locks: tuple[RelationLock, ...] = ()
    in_transaction: bool = True
    notes: tuple[str, ...] = ()
    unknown: bool = False  # pgship cannot tell what it locks (DO blocks, functions called by SELECT)

    @property
    def mode(self) -> LockMode:
        """The strongest lock this statement takes on an existing relation."""
        return max((lock.mode for lock in self.locks if not lock.new), default=LockMode.NONE)

    @property
    def work(self) -> str:
        return max((lock.work for lock in self.locks), key=_WORK_ORDER.__getitem__, default=Work.NONE)


@dataclass
class ScriptReview:
    """Every statement of one migration file."""

    statements: list[StatementReview] = field(default_factory=list)
    no_transaction: bool = False
    error: str | None = None  # the file does not parse


# -- entry points ------------------------------------------------------------------
def review_sql(text: str, *, no_transaction: bool = False, server_major: int | None = None) -> ScriptReview:
    """The statements of a migration's text with their locks (``server_major``: production's version)."""
    from pglast import parser

    review = ScriptReview(no_transaction=no_transaction)
    parseable = _NON_ASCII.sub("x", text)
    try:
        tree = json.loads(parser.parse_sql_json(parseable))
    except parser.ParseError as exc:
        review.error = f"SQL syntax error: {exc.args[0] if exc.args else exc}"
        return review
    newlines = [index for index, char in enumerate(text) if char == "\n"]
    for raw in tree.get("stmts", []):
        location = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0) or len(parseable) - location
        snippet = text[location : location + length]
        stripped = _strip_leading_comments(snippet)
        start = location + (len(snippet) - len(stripped))
        ((node_type, node),) = raw["stmt"].items()
        if node_type == "TransactionStmt":
            continue  # BEGIN/COMMIT around the file: pgship runs it in a transaction anyway
        kind, locks, notes, unknown = classify(node_type, node, server_major=server_major)
        review.statements.append(
            StatementReview(
                line=bisect_right(newlines, start - 1) + 1,
                kind=kind,
                text=stripped.strip(),
                locks=tuple(locks),
                in_transaction=not no_transaction,
                notes=tuple(notes),
                unknown=unknown,
            )
        )
    return review


def _strip_leading_comments(snippet: str) -> str:
    text = snippet
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            newline = text.find("\n")
            text = "" if newline < 0 else text[newline + 1 :]
        elif text.startswith("/*"):
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2 :]
        else:
            return text


Classified = tuple[str, list[RelationLock], list[str], bool]
#: Classifies one statement's parse tree, given the server's major version (None: not known).
Handler = Callable[[dict[str, Any], int | None], Classified]


def classify(node_type: str, node: dict[str, Any], *, server_major: int | None = None) -> Classified:
    """``(kind, locks, notes, unknown)`` for one parse-tree statement."""
    handler = _HANDLERS.get(node_type)
    if handler is not None:
        return handler(node, server_major)
    if node_type in _CATALOG_ONLY:
        return _CATALOG_ONLY[node_type], [], [], False
    kind = _words(node_type.removesuffix("Stmt"))
    return kind, [], [f"pgship has no lock rule for {kind}: check its documentation"], True


# -- names -------------------------------------------------------------------------
def relation_name(range_var: dict[str, Any]) -> str:
    """``schema.name`` or ``name``, as PostgreSQL case-folded it."""
    name = range_var.get("relname", "")
    schema = range_var.get("schemaname")
    return f"{schema}.{name}" if schema else name


def _list_name(item: dict[str, Any]) -> str:
    parts = [part.get("String", {}).get("sval", "") for part in item.get("List", {}).get("items", [])]
    return ".".join(parts)


def _words(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", camel).upper()


# -- default expressions -----------------------------------------------------------
#: Functions PostgreSQL marks VOLATILE that are common in column defaults: a new column defaulting to
#: one of them gets a value per row, so the table is rewritten.
VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "setseed",
        "txid_current",
        "pg_current_xact_id",
    }
)
#: Functions that are STABLE or IMMUTABLE: evaluated once for an ADD COLUMN, stored in the catalog.
STABLE_FUNCTIONS = frozenset(
    {
        "now",
        "transaction_timestamp",
        "statement_timestamp",
        "current_setting",
        "lower",
        "upper",
        "coalesce",
        "to_jsonb",
        "jsonb_build_object",
        "json_build_object",
        "array",
        "make_interval",
        "make_date",
        "to_timestamp",
        "to_date",
    }
)
_SERIAL_TYPES = frozenset({"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"})


def volatile_calls(expression: Any) -> list[str]:
    """Names of functions in ``expression`` that are (or may be) VOLATILE; empty when it is not volatile.

    An unknown function counts as volatile: a review that guesses "no rewrite" wrongly is the
    dangerous mistake.
    """
    found: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            call = item.get("FuncCall")
            if call is not None:
                name = call.get("funcname", [{}])[-1].get("String", {}).get("sval", "")
                if name not in STABLE_FUNCTIONS:
                    found.append(name)
            for value in item.values():
                walk(value)
        elif isinstance(item, list):
            for value in item:
                walk(value)

    walk(expression)
    return found


# -- statements --------------------------------------------------------------------
def _create_table(node: dict[str, Any], _: int | None) -> Classified:
    table = relation_name(node.get("relation", {}))
    locks = [RelationLock(table, LockMode.ACCESS_EXCLUSIVE, reason="the new table", new=True)]
    notes: list[str] = []
    for parent in node.get("inhRelations", []):
        rel = parent.get("RangeVar", {})
        if node.get("partbound"):
            locks.append(
                RelationLock(
                    relation_name(rel), LockMode.ACCESS_EXCLUSIVE, reason="CREATE TABLE ... PARTITION OF"
                )
            )
        else:
            locks.append(
                RelationLock(relation_name(rel), LockMode.SHARE_UPDATE_EXCLUSIVE, reason="INHERITS parent")
            )
    for element in node.get("tableElts", []):
        constraints = element.get("ColumnDef", {}).get("constraints", [])
        if "Constraint" in element:
            constraints = [element]
        for item in constraints:
            constraint = item.get("Constraint", {})
            if constraint.get("contype") == "CONSTR_FOREIGN":
                referenced = relation_name(constraint.get("pktable", {}))
                if referenced != table:
                    locks.append(
                        RelationLock(
                            referenced, LockMode.SHARE_ROW_EXCLUSIVE, reason="referenced by a new foreign key"
                        )
                    )
    return "CREATE TABLE", locks, notes, False


def _create_index(node: dict[str, Any], _: int | None) -> Classified:
    table = relation_name(node.get("relation", {}))
    unique = "UNIQUE " if node.get("unique") else ""
    if node.get("concurrent"):
        lock = RelationLock(
            table,
            LockMode.SHARE_UPDATE_EXCLUSIVE,
            Work.SCAN,
            "builds the index while reads and writes go on (two scans, waits for running transactions)",
        )
        notes = ["a failed CONCURRENTLY build leaves an INVALID index behind: drop it before retrying"]
        return f"CREATE {unique}INDEX CONCURRENTLY", [lock], notes, False
    lock = RelationLock(table, LockMode.SHARE, Work.SCAN, "builds the index: writes wait until it is built")
    return f"CREATE {unique}INDEX", [lock], ["use CREATE INDEX CONCURRENTLY on a table in use"], False


def _alter_table(node: dict[str, Any], server_major: int | None) -> Classified:
    objtype = node.get("objtype", "OBJECT_TABLE")
    table = relation_name(node.get("relation", {}))
    locks: list[RelationLock] = []
    notes: list[str] = []
    subtypes: list[str] = []
    for item in node.get("cmds", []):
        command = item.get("AlterTableCmd", {})
        name, command_locks, command_notes = _alter_table_command(table, command, server_major)
        subtypes.append(name)
        locks.extend(command_locks)
        notes.extend(command_notes)
    noun = {"OBJECT_INDEX": "INDEX", "OBJECT_SEQUENCE": "SEQUENCE", "OBJECT_VIEW": "VIEW"}.get(
        objtype, "MATERIALIZED VIEW" if objtype == "OBJECT_MATVIEW" else "TABLE"
    )
    kind = f"ALTER {noun}" + (f" ... {', '.join(dict.fromkeys(subtypes))}" if subtypes else "")
    return kind, _strongest_per_relation(locks), notes, False


def _alter_table_command(
    table: str, command: dict[str, Any], server_major: int | None
) -> tuple[str, list[RelationLock], list[str]]:
    subtype = command.get("subtype", "")
    definition = command.get("def", {})
    exclusive = LockMode.ACCESS_EXCLUSIVE
    if subtype == "AT_AddColumn":
        return _add_column(table, definition.get("ColumnDef", {}), server_major)
    if subtype == "AT_AlterColumnType":
        return (
            "ALTER COLUMN TYPE",
            [
                RelationLock(
                    table,
                    exclusive,
                    Work.REWRITE,
                    "rewrites the table and rebuilds its indexes (unless the types are binary-compatible, "
                    "e.g. varchar(n) to text)",
                )
            ],
            [],
        )
    if subtype == "AT_SetNotNull":
        return (
            "SET NOT NULL",
            [RelationLock(table, exclusive, Work.SCAN, "scans every row for NULLs while holding the lock")],
            ["add a CHECK (col IS NOT NULL) NOT VALID constraint and VALIDATE it first: then no scan"],
        )
    if subtype == "AT_AddConstraint":
        return _add_constraint(table, definition.get("Constraint", {}))
    if subtype == "AT_ValidateConstraint":
        return (
            "VALIDATE CONSTRAINT",
            [
                RelationLock(
                    table,
                    LockMode.SHARE_UPDATE_EXCLUSIVE,
                    Work.SCAN,
                    "scans the table without blocking reads or writes",
                )
            ],
            [],
        )
    if subtype in ("AT_DropColumn",):
        return "DROP COLUMN", [RelationLock(table, exclusive, Work.NONE, "marks the column dropped")], []
    if subtype in ("AT_ColumnDefault",):
        return "ALTER COLUMN DEFAULT", [RelationLock(table, exclusive, Work.NONE, "catalog change only")], []
    if subtype in ("AT_DropNotNull",):
        return "DROP NOT NULL", [RelationLock(table, exclusive, Work.NONE, "catalog change only")], []
    if subtype in ("AT_DropConstraint",):
        return "DROP CONSTRAINT", [RelationLock(table, exclusive, Work.NONE, "catalog change only")], []
    if subtype in ("AT_SetStatistics", "AT_SetOptions", "AT_ResetOptions", "AT_ClusterOn", "AT_DropCluster"):
        return (
            _words(subtype.removeprefix("AT_")),
            [RelationLock(table, LockMode.SHARE_UPDATE_EXCLUSIVE, Work.NONE, "catalog change only")],
            [],
        )
    if subtype in ("AT_SetRelOptions", "AT_ResetRelOptions"):
        return (
            "SET (storage parameters)",
            [
                RelationLock(
                    table,
                    LockMode.SHARE_UPDATE_EXCLUSIVE,
                    Work.NONE,
                    "fillfactor and autovacuum parameters; some parameters take ACCESS EXCLUSIVE",
                )
            ],
            [],
        )
    if subtype.startswith(("AT_EnableTrig", "AT_DisableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig")):
        return (
            "ENABLE/DISABLE TRIGGER",
            [RelationLock(table, LockMode.SHARE_ROW_EXCLUSIVE, Work.NONE, "catalog change only")],
            [],
        )
    if subtype == "AT_AttachPartition":
        partition = relation_name(definition.get("PartitionCmd", {}).get("name", {}))
        return (
            "ATTACH PARTITION",
            [
                RelationLock(table, LockMode.SHARE_UPDATE_EXCLUSIVE, Work.NONE, "the partitioned table"),
                RelationLock(
                    partition,
                    exclusive,
                    Work.SCAN,
                    "scans the partition for rows outside the bound (unless a CHECK proves it)",
                ),
            ],
            [],
        )
    if subtype == "AT_DetachPartition":
        concurrent = definition.get("PartitionCmd", {}).get("concurrent")
        mode = LockMode.SHARE_UPDATE_EXCLUSIVE if concurrent else exclusive
        return "DETACH PARTITION", [RelationLock(table, mode, Work.NONE, "the partitioned table")], []
    if subtype in ("AT_SetLogged", "AT_SetUnLogged", "AT_SetTableSpace", "AT_SetAccessMethod"):
        return _words(subtype.removeprefix("AT_")), [RelationLock(table, exclusive, Work.REWRITE, "")], []
    name = _words(subtype.removeprefix("AT_")) if subtype else "ALTER"
    return name, [RelationLock(table, exclusive, Work.NONE, "")], []


def _add_column(
    table: str, column: dict[str, Any], server_major: int | None
) -> tuple[str, list[RelationLock], list[str]]:
    locks: list[RelationLock] = []
    notes: list[str] = []
    work, reason = Work.NONE, "catalog change only"
    type_name = column.get("typeName", {}).get("names", [{}])[-1].get("String", {}).get("sval", "")
    default = None
    for item in column.get("constraints", []):
        constraint = item.get("Constraint", {})
        contype = constraint.get("contype")
        if contype == "CONSTR_DEFAULT":
            default = constraint.get("raw_expr")
        elif contype == "CONSTR_GENERATED":
            stored = constraint.get("generated_kind") == "s"
            if stored or (server_major or 99) < 18:
                work, reason = Work.REWRITE, "a STORED generated column is computed for every row"
        elif contype == "CONSTR_IDENTITY":
            work, reason = Work.REWRITE, "an identity column gets a new value in every row"
        elif contype == "CONSTR_FOREIGN":
            locks.append(
                RelationLock(
                    relation_name(constraint.get("pktable", {})),
                    LockMode.SHARE_ROW_EXCLUSIVE,
                    reason="referenced by the new column's foreign key",
                )
            )
        elif contype in ("CONSTR_CHECK", "CONSTR_UNIQUE", "CONSTR_PRIMARY") and work != Work.REWRITE:
            work, reason = Work.SCAN, "the new column's constraint is checked (or indexed) on every row"
    if type_name in _SERIAL_TYPES:
        work, reason = Work.REWRITE, f"{type_name} defaults to nextval(), a new value in every row"
    elif default is not None and work != Work.REWRITE:
        volatile = volatile_calls(default)
        if server_major is not None and server_major < 11:
            work, reason = Work.REWRITE, f"PostgreSQL {server_major} rewrites the table for any DEFAULT"
        elif volatile:
            work = Work.REWRITE
            reason = (
                f"the DEFAULT calls {', '.join(sorted(set(volatile)))}(), evaluated for every row "
                "(volatile, or not known to pgship as stable)"
            )
        else:
            reason = "non-volatile DEFAULT: stored once in the catalog (PostgreSQL 11+), no rewrite"
    locks.insert(0, RelationLock(table, LockMode.ACCESS_EXCLUSIVE, work, reason))
    if work == Work.REWRITE:
        notes.append("add the column without the default (or with a constant one), then backfill in batches")
    return "ADD COLUMN", locks, notes


def _add_constraint(table: str, constraint: dict[str, Any]) -> tuple[str, list[RelationLock], list[str]]:
    contype = constraint.get("contype", "")
    not_valid = bool(constraint.get("skip_validation"))
    work = Work.NONE if not_valid else Work.SCAN
    if contype == "CONSTR_FOREIGN":
        referenced = relation_name(constraint.get("pktable", {}))
        reason = "NOT VALID: existing rows are not checked" if not_valid else "checks every existing row"
        locks = [RelationLock(table, LockMode.SHARE_ROW_EXCLUSIVE, work, reason)]
        if referenced != table:
            locks.append(
                RelationLock(referenced, LockMode.SHARE_ROW_EXCLUSIVE, Work.NONE, "referenced table")
            )
        notes = [] if not_valid else ["add it NOT VALID, then VALIDATE CONSTRAINT in a later statement"]
        return "ADD FOREIGN KEY" + (" NOT VALID" if not_valid else ""), locks, notes
    if contype in ("CONSTR_UNIQUE", "CONSTR_PRIMARY"):
        label = "ADD UNIQUE" if contype == "CONSTR_UNIQUE" else "ADD PRIMARY KEY"
        if constraint.get("indexname"):
            return (
                f"{label} USING INDEX",
                [RelationLock(table, LockMode.ACCESS_EXCLUSIVE, Work.NONE, "uses an existing index")],
                [],
            )
        return (
            label,
            [
                RelationLock(
                    table, LockMode.ACCESS_EXCLUSIVE, Work.SCAN, "builds a unique index under the lock"
                )
            ],
            ["build the index with CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX"],
        )
    if contype == "CONSTR_CHECK":
        reason = (
            "NOT VALID: existing rows are not checked" if not_valid else "checks every row under the lock"
        )
        notes = [] if not_valid else ["add it NOT VALID, then VALIDATE CONSTRAINT"]
        return (
            "ADD CHECK" + (" NOT VALID" if not_valid else ""),
            [RelationLock(table, LockMode.ACCESS_EXCLUSIVE, work, reason)],
            notes,
        )
    label = _words(contype.removeprefix("CONSTR_").title().replace("_", "")) if contype else "CONSTRAINT"
    return (
        f"ADD {label}",
        [RelationLock(table, LockMode.ACCESS_EXCLUSIVE, Work.SCAN, "checks every row under the lock")],
        [],
    )


_DROP_NOUNS = {
    "OBJECT_TABLE": "TABLE",
    "OBJECT_INDEX": "INDEX",
    "OBJECT_VIEW": "VIEW",
    "OBJECT_MATVIEW": "MATERIALIZED VIEW",
    "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE",
}


def _drop(node: dict[str, Any], _: int | None) -> Classified:
    remove = node.get("removeType", "")
    noun = _DROP_NOUNS.get(remove)
    if noun is None:
        kind = "DROP " + remove.removeprefix("OBJECT_").replace("_", " ")
        return kind, [], [], False
    concurrent = bool(node.get("concurrent"))
    mode = LockMode.SHARE_UPDATE_EXCLUSIVE if concurrent else LockMode.ACCESS_EXCLUSIVE
    locks = [
        RelationLock(_list_name(item), mode, Work.NONE, f"drops the {noun.lower()}")
        for item in node.get("objects", [])
    ]
    notes = (
        ["also locks the index's table (ACCESS EXCLUSIVE); use DROP INDEX CONCURRENTLY"]
        if (noun == "INDEX" and not concurrent)
        else []
    )
    return f"DROP {noun}" + (" CONCURRENTLY" if concurrent else ""), locks, notes, False


def _truncate(node: dict[str, Any], _: int | None) -> Classified:
    locks = [
        RelationLock(
            relation_name(item.get("RangeVar", {})), LockMode.ACCESS_EXCLUSIVE, Work.NONE, "empties it"
        )
        for item in node.get("relations", [])
    ]
    return "TRUNCATE", locks, [], False


def _dml(verb: str) -> Handler:
    def handler(node: dict[str, Any], _: int | None) -> Classified:
        table = relation_name(node.get("relation", {}))
        everything = verb in ("UPDATE", "DELETE") and not node.get("whereClause")
        reason = f"{'every row' if everything else 'the rows it touches'} stay locked until the commit"
        lock = RelationLock(table, LockMode.ROW_EXCLUSIVE, Work.ROWS, reason)
        notes = (
            [f"{verb} without WHERE touches every row in one transaction: batch it on a large table"]
            if everything
            else []
        )
        return verb, [lock], notes, False

    return handler


def _rename(node: dict[str, Any], _: int | None) -> Classified:
    rename = node.get("renameType", "")
    relation = node.get("relation")
    what = rename.removeprefix("OBJECT_").replace("_", " ")
    if relation is None:
        return f"RENAME {what}", [], [], False
    name = relation_name(relation)
    mode = LockMode.SHARE_UPDATE_EXCLUSIVE if rename == "OBJECT_INDEX" else LockMode.ACCESS_EXCLUSIVE
    return f"RENAME {what}", [RelationLock(name, mode, Work.NONE, "catalog change only")], [], False


def _create_trigger(node: dict[str, Any], _: int | None) -> Classified:
    table = relation_name(node.get("relation", {}))
    return "CREATE TRIGGER", [RelationLock(table, LockMode.SHARE_ROW_EXCLUSIVE, Work.NONE, "")], [], False


def _create_policy(node: dict[str, Any], _: int | None) -> Classified:
    table = relation_name(node.get("table", {}))
    return "CREATE POLICY", [RelationLock(table, LockMode.ACCESS_EXCLUSIVE, Work.NONE, "")], [], False


def _vacuum(node: dict[str, Any], _: int | None) -> Classified:
    options = {o.get("DefElem", {}).get("defname") for o in node.get("options", [])}
    tables = [
        relation_name(item.get("VacuumRelation", {}).get("relation", {})) for item in node.get("rels", [])
    ]
    if not node.get("is_vacuumcmd"):
        return (
            "ANALYZE",
            [RelationLock(t, LockMode.SHARE_UPDATE_EXCLUSIVE, Work.SCAN) for t in tables],
            [],
            False,
        )
    if "full" in options:
        locks = [RelationLock(t, LockMode.ACCESS_EXCLUSIVE, Work.REWRITE) for t in tables]
        return "VACUUM FULL", locks, [], False
    return "VACUUM", [RelationLock(t, LockMode.SHARE_UPDATE_EXCLUSIVE, Work.SCAN) for t in tables], [], False


def _cluster(node: dict[str, Any], _: int | None) -> Classified:
    table = relation_name(node.get("relation", {}))
    locks = [RelationLock(table, LockMode.ACCESS_EXCLUSIVE, Work.REWRITE, "")] if table else []
    return "CLUSTER", locks, [], False


def _refresh(node: dict[str, Any], _: int | None) -> Classified:
    view = relation_name(node.get("relation", {}))
    if node.get("concurrent"):
        return (
            "REFRESH MATERIALIZED VIEW CONCURRENTLY",
            [RelationLock(view, LockMode.EXCLUSIVE, Work.REWRITE, "reads go on")],
            [],
            False,
        )
    return (
        "REFRESH MATERIALIZED VIEW",
        [RelationLock(view, LockMode.ACCESS_EXCLUSIVE, Work.REWRITE)],
        [],
        False,
    )


def _reindex(node: dict[str, Any], _: int | None) -> Classified:
    params = {p.get("DefElem", {}).get("defname") for p in node.get("params", [])}
    relation = node.get("relation")
    if relation is None:
        return "REINDEX", [], [], False
    name = relation_name(relation)
    if "concurrently" in params:
        return (
            "REINDEX CONCURRENTLY",
            [RelationLock(name, LockMode.SHARE_UPDATE_EXCLUSIVE, Work.SCAN)],
            [],
            False,
        )
    if node.get("kind") == "REINDEX_OBJECT_INDEX":
        locks = [RelationLock(name, LockMode.ACCESS_EXCLUSIVE, Work.SCAN, "the index; its table: SHARE")]
        return "REINDEX INDEX", locks, [], False
    return (
        "REINDEX TABLE",
        [RelationLock(name, LockMode.SHARE, Work.SCAN, "indexes: ACCESS EXCLUSIVE")],
        [],
        False,
    )


def _lock(node: dict[str, Any], _: int | None) -> Classified:
    modes = {
        1: LockMode.ACCESS_SHARE,
        2: LockMode.ROW_SHARE,
        3: LockMode.ROW_EXCLUSIVE,
        4: LockMode.SHARE_UPDATE_EXCLUSIVE,
        5: LockMode.SHARE,
        6: LockMode.SHARE_ROW_EXCLUSIVE,
        7: LockMode.EXCLUSIVE,
        8: LockMode.ACCESS_EXCLUSIVE,
    }
    mode = modes.get(node.get("mode", 8), LockMode.ACCESS_EXCLUSIVE)
    locks = [
        RelationLock(relation_name(item.get("RangeVar", {})), mode, Work.NONE, "explicit LOCK")
        for item in node.get("relations", [])
    ]
    return "LOCK", locks, [], False


def _comment(node: dict[str, Any], _: int | None) -> Classified:
    objtype = node.get("objtype", "")
    if objtype in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX"):
        name = _list_name(node.get("object", {}))
        return (
            "COMMENT ON " + _DROP_NOUNS.get(objtype, "TABLE"),
            [RelationLock(name, LockMode.SHARE_UPDATE_EXCLUSIVE, Work.NONE, "catalog change only")],
            [],
            False,
        )
    if objtype == "OBJECT_COLUMN":
        parts = _list_name(node.get("object", {})).split(".")
        return (
            "COMMENT ON COLUMN",
            [
                RelationLock(
                    ".".join(parts[:-1]), LockMode.SHARE_UPDATE_EXCLUSIVE, Work.NONE, "catalog change only"
                )
            ],
            [],
            False,
        )
    return "COMMENT", [], [], False


def _unknown(kind: str, why: str) -> Handler:
    def handler(node: dict[str, Any], _: int | None) -> Classified:
        return kind, [], [why], True

    return handler


def _create_table_as(node: dict[str, Any], _: int | None) -> Classified:
    into = node.get("into", {}).get("IntoClause", {}).get("rel", {})
    noun = "MATERIALIZED VIEW" if node.get("objtype") == "OBJECT_MATVIEW" else "TABLE AS"
    locks = [RelationLock(relation_name(into), LockMode.ACCESS_EXCLUSIVE, Work.REWRITE, "new", new=True)]
    return f"CREATE {noun}", locks, ["reads the tables of its query (ACCESS SHARE)"], False


def _view(node: dict[str, Any], _: int | None) -> Classified:
    view = relation_name(node.get("view", {}))
    locks = [
        RelationLock(view, LockMode.ACCESS_EXCLUSIVE, Work.NONE, "the view", new=not node.get("replace"))
    ]
    return ("CREATE OR REPLACE VIEW" if node.get("replace") else "CREATE VIEW"), locks, [], False


_HANDLERS: dict[str, Handler] = {
    "CreateStmt": _create_table,
    "IndexStmt": _create_index,
    "AlterTableStmt": _alter_table,
    "DropStmt": _drop,
    "TruncateStmt": _truncate,
    "UpdateStmt": _dml("UPDATE"),
    "DeleteStmt": _dml("DELETE"),
    "InsertStmt": _dml("INSERT"),
    "MergeStmt": _unknown("MERGE", "MERGE takes ROW EXCLUSIVE on its target"),
    "RenameStmt": _rename,
    "CreateTrigStmt": _create_trigger,
    "CreatePolicyStmt": _create_policy,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "RefreshMatViewStmt": _refresh,
    "ReindexStmt": _reindex,
    "LockStmt": _lock,
    "CommentStmt": _comment,
    "CreateTableAsStmt": _create_table_as,
    "ViewStmt": _view,
    "DoStmt": _unknown("DO", "a DO block can run any statement: pgship cannot tell what it locks"),
    "SelectStmt": _unknown("SELECT", "a SELECT may call functions that change data: check what it calls"),
    "CallStmt": _unknown("CALL", "a procedure can run any statement: pgship cannot tell what it locks"),
}

#: Statements that change only the system catalogs, never an existing table's lock.
_CATALOG_ONLY = {
    "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterSeqStmt": "ALTER SEQUENCE",
    "CreateFunctionStmt": "CREATE FUNCTION",
    "CreateEnumStmt": "CREATE TYPE AS ENUM",
    "AlterEnumStmt": "ALTER TYPE ... ADD VALUE",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateDomainStmt": "CREATE DOMAIN",
    "CreateExtensionStmt": "CREATE EXTENSION",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "GrantStmt": "GRANT/REVOKE",
    "GrantRoleStmt": "GRANT role",
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "AlterDefaultPrivilegesStmt": "ALTER DEFAULT PRIVILEGES",
    "VariableSetStmt": "SET",
    "DefineStmt": "CREATE (aggregate/operator/collation)",
    "AlterFunctionStmt": "ALTER FUNCTION",
    "AlterOwnerStmt": "ALTER ... OWNER",
    "CreateCastStmt": "CREATE CAST",
}


def _strongest_per_relation(locks: list[RelationLock]) -> list[RelationLock]:
    """One lock per relation: the strongest mode, the heaviest work, the reasons joined."""
    merged: dict[str, RelationLock] = {}
    for lock in locks:
        seen = merged.get(lock.relation)
        if seen is None:
            merged[lock.relation] = lock
            continue
        stronger = lock if lock.mode > seen.mode else seen
        work = max(lock.work, seen.work, key=_WORK_ORDER.__getitem__)
        reason = stronger.reason
        if work != stronger.work:
            reason = "; ".join(r for r in (seen.reason, lock.reason) if r)
        merged[lock.relation] = RelationLock(
            lock.relation, stronger.mode, work, reason, seen.new and lock.new
        )
    return list(merged.values())


__all__ = [
    "STABLE_FUNCTIONS",
    "VOLATILE_FUNCTIONS",
    "LockMode",
    "RelationLock",
    "ScriptReview",
    "StatementReview",
    "Work",
    "classify",
    "relation_name",
    "review_sql",
    "volatile_calls",
]
