"""Reading a migration's SQL with PostgreSQL's own parser (pglast).

This decides, before anything runs, whether a file can be applied the way
pgship applies it: whole, in one transaction, unless its first line is
``-- pgship:no-transaction``. It finds what a regular expression would miss or
misread: a ``COMMIT`` inside a dollar-quoted function body is not a COMMIT, a
``CREATE INDEX CONCURRENTLY`` in a comment is not an index build, a column
named ``processed_concurrently`` does not make an ``ALTER TABLE`` concurrent.

The parser reads the file's real text, the text PostgreSQL will run (a
dollar-quote tag may be non-ASCII). Memory stays proportional to the file: the
file is first cut into statements by PostgreSQL's scanner (in C, no parse
tree), then each statement is parsed on its own, so the parse tree of a whole
file is never held at once. Offsets: pglast reports error positions as
characters; statement boundaries come from the scanner as text, located in the
file by search, so no byte offset is ever used as a character offset.

One file although over 400 lines: every rule that reads a migration's SQL (the statement
split, the parse, the transaction-control and no-transaction checks, what needs a
transaction block, the ``lock_timeout`` exemptions) works on the same scanner output and
statement model; split apart, each piece would import the others' private details.
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pgship.errors import Problem

NO_TRANSACTION = "no-transaction"
KNOWN_DIRECTIVES = frozenset({NO_TRANSACTION})
#: A statement longer than this (characters) that only reads or writes rows (INSERT, UPDATE, DELETE,
#: SELECT, VALUES, MERGE) is not parsed in a file that runs in one transaction: its parse tree can
#: take 70 times its size, and the server checks its syntax before running it (a syntax error fails
#: the migration, which is rolled back whole). Every other statement is always parsed.
LARGE_STATEMENT = 256 * 1024
_ROW_STATEMENTS = {
    "INSERT": "InsertStmt",
    "UPDATE": "UpdateStmt",
    "DELETE": "DeleteStmt",
    "SELECT": "SelectStmt",
    "VALUES": "SelectStmt",
    "MERGE": "MergeStmt",
}
_CHECKED_NODES = frozenset(
    {
        "TransactionStmt",
        "CopyStmt",
        "IndexStmt",
        "DropStmt",
        "ReindexStmt",
        "VacuumStmt",
        "AlterTableStmt",
        "LockStmt",
        "DeclareCursorStmt",
        "VariableSetStmt",
        "ConstraintsSetStmt",
        "AlterDatabaseSetStmt",
        "AlterRoleSetStmt",
    }
)
_NOTHING: dict[str, Any] = {}  # the node of a statement no check reads (shared, never changed)
_PG_SPACE = " \t\n\r\f\v"  # what PostgreSQL's scanner takes for white space (not Unicode's)
_SPACE = re.compile(r"[ \t\n\r\f\v]+")
_COMMENT_EDGE = re.compile(r"/\*|\*/")
_WORD = re.compile(r"[A-Za-z_]+")
# the start of parse_sql_json's answer, up to the first statement's node type
_FIRST_NODE = re.compile(r'\{"version":[0-9]+,"stmts":\[\{"stmt":\{"([A-Za-z]+)":')
# only a statement after the first has a location (the first starts at 0, which the JSON leaves out),
# and only a top-level statement has this key: its absence means the region held one statement
_LATER_STATEMENT = '"stmt_location":'
_DIRECTIVE = re.compile(r"^--\s*pgship\s*:\s*(?P<name>\S+)\s*$")
#: a ``-- pgship:`` marker, or where another tool's file starts its down part (see pgship.adopt):
#: pgship runs whole files, so a down part would undo the up part
_MARKER = re.compile(
    r"--[ \t]*(?:pgship[ \t]*:|(?i:\+goose[ \t]+down|migrate:down|\+migrate[ \t]+down))[^\n]*"
)
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

    ``concurrent`` is read from the parse tree: the statement works in phases that wait for other
    transactions (``CREATE INDEX CONCURRENTLY``, ``DROP INDEX CONCURRENTLY``, ``REINDEX ...
    CONCURRENTLY``, ``ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY``). A lock timeout in a
    later phase would leave an INVALID index or a pending detach behind, so such a statement runs
    without ``lock_timeout`` and is never retried; every other statement gets both.
    """

    source: str = field(repr=False, compare=False)
    start: int
    end: int
    line: int
    node: str
    concurrent: bool = False

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]


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
    lines = _LineIndex(text)
    script.no_transaction = _read_directives(text, lines, script.problems)
    directive_problems = len(script.problems)
    try:
        _read_statements(text, script, lines)
    except parser.ParseError as exc:  # from the scanner: the file cannot even be cut into statements
        del script.problems[directive_problems:]
        script.statements = []
        script.problems.append(_syntax_problem(text, exc, lines))
    return script


