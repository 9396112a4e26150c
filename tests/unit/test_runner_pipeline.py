"""pgship.pipeline against a real PostgreSQL: one round trip, every result kept, the failing statement
found by index, a lost connection reported with what completed before it."""

from __future__ import annotations

import psycopg
import pytest

from pgship import pipeline


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


def test_results_come_back_in_order_with_their_rows(conn):
    outcome = pipeline.run(
        conn, ["BEGIN", "CREATE TABLE t (a int)", "SELECT 1, NULL, 'é'", "COMMIT"], "utf-8"
    )
    assert outcome.error is None and outcome.failed_at is None and outcome.completed == 4
    assert list(outcome.rows(2, "utf-8")) == [("1", None, "é")]
    assert conn.execute("SELECT to_regclass('t') IS NOT NULL").fetchone() == (True,)
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_the_server_stops_at_the_first_error_and_names_it_by_index(conn):
    outcome = pipeline.run(
        conn,
        ["BEGIN", "CREATE TABLE t (a int)", "SELECT nosuch FROM t", "CREATE TABLE u ()", "COMMIT"],
        "utf-8",
    )
    assert isinstance(outcome.error, psycopg.errors.UndefinedColumn)
    assert outcome.failed_at == 2 and outcome.completed == 2
    assert outcome.error.diag.statement_position == "8"  # counted within its own statement
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT to_regclass('t'), to_regclass('u')").fetchone() == (None, None)


def test_a_lost_connection_keeps_what_completed_before_it(conn):
    pid = conn.info.backend_pid
    statements = ["BEGIN", "SELECT 1", f"SELECT pg_terminate_backend({pid})", "SELECT 2", "COMMIT"]
    outcome = pipeline.run(conn, statements, "utf-8")
    assert outcome.error is not None
    assert outcome.completed == 2  # BEGIN and SELECT 1 answered; the terminating statement did not
    assert conn.broken or conn.closed


def test_prepared_statements_run_by_name_with_their_values_next_to_texts(conn):
    prepared = pipeline.prepare(conn, {"pgship_test_add": "SELECT $1::int + $2::int"}, "utf-8")
    assert prepared.error is None
    outcome = pipeline.run(
        conn,
        ["SELECT 'text'", pipeline.Prepared(b"pgship_test_add", (b"2", b"3")), "SELECT 1"],
        "utf-8",
    )
    assert outcome.error is None and outcome.completed == 3
    assert list(outcome.rows(1, "utf-8")) == [("5",)]
    conn.execute("DEALLOCATE ALL")  # what a migration may do: the name is gone, the server says so
    gone = pipeline.run(conn, [pipeline.Prepared(b"pgship_test_add", (b"1", b"1"))], "utf-8")
    assert gone.failed_at == 0 and gone.error is not None and gone.error.sqlstate == "26000"
