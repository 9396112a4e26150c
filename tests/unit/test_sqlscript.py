"""Statement classification with PostgreSQL's parser: what can run, how, and why not."""

from __future__ import annotations

import pytest

from pgship.sqlscript import analyse


def problems(sql: str) -> list[tuple[int | None, str]]:
    return [(p.line, p.message) for p in analyse(sql).problems]


def test_plain_statements_are_split_with_their_lines():
    script = analyse("-- header\nCREATE TABLE a (id int);\n\n/* note */ INSERT INTO a\nVALUES (1);")
    assert [(s.line, s.node) for s in script.statements] == [(2, "CreateStmt"), (4, "InsertStmt")]
    assert not script.problems and not script.wrapped and not script.no_transaction


def test_a_file_wrapped_in_begin_commit_runs_without_the_wrapper():
    script = analyse("BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n")
    assert script.wrapped
    assert [s.node for s in script.statements] == ["CreateStmt"]
    assert not script.problems


def test_savepoints_inside_the_migration_are_allowed():
    script = analyse("SAVEPOINT s;\nCREATE TABLE a (id int);\nRELEASE SAVEPOINT s;")
    assert not script.problems


def test_commit_inside_a_function_body_is_not_transaction_control():
    script = analyse("CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;")
    assert not script.problems


@pytest.mark.parametrize(
    "sql,line,fragment",
    [
        ("CREATE TABLE a (id int);\nCOMMIT;\nCREATE TABLE b (id int);", 2, "COMMIT in the middle"),
        ("BEGIN;\nCREATE TABLE a (id int);", 1, "no matching COMMIT"),
        ("CREATE TABLE a (id int);\nCOMMIT;", 2, "no BEGIN"),
        ("BEGIN;\nSELECT 1;\nROLLBACK;", 3, "ROLLBACK would undo"),
        ("SELECT 1;\nBEGIN;\nSELECT 2;\nCOMMIT;", 2, "second transaction"),
        ("PREPARE TRANSACTION 'x';", 1, "two-phase"),
    ],
)
def test_transaction_control_other_than_one_wrapper_is_an_error(sql, line, fragment):
    found = problems(sql)
    assert any(at == line and fragment in message for at, message in found), found


@pytest.mark.parametrize(
    "sql,what",
    [
        ("CREATE INDEX CONCURRENTLY i ON t (c);", "CREATE INDEX CONCURRENTLY"),
        ("DROP INDEX CONCURRENTLY i;", "DROP INDEX CONCURRENTLY"),
        ("REINDEX INDEX CONCURRENTLY i;", "REINDEX ... CONCURRENTLY"),
        ("VACUUM t;", "VACUUM"),
        ("CREATE DATABASE x;", "CREATE DATABASE"),
        ("ALTER SYSTEM SET work_mem = '1MB';", "ALTER SYSTEM"),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY;", "DETACH PARTITION"),
    ],
)
def test_non_transactional_statements_need_the_marker(sql, what):
    [(line, message)] = problems("SELECT 1;\n" + sql)
    assert line == 2 and what in message and "inside a transaction" in message
    assert "-- pgship:no-transaction" in analyse("SELECT 1;\n" + sql).problems[0].fix
    marked = analyse("-- pgship:no-transaction\n" + sql)
    assert marked.no_transaction and not marked.problems


def test_analyze_and_plain_index_are_fine_in_a_transaction():
    assert not problems("ANALYZE t;\nCREATE INDEX i ON t (c);")


def test_the_marker_inside_a_string_does_not_count():
    script = analyse("SELECT '-- pgship:no-transaction';\nCREATE INDEX CONCURRENTLY i ON t (c);")
    assert not script.no_transaction and script.problems


def test_an_unknown_directive_is_an_error():
    assert problems("-- pgship:no-transactions\nSELECT 1;") == [
        (1, "unknown directive pgship:no-transactions")
    ]


def test_transaction_control_in_a_no_transaction_file_is_an_error():
    found = problems("-- pgship:no-transaction\nBEGIN;\nSELECT 1;\nCOMMIT;")
    assert [line for line, _ in found] == [2, 4]


@pytest.mark.parametrize("meta", ["\\i other.sql", "\\c otherdb", "\\copy t from 'x.csv'", "\\set x 1"])
def test_psql_meta_commands_are_errors_with_their_line(meta):
    [(line, message)] = problems(f"-- ünïcode\nSELECT 'é';\n{meta}\nSELECT 2;")
    assert line == 3 and "psql meta-command" in message and meta.split()[0] in message


