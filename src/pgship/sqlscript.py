"""Reading a migration's SQL with PostgreSQL's own parser (pglast).

This decides, before anything runs, whether a file can be applied the way
pgship applies it: whole, in one transaction, unless marked
``-- pgship:no-transaction``. It finds what a regular expression would miss or
misread: a ``COMMIT`` inside a dollar-quoted function body is not a COMMIT, a
``CREATE INDEX CONCURRENTLY`` in a comment is not an index build.

Offsets: libpg_query reports byte offsets, and pglast's conversion of error
offsets is wrong for non-ASCII text; the parser therefore reads a copy in which
every non-ASCII character is replaced by ``x`` (still an identifier or string
character, so the parse is the same), where byte and character offsets agree.
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from pgship.errors import Problem

NO_TRANSACTION = "no-transaction"
KNOWN_DIRECTIVES = frozenset({NO_TRANSACTION})
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NEWLINE = re.compile("\n")
_DIRECTIVE = re.compile(r"^--\s*pgship\s*:\s*(?P<name>\S+)\s*$")
#: where another tool's file starts its down part: pgship runs whole files, so it would undo the up part
_FOREIGN_DOWN = re.compile(r"^--\s*(?P<marker>\+goose\s+down|migrate:down|\+migrate\s+down)\b", re.I)
_FOREIGN_TOOL = {"+goose": "goose", "migrate:": "dbmate", "+migrate": "sql-migrate"}
_MARK_FIX = (
    "Move it to a migration file of its own whose first line is `-- pgship:no-transaction`; "
    "pgship runs such a file statement by statement, outside a transaction."
)


@dataclass(frozen=True, slots=True)
class Statement:
    """One top-level statement: where it is in the file, its line, and its parse-tree node type.

    The text is sliced from the file when asked for, not copied: a deploy of ten thousand
    pending migrations holds each file's text once.
    """

    source: str = field(repr=False, compare=False)
    start: int
    end: int
    line: int
    node: str

    @property
    def text(self) -> str:
        return self.source[self.start : self.end].rstrip()


@dataclass(slots=True)
class Script:
    """A parsed migration: what to execute, how, and what is wrong with it."""

    statements: list[Statement] = field(default_factory=list)
    no_transaction: bool = False
    wrapped: bool = False  # the file brings its own BEGIN ... COMMIT around everything
    problems: list[Problem] = field(default_factory=list)


def analyse(text: str) -> Script:
    """Parse ``text`` (already normalised) and report what stops it running as a migration."""
    from pglast import parser

    script = Script()
    parseable = _NON_ASCII.sub("x", text)
    try:
        tree = json.loads(parser.parse_sql_json(parseable))
    except parser.ParseError as exc:
        script.problems.append(_parse_problem(text, parseable, exc))
        return script

    tokens = list(parser.scan(parseable))
    token_starts = [t.start for t in tokens]
    lines = _LineIndex(text)
    script.no_transaction = _read_directives(text, tokens, lines, script.problems)

    raw_statements = tree.get("stmts", [])
    if not raw_statements:
        script.problems.append(
            Problem(
                None,
                "the file has no SQL statements (it is empty or only comments)",
                "Write the migration's SQL in it, or delete the file.",
            )
        )
        return script

    statements: list[tuple[Statement, dict[str, Any]]] = []
    for raw in raw_statements:
        location = raw.get("stmt_location", 0)
        length = raw.get("stmt_len", 0) or len(parseable) - location
        first = bisect_left(token_starts, location)
        while first < len(tokens) and tokens[first].name in ("SQL_COMMENT", "C_COMMENT"):
            first += 1
        start = tokens[first].start if first < len(tokens) else location
        end = location + length
        ((node_type, node),) = raw["stmt"].items()
        statement = Statement(text, start, end, lines.line(start), sys.intern(node_type))
        statements.append((statement, node))

    _check_statements(script, statements)
    return script


class _LineIndex:
    """Maps character offsets to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self._newlines = [match.start() for match in _NEWLINE.finditer(text)]

    def line(self, offset: int) -> int:
        return bisect_right(self._newlines, offset - 1) + 1

    def column(self, offset: int) -> int:
        index = bisect_right(self._newlines, offset - 1)
        line_start = self._newlines[index - 1] + 1 if index else 0
        return offset - line_start + 1


def _parse_problem(text: str, parseable: str, exc: Exception) -> Problem:
    message, offset = exc.args if len(exc.args) == 2 else (str(exc), 0)
    lines = _LineIndex(text)
    line, column = lines.line(offset), lines.column(offset)
    source_line = text.split("\n")[line - 1] if text else ""
    if source_line.lstrip().startswith("\\"):
        command = source_line.strip().split()[0]
        return Problem(
            None,
            f"psql meta-command {command} cannot run in a migration: pgship sends SQL to the server, "
            "it is not psql",
            "Write the SQL itself: inline the file instead of \\i, drop \\c (pgship connects to the "
            "database you give it), use INSERT or a server-side COPY instead of \\copy.",
            line=line,
            column=column,
        )
    copy_line = _copy_from_stdin_before(parseable, offset)
    if copy_line is not None:
        return Problem(
            None,
            f"COPY ... FROM stdin at line {copy_line} is followed by inline data, which only psql can send",
            "Load the rows with INSERT statements (or COPY from a file on the database server).",
            line=copy_line,
        )
    return Problem(
        None,
        f"SQL syntax error: {message}",
        "Fix the statement at this line; `pgship verify` checks the files again without a database.",
        line=line,
        column=column,
    )


