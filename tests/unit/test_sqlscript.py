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