def test_copy_from_stdin_with_data_is_an_error_on_the_copy_line():
    [(line, message)] = problems("CREATE TABLE t (a int, b text);\nCOPY t FROM stdin;\n1\tfoo\n\\.\n")
    assert line == 2 and "COPY ... FROM stdin" in message


def test_copy_from_stdin_without_data_is_an_error_too():
    [(line, message)] = problems("COPY t FROM stdin;")
    assert line == 1 and "stdin" in message


def test_a_syntax_error_has_line_and_column_even_after_non_ascii_text():
    [problem] = analyse("CREATE TABLE café (id int);\n  CREAT TABLE b ();").problems
    assert (problem.line, problem.column) == (2, 3)
    assert "CREAT" in problem.message


@pytest.mark.parametrize("sql", ["", "   \n", "-- only a comment\n", "/* block */"])
def test_an_empty_or_comment_only_file_is_an_error(sql):
    assert "no SQL statements" in problems(sql)[0][1]


def test_an_unterminated_dollar_quote_is_a_syntax_error():
    [(line, message)] = problems("SELECT 1;\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1;")
    assert line == 2 and "unterminated" in message


@pytest.mark.parametrize(
    ("sql", "target"),
    [
        ("CREATE INDEX CONCURRENTLY IF NOT EXISTS t_idx ON t (id)", (None, "t", "t_idx")),
        ("create unique index concurrently Orders_Idx on App.Orders (id)", ("app", "orders", "orders_idx")),
        ('CREATE INDEX CONCURRENTLY "Mixed" ON "Odd Table" (id)', (None, "Odd Table", "Mixed")),
        ("CREATE INDEX CONCURRENTLY ON t (id)", None),  # no name: PostgreSQL picks one
        ("CREATE INDEX t_idx ON t (id)", None),
        ("DROP INDEX CONCURRENTLY t_idx", None),
        ("not sql at all", None),
    ],
)
def test_the_index_a_concurrent_build_names_is_read_from_the_statement(sql, target):
    from pgship.sqlscript import concurrent_index_target

    found = concurrent_index_target(sql)
    assert (found and (found.schema, found.table, found.index)) == target


def test_the_table_of_a_concurrent_build_is_quoted_for_to_regclass():
    from pgship.sqlscript import concurrent_index_target

    found = concurrent_index_target('CREATE INDEX CONCURRENTLY i ON "we""ird"."Odd Table" (id)')
    assert found is not None and found.table_regclass_text() == '"we""ird"."Odd Table"'


# -- the no-transaction marker counts only on the first line (issue 12.7) -------------------------
def test_the_marker_on_the_second_line_is_an_error_with_its_line_and_does_not_count():
    script = analyse("-- Build the index without blocking writes.\n-- pgship:no-transaction\nSELECT 1;")
    assert not script.no_transaction
    [problem] = script.problems
    assert problem.line == 2 and "only counts on the first line" in problem.message
    assert "first line" in problem.fix


def test_the_marker_after_sql_on_the_first_line_is_an_error():
    script = analyse("SELECT 1; -- pgship:no-transaction\nSELECT 2;")
    assert not script.no_transaction
    assert [(p.line, "first line" in p.message) for p in script.problems] == [(1, True)]


def test_the_marker_repeated_further_down_a_marked_file_is_an_error():
    script = analyse("-- pgship:no-transaction\nSELECT 1;\n-- pgship:no-transaction\n")
    assert script.no_transaction
    assert [p.line for p in script.problems] == [3]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1;\nSELECT '\n-- pgship:no-transaction\n';",  # inside a string
        "SELECT 1;\n/* old notes:\n-- pgship:no-transaction\n*/ SELECT 2;",  # inside a block comment
        "SELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$\n-- pgship:no-transaction\n"
        "SELECT 1 $$;",
        "SELECT 1;\n-- pgship: the index below is built in 013\n",  # prose, not a directive
    ],
)
def test_marker_text_that_is_not_a_marker_comment_is_not_an_error(sql):
    script = analyse(sql)
    assert not script.problems and not script.no_transaction