def _copy_from_stdin_before(parseable: str, offset: int) -> int | None:
    """Line of a ``COPY ... FROM stdin`` just before a parse error, if that explains the error."""
    from pglast import parser

    cut = parseable.rfind(";", 0, offset)
    if cut < 0:
        return None
    try:
        tree = json.loads(parser.parse_sql_json(parseable[: cut + 1]))
    except parser.ParseError:
        return None
    statements = tree.get("stmts", [])
    if not statements:
        return None
    last = statements[-1]
    node = last["stmt"].get("CopyStmt")
    if node and node.get("is_from") and not node.get("filename") and not node.get("is_program"):
        location = last.get("stmt_location", 0)
        stripped = len(parseable[location:]) - len(parseable[location:].lstrip())
        return parseable.count("\n", 0, location + stripped) + 1
    return None


def _read_directives(text: str, tokens: list[Any], lines: _LineIndex, problems: list[Problem]) -> bool:
    no_transaction = False
    for token in tokens:
        if token.name != "SQL_COMMENT":
            continue
        comment = text[token.start : token.end + 1].strip()
        down = _FOREIGN_DOWN.match(comment)
        if down is not None:  # another tool's up/down file (see pgship.adopt)
            marker = down["marker"]
            tool = next(t for prefix, t in _FOREIGN_TOOL.items() if marker.lower().startswith(prefix))
            problems.append(
                Problem(
                    None,
                    f"the file has a down section ({comment}, {tool}'s format): pgship runs the whole "
                    "file, so the down part would undo the up part",
                    f"Delete the down section (from `{comment}` on): pgship is forward-only, a change is "
                    "undone by a new migration. The up marker may stay (it is a comment).",
                    line=lines.line(token.start),
                )
            )
            continue
        match = _DIRECTIVE.match(comment)
        if match is None:
            continue
        name = match["name"]
        if name == NO_TRANSACTION:
            no_transaction = True
        else:
            problems.append(
                Problem(
                    None,
                    f"unknown directive pgship:{name}",
                    f"The known directives are: {', '.join(sorted(KNOWN_DIRECTIVES))}. "
                    "Fix the spelling or make it an ordinary comment.",
                    line=lines.line(token.start),
                )
            )
    return no_transaction


_TRANSACTION_START = {"TRANS_STMT_BEGIN", "TRANS_STMT_START"}
_SAVEPOINTS = {"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"}


def _check_statements(script: Script, statements: list[tuple[Statement, dict[str, Any]]]) -> None:
    problems = script.problems
    transaction_control = [
        (index, statement, node["kind"])
        for index, (statement, node) in enumerate(statements)
        if statement.node == "TransactionStmt"
    ]
    executed = [statement for statement, _ in statements]

    for statement, node in statements:
        copy_problem = _copy_problem(statement, node)
        if copy_problem:
            problems.append(copy_problem)
        if not script.no_transaction:
            reason = non_transactional_reason(statement.node, node)
            if reason:
                problems.append(
                    Problem(
                        None,
                        f"{reason} cannot run inside a transaction, and this file runs in one",
                        _MARK_FIX,
                        line=statement.line,
                    )
                )

    if script.no_transaction:
        for _, statement, kind in transaction_control:
            problems.append(
                Problem(
                    None,
                    f"{_describe(kind)} in a no-transaction migration: each statement already commits "
                    "on its own",
                    "Remove the transaction control, or drop the `-- pgship:no-transaction` line if the "
                    "file can run in one transaction.",
                    line=statement.line,
                )
            )
        script.statements = executed
        return

    outer = [item for item in transaction_control if item[2] not in _SAVEPOINTS]
    last_index = len(statements) - 1
    wrapped = (
        len(outer) == 2
        and outer[0][0] == 0
        and outer[0][2] in _TRANSACTION_START
        and outer[1][0] == last_index
        and outer[1][2] == "TRANS_STMT_COMMIT"
    )
    if wrapped:
        begin_node = statements[0][1]
        if begin_node.get("options"):
            problems.append(
                Problem(
                    None,
                    "BEGIN with transaction options (isolation level, read only...) is not supported",
                    "Use a plain BEGIN; (or none: pgship already runs the file in one transaction).",
                    line=statements[0][0].line,
                )
            )
        script.wrapped = True
        script.statements = executed[1:-1]
        return

    for index, statement, kind in outer:
        problems.append(_transaction_problem(index, last_index, statement, kind, outer))
    script.statements = executed