def _read_statements(text: str, script: Script, lines: _LineIndex) -> None:
    """Cut ``text`` into statements, parse each, and check them (``script`` collects the result)."""
    # held per statement: its Statement, and the parse tree only where a check reads it, so a file of
    # many small statements never holds every tree (nor a list of every boundary) at once
    statements: list[Statement] = []
    nodes: dict[int, dict[str, Any]] = {}
    markers = [match.start() for match in _MARKER.finditer(text)]
    regions: list[tuple[int, int]] = []  # the statements' spans that hold a marker candidate
    bounds = _statement_bounds(text, _scanner_pieces(text))
    pending = next(bounds, None)
    last_end = 0
    while pending is not None:
        begin, end = pending
        pending = next(bounds, None)
        parsed = _parse_region(text, begin, end, script.no_transaction)
        while isinstance(parsed, Exception) and "at end of input" in str(parsed.args[0]) and pending:
            # the scanner cut inside a statement the parser reads as one (BEGIN ATOMIC ... END)
            end = pending[1]
            pending = next(bounds, None)
            parsed = _parse_region(text, begin, end, script.no_transaction)
        last_end = end
        if markers:
            first = bisect_left(markers, begin)
            if first < len(markers) and markers[first] <= end:
                regions.append((begin, end))
        if isinstance(parsed, Exception):
            previous = (statements[-1], nodes.get(len(statements) - 1, _NOTHING)) if statements else None
            script.problems.append(_syntax_problem(text, parsed, lines, previous))
            continue
        for start, stop, node_type, node in parsed:
            if node and node_type in _CHECKED_NODES:
                nodes[len(statements)] = node
            statements.append(
                Statement(
                    text,
                    start,
                    stop,
                    lines.line(start),
                    sys.intern(node_type),
                    concurrent=node is not None and lock_timeout_exempt(node_type, node),
                )
            )

    if markers:
        _check_markers(text, lines, markers, regions, last_end, script.problems)
    if not statements:
        if not script.problems:
            script.problems.append(
                Problem(
                    None,
                    "the file has no SQL statements (it is empty or only comments)",
                    "Write the migration's SQL in it, or delete the file.",
                )
            )
        return
    _check_statements(script, statements, nodes)
    script.problems.sort(key=lambda problem: problem.line or 0)


#: PostgreSQL's scanner (in C) takes about three times the text it scans; a larger file is scanned in
#: chunks of about this many characters, each checked to end where the scanner is back at the top level
SCAN_CHUNK = 1 << 20
_CHUNK_CUT = re.compile(r"\)[ \t\n\r\f\v]*,|;")  # after a row of a VALUES list, or a statement
_SENTINEL = " ;SELECT 1"
_KEYWORD = "SELECT "