# -- concurrency is read from the parse tree (issue 12.8) -------------------------------------------
@pytest.mark.parametrize(
    ("sql", "concurrent"),
    [
        ("CREATE INDEX CONCURRENTLY i ON t (c)", True),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t (c)", True),
        ("DROP INDEX CONCURRENTLY i", True),
        ("REINDEX INDEX CONCURRENTLY i", True),
        ("REINDEX (CONCURRENTLY, VERBOSE) TABLE t", True),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", True),
        ("ALTER TABLE jobs ADD COLUMN processed_concurrently boolean", False),
        ('ALTER TABLE jobs RENAME COLUMN done TO "CONCURRENTLY"', False),
        ("CREATE INDEX jobs_concurrently_idx ON jobs (processed_concurrently)", False),
        ("DROP INDEX concurrently_idx", False),
        ("ALTER TABLE p DETACH PARTITION c", False),
        ("ALTER TABLE p DETACH PARTITION c FINALIZE", False),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY v", False),  # one transaction, an ordinary lock
        ("UPDATE jobs SET note = 'CONCURRENTLY'", False),
        ("REINDEX INDEX i", False),
    ],
)
def test_a_statement_is_concurrent_only_when_the_parse_tree_says_so(sql, concurrent):
    [statement] = analyse("-- pgship:no-transaction\n" + sql + ";").statements
    assert statement.concurrent is concurrent


# -- the parser reads the real text (issue 12.9) ----------------------------------------------------
def test_a_non_ascii_dollar_quote_tag_is_valid_sql():
    sql = "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $é$ SELECT $ü$a;b$ü$ $é$;\nSELECT f();\n"
    script = analyse(sql)
    assert not script.problems
    assert [(s.line, s.text) for s in script.statements] == [
        (1, "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $é$ SELECT $ü$a;b$ü$ $é$"),
        (2, "SELECT f()"),
    ]


def test_a_begin_that_only_non_ascii_dollar_tags_separate_from_a_string_is_seen():
    # PostgreSQL reads: a string, then BEGIN, then a string; with the tags replaced by the same
    # ASCII letter the BEGIN would be inside a string and a no-transaction file would pass
    sql = "-- pgship:no-transaction\nSELECT $é$$ü$||$é$;\nBEGIN;\nSELECT $é$ a$é$;\n"
    script = analyse(sql)
    assert [s.node for s in script.statements] == ["SelectStmt", "TransactionStmt", "SelectStmt"]
    assert [(p.line, p.message.split(" in ")[0]) for p in script.problems] == [(3, "BEGIN")]


def test_statement_lines_and_error_columns_count_characters_not_bytes():
    script = analyse("SELECT 'ééé' AS a;\nSELECT 'ü' AS b; SELEC 2;\n")
    [problem] = script.problems
    assert (problem.line, problem.column) == (2, 18)
    assert [(s.line, s.text) for s in script.statements] == [(1, "SELECT 'ééé' AS a"), (2, "SELECT 'ü' AS b")]


def test_a_statement_keeps_a_no_break_space_postgresql_reads_as_part_of_a_name():
    script = analyse("SELECT 1 AS a\u00a0;\n")
    assert [s.text for s in script.statements] == ["SELECT 1 AS a\u00a0"]


def test_a_sql_standard_function_body_is_one_statement():
    sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nSELECT f();"
    script = analyse(sql)
    assert not script.problems
    assert [(s.line, s.node) for s in script.statements] == [(1, "CreateFunctionStmt"), (2, "SelectStmt")]
    assert script.statements[0].text.endswith("END")


def test_every_syntax_error_of_a_file_is_reported_in_one_pass():
    found = problems("SELEC 1;\nSELECT 2;\nCREAT TABLE t (id int);\n")
    assert [line for line, _ in found] == [1, 3]


# -- what needs a transaction block is refused in a no-transaction file (issue 12.13) ---------------
@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "LOCK TABLE"),
        ("DECLARE c CURSOR FOR SELECT 1", "DECLARE CURSOR without WITH HOLD"),
        ("DECLARE c SCROLL CURSOR WITHOUT HOLD FOR SELECT 1", "DECLARE CURSOR without WITH HOLD"),
        ("SET LOCAL lock_timeout = '1s'", "SET LOCAL"),
        ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "SET TRANSACTION"),
        ("SET CONSTRAINTS ALL DEFERRED", "SET CONSTRAINTS"),
    ],
)
def test_what_needs_a_transaction_block_is_refused_in_a_no_transaction_file(sql, what):
    found = problems(f"-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);\n{sql};\n")
    assert len(found) == 1 and found[0][0] == 3 and found[0][1].startswith(what), found
    assert not problems(f"{sql};\n")  # in a transaction it is fine


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t FOR UPDATE",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "SET lock_timeout = '1s'",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
    ],
)
def test_what_works_outside_a_transaction_block_is_allowed_in_a_no_transaction_file(sql):
    assert not problems(f"-- pgship:no-transaction\n{sql};\n")