def _transaction_problem(
    index: int, last_index: int, statement: Statement, kind: str, outer: list[tuple[int, Statement, str]]
) -> Problem:
    line = statement.line
    if kind in _TRANSACTION_START:
        if index == 0:
            message = "BEGIN at the top of the file has no matching COMMIT as the file's last statement"
            fix = (
                "End the file with COMMIT; or remove the BEGIN (pgship runs each migration in a transaction)."
            )
        else:
            message = "BEGIN in the middle of the file would start a second transaction"
            fix = "Remove it: pgship runs the whole file in one transaction. Split the file if you need two."
    elif kind == "TRANS_STMT_COMMIT":
        if index == last_index and not any(k in _TRANSACTION_START for _, _, k in outer):
            message = "COMMIT at the end of the file has no BEGIN at the top"
            fix = "Add BEGIN; as the first statement, or remove the COMMIT."
        else:
            message = "COMMIT in the middle of the file would end the migration's transaction early"
            fix = (
                "Remove it: pgship commits the migration and its tracking row together. "
                "Split the file into two migrations if it needs two transactions."
            )
    elif kind == "TRANS_STMT_ROLLBACK":
        message = "ROLLBACK would undo the migration while pgship records it as applied"
        fix = "Remove it. To undo an earlier change, write a new migration that reverses it."
    else:
        message = f"{_describe(kind)} (two-phase commit) cannot be used in a migration"
        fix = "Remove it."
    return Problem(None, message, fix, line=line)


def _describe(kind: str) -> str:
    names = {
        "TRANS_STMT_BEGIN": "BEGIN",
        "TRANS_STMT_START": "START TRANSACTION",
        "TRANS_STMT_COMMIT": "COMMIT",
        "TRANS_STMT_ROLLBACK": "ROLLBACK",
        "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
        "TRANS_STMT_RELEASE": "RELEASE SAVEPOINT",
        "TRANS_STMT_ROLLBACK_TO": "ROLLBACK TO SAVEPOINT",
        "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
        "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
        "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
    }
    return names.get(kind, kind)


def non_transactional_reason(node_type: str, node: dict[str, Any]) -> str | None:
    """The name of a statement PostgreSQL refuses to run in a transaction block, or None."""
    if node_type == "IndexStmt" and node.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if node_type == "DropStmt" and node.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if node_type == "ReindexStmt":
        params = {p.get("DefElem", {}).get("defname") for p in node.get("params", [])}
        if "concurrently" in params:
            return "REINDEX ... CONCURRENTLY"
        if node.get("kind") in ("REINDEX_OBJECT_DATABASE", "REINDEX_OBJECT_SYSTEM"):
            return "REINDEX DATABASE/SYSTEM"
    if node_type == "VacuumStmt" and node.get("is_vacuumcmd"):
        return "VACUUM"
    if node_type == "AlterTableStmt":
        for command in node.get("cmds", []):
            cmd = command.get("AlterTableCmd", {})
            partition = cmd.get("def", {}).get("PartitionCmd", {})
            if cmd.get("subtype") == "AT_DetachPartition" and partition.get("concurrent"):
                return "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY"
    simple = {
        "CreatedbStmt": "CREATE DATABASE",
        "DropdbStmt": "DROP DATABASE",
        "AlterSystemStmt": "ALTER SYSTEM",
        "CreateTableSpaceStmt": "CREATE TABLESPACE",
        "DropTableSpaceStmt": "DROP TABLESPACE",
        "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
        "DropSubscriptionStmt": "DROP SUBSCRIPTION",
    }
    return simple.get(node_type)


@dataclass(frozen=True)
class IndexTarget:
    """The index a ``CREATE INDEX CONCURRENTLY name ON table`` statement builds."""

    schema: str | None
    table: str
    index: str

    def table_regclass_text(self) -> str:
        """The table's name quoted the way ``to_regclass()`` expects (names here are already case-folded)."""

        def quote(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'

        return f"{quote(self.schema)}.{quote(self.table)}" if self.schema else quote(self.table)


def concurrent_index_target(text: str) -> IndexTarget | None:
    """What a single ``CREATE INDEX CONCURRENTLY`` statement names, or None (other statements, no name)."""
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(text))
    except parser.ParseError:
        return None
    statements = tree.get("stmts", [])
    if len(statements) != 1:
        return None
    ((node_type, node),) = statements[0]["stmt"].items()
    if node_type != "IndexStmt" or not node.get("concurrent") or not node.get("idxname"):
        return None
    relation = node.get("relation", {})
    return IndexTarget(relation.get("schemaname"), relation["relname"], node["idxname"])


def _copy_problem(statement: Statement, node: dict[str, Any]) -> Problem | None:
    if statement.node != "CopyStmt" or node.get("filename") or node.get("is_program"):
        return None
    if node.get("is_from"):
        return Problem(
            None,
            "COPY ... FROM stdin needs data that only psql can send",
            "Load the rows with INSERT statements (or COPY from a file on the database server).",
            line=statement.line,
        )
    return Problem(
        None,
        "COPY ... TO stdout sends rows to the client, which a migration cannot use",
        "Remove it from the migration.",
        line=statement.line,
    )