def _scanner_pieces(text: str) -> Iterator[tuple[int, int | None]]:
    """Where each statement the scanner finds starts, and its semicolon (None: none, or in the next chunk).

    A file up to ``SCAN_CHUNK`` is scanned whole. A larger one is cut after a ``),`` or ``;`` about
    every ``SCAN_CHUNK`` characters, and each chunk is scanned with " ;SELECT 1" appended: the cut is
    kept only if that sentinel comes out as a statement of its own, which proves the scanner is, at
    the cut, outside any string, quoted name, comment or parenthesis, exactly as at the start of a
    file. Otherwise the chunk grows (doubling), up to the whole rest of the file. So the statements
    found are the ones a scan of the whole file finds, at a bounded cost: even a single INSERT of
    millions of rows is scanned a chunk at a time. Raises pglast's ``ParseError`` (positions in the
    file's characters) when the file cannot be scanned.
    """
    from pglast import parser

    position = 0
    while position < len(text):
        size = SCAN_CHUNK
        while True:
            cut = len(text)
            if position + size < len(text):
                found = _CHUNK_CUT.search(text, position + size)
                cut = found.end() if found else len(text)
            last = cut == len(text)
            # after the first chunk, a keyword in front: the scanner leaves out a piece without one, and
            # the chunk may start in the middle of a statement (rows of a VALUES list)
            chunk = _KEYWORD + text[position:cut] if position else text[:cut]
            try:
                pieces = parser.split(chunk if last else chunk + _SENTINEL, with_parser=False)
            except parser.ParseError as exc:
                if last:
                    shift = position - (len(_KEYWORD) if position else 0)
                    offset = None if exc.args[1] is None else max(exc.args[1] + shift, position)
                    raise parser.ParseError(exc.args[0], offset) from None
                pieces = ()
            if last or (pieces and pieces[-1] == _SENTINEL[2:]):
                break
            size *= 2
        if not last:
            pieces = pieces[:-1]
        shift = position - (len(_KEYWORD) if position else 0)
        cursor = 0
        for piece in pieces:
            found_at = chunk.find(piece, cursor)
            semicolon = chunk.find(";", found_at + len(piece))  # only white space lies between
            yield max(found_at + shift, position), None if semicolon < 0 else semicolon + shift
            cursor = len(chunk) if semicolon < 0 else semicolon + 1
        position = cut


def _statement_bounds(text: str, pieces: Iterator[tuple[int, int | None]]) -> Iterator[tuple[int, int]]:
    """Each statement's span: from just after the previous semicolon to its own (or the file's end).

    The scanner leaves out statements without a keyword (``foo;``, psql's ``\\i``, COPY data): they
    become spans of their own, so the parser reports them. A statement whose semicolon the scanner
    found in a later chunk continues there: the pieces up to it are the same statement.
    """
    cursor = 0
    continued = False
    for start, semicolon in pieces:
        if not continued and _skip_blank(text, cursor, start) < start:
            gap_end = text.rfind(";", cursor, start)
            if gap_end >= cursor:
                yield cursor, gap_end
                cursor = gap_end + 1
        continued = semicolon is None
        if semicolon is None:
            continue
        yield cursor, semicolon
        cursor = semicolon + 1
    if _skip_blank(text, cursor, len(text)) < len(text):
        yield cursor, len(text)


def _skip_blank(text: str, pos: int, end: int) -> int:
    """The first offset from ``pos`` that is not white space, a comment or an empty statement's ``;``."""
    while pos < end:
        space = _SPACE.match(text, pos, end)
        if space:
            pos = space.end()
        elif text.startswith("--", pos):
            newline = text.find("\n", pos, end)
            pos = end if newline < 0 else newline + 1
        elif text.startswith("/*", pos):
            depth, pos = 1, pos + 2  # PostgreSQL's block comments nest
            while depth:
                edge = _COMMENT_EDGE.search(text, pos, end)
                if edge is None:
                    return end
                depth += 1 if edge.group() == "/*" else -1
                pos = edge.end()
        elif text[pos] == ";":
            pos += 1
        else:
            break
    return pos