# -- bounded memory (issue 12.12) -------------------------------------------------------------------
def test_a_large_insert_is_split_and_located_without_a_parse_tree_of_the_whole_file():
    from pgship.sqlscript import LARGE_STATEMENT

    rows = ",\n".join(f"({i}, 'é {i}')" for i in range(LARGE_STATEMENT // 8))
    sql = f"CREATE TABLE t (a int, b text);\nINSERT INTO t VALUES\n{rows};\nSELECT 1;\n"
    script = analyse(sql)
    assert not script.problems
    assert [(s.line, s.node) for s in script.statements] == [
        (1, "CreateStmt"),
        (2, "InsertStmt"),
        (sql.count("\n"), "SelectStmt"),
    ]
    assert script.statements[1].text.endswith(f"'é {LARGE_STATEMENT // 8 - 1}')")


def test_a_large_statement_in_a_no_transaction_file_is_still_parsed():
    from pgship.sqlscript import LARGE_STATEMENT

    rows = ",".join(f"({i})" for i in range(LARGE_STATEMENT // 4))
    script = analyse(f"-- pgship:no-transaction\nINSERT INTO t VALUES {rows}, (;\n")
    assert [p.message.startswith("SQL syntax error") for p in script.problems] == [True]


@pytest.mark.parametrize(
    "sql",
    [
        "SET standard_conforming_strings = off",
        "SET standard_conforming_strings TO false",
        "SET LOCAL standard_conforming_strings = 0",
        "ALTER DATABASE app SET standard_conforming_strings = off",
        "ALTER ROLE app SET standard_conforming_strings = off",
    ],
)
def test_turning_standard_conforming_strings_off_is_refused(sql):
    [(line, message)] = problems(f"SELECT 1;\n{sql};\n")
    assert line == 2 and "standard_conforming_strings" in message


@pytest.mark.parametrize("sql", ["SET standard_conforming_strings = on", "RESET standard_conforming_strings"])
def test_keeping_standard_conforming_strings_on_is_fine(sql):
    assert not problems(f"{sql};\n")


# -- a large file is scanned in chunks, with the same result as a scan of the whole file ------------
CHUNKED = [
    "INSERT INTO t VALUES (1, 'a'), (2, 'b;c'), (3, E'd\\'), (e'), (4, $x$),;$x$), (5, \"q\"\"),\");\n"
    "SELECT 1;\n",
    "INSERT INTO t VALUES (1) -- ), ; SELECT 2\n, (2);\nSELECT 3;",
    "INSERT INTO t VALUES (1), /* ), /* ; */ ), */ (2);\nSELECT 4;",
    "INSERT INTO t SELECT * FROM (VALUES (1), (2), (3)) v;\nSELECT 5;",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nSELECT f();",
    "SELECT 1; foo bar; SELECT 2; \\i x\nSELECT 3;",
    "INSERT INTO t VALUES ('é'), ('ü'), ($é$),;$é$), ('x');",
]


@pytest.mark.parametrize("sql", CHUNKED)
@pytest.mark.parametrize("chunk", [1, 3, 7, 16])
def test_a_chunked_scan_finds_the_same_statements_as_a_whole_scan(monkeypatch, sql, chunk):
    import pgship.sqlscript as sqlscript

    whole = analyse(sql)
    monkeypatch.setattr(sqlscript, "SCAN_CHUNK", chunk)
    chunked = analyse(sql)
    assert [(s.start, s.end, s.node) for s in chunked.statements] == [
        (s.start, s.end, s.node) for s in whole.statements
    ]
    assert chunked.problems == whole.problems


@pytest.mark.parametrize("chunk", [1, 5])
def test_a_chunked_scan_reports_an_unterminated_string_where_it_starts(monkeypatch, chunk):
    import pgship.sqlscript as sqlscript

    sql = "INSERT INTO t VALUES (1), (2);\nINSERT INTO t VALUES (3), ('x), (4);\n"
    whole = analyse(sql).problems
    monkeypatch.setattr(sqlscript, "SCAN_CHUNK", chunk)
    assert analyse(sql).problems == whole
    assert [(p.line, "unterminated" in p.message) for p in whole] == [(2, True)]