def _parse_region(
    text: str, begin: int, end: int, no_transaction: bool
) -> list[tuple[int, int, str, dict[str, Any] | None]] | Exception:
    """Parse ``text[begin:end]``: each statement's start, end, node type and node (None: not parsed)."""
    from pglast import parser

    start = _skip_blank(text, begin, end)
    stop = end
    while stop > start and text[stop - 1] in _PG_SPACE:
        stop -= 1
    if start >= stop:
        return []
    if stop - start > LARGE_STATEMENT and not no_transaction:
        word = _WORD.match(text, start)
        node_type = _ROW_STATEMENTS.get(word.group().upper()) if word else None
        follows = text[word.end() : word.end() + 1] if word else ""
        if node_type is not None and not (follows.isalnum() or follows in ("_", "$")):
            return [(start, stop, node_type, None)]
    region = text[start:stop]
    try:
        answer = parser.parse_sql_json(region)
    except parser.ParseError as exc:
        # pglast gives the error's position in characters (None: at the end of the input)
        exc.args = (exc.args[0], stop if exc.args[1] is None else exc.args[1] + start)
        return exc
    only = _FIRST_NODE.match(answer)
    if only is not None and only.group(1) not in _CHECKED_NODES and _LATER_STATEMENT not in answer:
        # one statement that no check reads (most of them): its type is all that is kept, so the
        # tree is not decoded (json.loads of every tree was a third of the time spent parsing)
        return [(start, stop, only.group(1), None)]
    tree = json.loads(answer)
    raw = tree.get("stmts", [])
    if len(raw) == 1:
        ((node_type, node),) = raw[0]["stmt"].items()
        return [(start, stop, node_type, node)]
    # more than one statement in one scanner piece (the scanner and the parser disagree): place each
    # by its byte offset in the region's UTF-8 text
    encoded = region.encode("utf-8")
    found = []
    for item in raw:
        location = item.get("stmt_location", 0)
        length = item.get("stmt_len", 0) or len(encoded) - location
        first = start + len(encoded[:location].decode("utf-8"))
        last = first + len(encoded[location : location + length].decode("utf-8"))
        first = _skip_blank(text, first, last)
        ((node_type, node),) = item["stmt"].items()
        found.append((first, last, node_type, node))
    return found


class _LineIndex:
    """Maps character offsets to 1-based line numbers (and columns) without a list of every line."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._offset = 0  # a memo: lines are asked for in increasing order
        self._line = 1

    def line(self, offset: int) -> int:
        if offset < self._offset:
            self._offset, self._line = 0, 1
        self._line += self._text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line

    def column(self, offset: int) -> int:
        return offset - (self._text.rfind("\n", 0, offset) + 1) + 1


def _syntax_problem(
    text: str,
    exc: Exception,
    lines: _LineIndex,
    previous: tuple[Statement, dict[str, Any]] | None = None,
) -> Problem:
    message, offset = exc.args if len(exc.args) == 2 else (str(exc), None)
    if offset is None:  # at the end of the input
        offset = len(text.rstrip(_PG_SPACE))
    offset = min(offset, len(text))
    line, column = lines.line(offset), lines.column(offset)
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    source_line = text[line_start : len(text) if line_end < 0 else line_end]
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
    if previous and _is_copy_from_stdin(*previous):
        copy = previous[0]
        return Problem(
            None,
            f"COPY ... FROM stdin at line {copy.line} is followed by inline data, which only psql can send",
            "Load the rows with INSERT statements (or COPY from a file on the database server).",
            line=copy.line,
        )
    return Problem(
        None,
        f"SQL syntax error: {message}",
        "Fix the statement at this line; `pgship verify` checks the files again without a database.",
        line=line,
        column=column,
    )


def _is_copy_from_stdin(statement: Statement, node: dict[str, Any]) -> bool:
    return (
        statement.node == "CopyStmt"
        and bool(node.get("is_from"))
        and not node.get("filename")
        and not node.get("is_program")
    )


def _read_directives(text: str, lines: _LineIndex, problems: list[Problem]) -> bool:
    """Whether the first line is ``-- pgship:no-transaction`` (an unknown directive there is an error)."""
    newline = text.find("\n")
    match = _DIRECTIVE.match(text[: len(text) if newline < 0 else newline].strip())
    if match is None:
        return False
    name = match["name"]
    if name == NO_TRANSACTION:
        return True
    problems.append(
        Problem(
            None,
            f"unknown directive pgship:{name}",
            f"The known directives are: {', '.join(sorted(KNOWN_DIRECTIVES))}. "
            "Fix the spelling or make it an ordinary comment.",
            line=1,
        )
    )
    return False


def _check_markers(
    text: str,
    lines: _LineIndex,
    markers: list[int],
    regions: list[tuple[int, int]],
    last_end: int,
    problems: list[Problem],
) -> None:
    """A ``-- pgship:...`` comment anywhere but the first line is an error: it would not count there."""
    from pglast import parser

    newline = text.find("\n")
    first_line_end = len(text) if newline < 0 else newline
    first_is_directive = _DIRECTIVE.match(text[:first_line_end].strip()) is not None
    starts = [begin for begin, _ in regions]
    trailing = (last_end + 1, len(text))  # after the last statement: only comments and white space
    scanned: dict[int, list[Any]] = {}
    for offset in markers:
        if offset == 0 and first_is_directive:
            continue
        candidate = _MARKER.match(text, offset)
        comment = candidate.group().strip() if candidate else ""
        down = _FOREIGN_DOWN.match(comment)
        directive = None if down else _DIRECTIVE.match(comment)
        if directive is None and down is None:
            continue  # "-- pgship: some prose" is an ordinary comment
        index = bisect_right(starts, offset) - 1
        inside = index >= 0 and regions[index][0] <= offset <= regions[index][1]
        begin, end = regions[index] if inside else trailing
        if end - begin > LARGE_STATEMENT:
            # scanning a huge statement would cost more memory than the file: count it as a comment
            # when it starts its line (a string literal holding such a line is refused too; rename it)
            in_comment = not text[text.rfind("\n", 0, offset) + 1 : offset].strip(_PG_SPACE)
        else:
            if begin not in scanned:
                try:
                    scanned[begin] = parser.scan(text[begin:end])
                except parser.ParseError:
                    scanned[begin] = []
            in_comment = any(
                token.name == "SQL_COMMENT" and begin + token.start == offset for token in scanned[begin]
            )
        if not in_comment:
            continue
        line = lines.line(offset)
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
                    line=line,
                )
            )
            continue
        assert directive is not None
        problems.append(
            Problem(
                None,
                f"the pgship:{directive['name']} marker only counts on the first line of the file, "
                f"and this one is on line {line}",
                "Move `-- pgship:no-transaction` to the file's first line if the whole file must run "
                "outside a transaction, or remove this line.",
                line=line,
            )
        )


_TRANSACTION_START = {"TRANS_STMT_BEGIN", "TRANS_STMT_START"}
_SAVEPOINTS = {"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"}


def _check_statements(script: Script, statements: list[Statement], nodes: dict[int, dict[str, Any]]) -> None:
    problems = script.problems
    transaction_control = [
        (index, statement, nodes[index]["kind"])
        for index, statement in enumerate(statements)
        if statement.node == "TransactionStmt"
    ]
    executed = statements

    inline_data = {p.line for p in problems if "is followed by inline data" in p.message}
    for index, statement in enumerate(statements):
        node = nodes.get(index, _NOTHING)
        copy_problem = _copy_problem(statement, node)
        if copy_problem and statement.line not in inline_data:
            problems.append(copy_problem)
        if _turns_standard_strings_off(statement.node, node):
            problems.append(
                Problem(
                    None,
                    "standard_conforming_strings = off makes a backslash in '...' an escape: PostgreSQL "
                    "would then read this file (or later ones) differently from how pgship split it",
                    "Keep standard_conforming_strings on (the default) and write E'...' where a string needs "
                    "backslash escapes.",
                    line=statement.line,
                )
            )
        if script.no_transaction:
            only = transaction_only_reason(statement.node, node)
            if only:
                problems.append(
                    Problem(
                        None,
                        f"{only} in a no-transaction migration, where each statement commits on its own",
                        "Move it to a migration that runs in a transaction (a file without the "
                        "`-- pgship:no-transaction` line), together with the statements it is for.",
                        line=statement.line,
                    )
                )
        else:
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
        begin_node = nodes.get(0, _NOTHING)
        if begin_node.get("options"):
            problems.append(
                Problem(
                    None,
                    "BEGIN with transaction options (isolation level, read only...) is not supported",
                    "Use a plain BEGIN; (or none: pgship already runs the file in one transaction).",
                    line=statements[0].line,
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


def lock_timeout_exempt(node_type: str, node: dict[str, Any]) -> bool:
    """Whether the statement works in phases that wait for other transactions (see ``Statement``)."""
    if node_type in ("IndexStmt", "DropStmt"):
        return bool(node.get("concurrent"))
    if node_type == "ReindexStmt":
        return any(p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params", []))
    if node_type == "AlterTableStmt":
        for command in node.get("cmds", []):
            cmd = command.get("AlterTableCmd", {})
            partition = cmd.get("def", {}).get("PartitionCmd", {})
            if cmd.get("subtype") == "AT_DetachPartition" and partition.get("concurrent"):
                return True
    return False


_CURSOR_OPT_HOLD = 0x0020  # PostgreSQL's parsenodes.h


def transaction_only_reason(node_type: str, node: dict[str, Any]) -> str | None:
    """What a statement that needs a transaction block is (or None), as PostgreSQL behaves outside one.

    Outside a transaction block the server refuses ``LOCK`` and ``DECLARE CURSOR`` without ``WITH
    HOLD`` (25P01), and ignores ``SET LOCAL``, ``SET TRANSACTION`` and ``SET CONSTRAINTS`` with only a
    warning: in a no-transaction file each would fail after the statements before it committed, or do
    nothing. ``SELECT ... FOR UPDATE`` runs (its locks last for the statement), so it is allowed.
    """
    if node_type == "LockStmt":
        return "LOCK TABLE (it only works inside a transaction block)"
    if node_type == "DeclareCursorStmt" and not int(node.get("options", 0)) & _CURSOR_OPT_HOLD:
        return "DECLARE CURSOR without WITH HOLD (it only works inside a transaction block)"
    if node_type == "VariableSetStmt":
        if node.get("is_local"):
            return "SET LOCAL (outside a transaction block it does nothing)"
        if node.get("kind") == "VAR_SET_MULTI" and str(node.get("name", "")).startswith("TRANSACTION"):
            return "SET TRANSACTION (outside a transaction block it does nothing)"
    if node_type == "ConstraintsSetStmt":
        return "SET CONSTRAINTS (outside a transaction block it does nothing)"
    return None


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


def _turns_standard_strings_off(node_type: str, node: dict[str, Any]) -> bool:
    """``SET`` / ``ALTER DATABASE|ROLE ... SET standard_conforming_strings`` to anything but on."""
    setting = node.get("setstmt", {}) if node_type in ("AlterDatabaseSetStmt", "AlterRoleSetStmt") else node
    if node_type not in ("VariableSetStmt", "AlterDatabaseSetStmt", "AlterRoleSetStmt"):
        return False
    if setting.get("name") != "standard_conforming_strings" or setting.get("kind") != "VAR_SET_VALUE":
        return False
    values = [arg.get("A_Const", {}) for arg in setting.get("args", [])]
    words = [str(value.get("sval", {}).get("sval", "")).lower() for value in values]
    return words != ["on"] and words != ["true"] and words != ["yes"]


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
