"""The SQL the runner sends around each migration, built by pure functions (pgship.session,
pgship.guard, pgship.history), and the typed events. What these statements *do* to a live session is
proven against PostgreSQL in tests/integration/test_exactly_once.py and tests/faults."""

from __future__ import annotations

import json

import pytest

from pgship import guard, session
from pgship.events import Event, EventKind
from pgship.history import KnownRows, TrackingTable, others_sum_sql, readback_query, record_statement


def test_the_clean_session_reset_is_discard_all_without_releasing_the_advisory_lock():
    reset = session.session_defaults(160000)
    assert reset[:8] == [
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET ALL",
        "DISCARD TEMP",
        "DISCARD PLANS",
        "DISCARD SEQUENCES",
        "DEALLOCATE ALL",
        "CLOSE ALL",
        "UNLISTEN *",
    ]
    assert reset[-1] == "SET client_connection_check_interval = 1000"
    assert not any("DISCARD ALL" in s or "unlock" in s for s in reset)
    assert "client_connection_check_interval" not in " ".join(session.session_defaults(130000))


def test_begin_sets_the_migrations_timeouts_locally_in_one_statement():
    assert session.begin(3.0, None, pooled=False, server_version=160000) == [
        "BEGIN",
        "SELECT pg_catalog.set_config('lock_timeout', '3000ms', true)",  # true: SET LOCAL
    ]
    assert session.begin(0.25, 60, pooled=False, server_version=160000, also="1")[1:] == [
        "SELECT pg_catalog.set_config('lock_timeout', '250ms', true), "
        "pg_catalog.set_config('statement_timeout', '60000ms', true), 1",
    ]


def test_the_reset_after_commit_is_the_same_reset_in_two_statements():
    first, block = session.reset_after_commit(160000)
    assert first == "SET SESSION AUTHORIZATION DEFAULT"  # the DO block then runs as the runner's role
    assert block.startswith("DO $pgship_reset$ BEGIN RESET ALL; DISCARD TEMP; DISCARD SEQUENCES; ")
    assert "EXECUTE 'CLOSE ALL'; UNLISTEN *; SET client_connection_check_interval = 1000;" in block
    assert "unlock" not in block
    # the runner's prepared statements stay; a migration's own are counted and deallocated one by one
    assert "DEALLOCATE ALL" not in block and "DISCARD PLANS" not in block
    assert "WHERE from_sql" in session.deallocate_from_sql()
    prepared = session.reset_between_migrations(160000)  # the same reset, prepared once per run
    assert prepared[0] == first and prepared[1:] == [
        "RESET ALL",
        "DISCARD TEMP",
        "DISCARD SEQUENCES",
        "CLOSE ALL",
        "UNLISTEN *",
        "SET client_connection_check_interval = 1000",
    ]


def test_through_a_transaction_pooler_every_reset_is_local_to_the_transaction():
    pooled = session.begin(3.0, None, pooled=True, server_version=160000)
    assert pooled[0] == "BEGIN READ WRITE"
    assert all(s.startswith(("BEGIN", "SET LOCAL", "SELECT pg_catalog.set_config(")) for s in pooled)
    assert "SET LOCAL search_path TO DEFAULT" in pooled
    cleanup = session.pooled_cleanup()
    assert "DEALLOCATE ALL" not in cleanup and "DISCARD PLANS" not in cleanup  # the pooler's own statements
    assert any("from_sql" in s for s in cleanup)


def test_the_runners_own_timeouts():
    assert session.own_statement_timeout(None) == "SET LOCAL statement_timeout = 0"
    assert session.own_statement_timeout(1.5, local=False) == "SET statement_timeout = '1500ms'"
    assert session.session_timeouts(None, 2) == "SET lock_timeout = 0; SET statement_timeout = '2000ms'"


def test_the_guard_checks_this_sessions_lock_by_key_and_the_other_rows_hash_sum():
    table = TrackingTable("schema_migrations", "public")
    key = table.lock_key
    held = guard.lock_held_sql(key)
    assert f"pg_try_advisory_xact_lock('{key}'::pg_catalog.int8)" in held  # checked against a server in
    assert f"pg_advisory_unlock('{key}'::pg_catalog.int8)" in held  # tests/unit/test_guard_lock.py
    assert guard.lock_held_sql(None) == "TRUE"  # a lease run: the lease check runs beside the guard
    rows = KnownRows(oid=16384, filenode=16390)
    rows.replace((), [("001", 5), ("002", 7)])
    own = ("003", "3")
    text = guard.guard_for(held, rows, others_sum_sql(table, own), own)
    assert text.startswith("SELECT ") and "DO $" not in text  # plain SQL: nothing to compile per migration
    messages = guard.MESSAGES
    assert text.index(messages[guard.LOCK_RELEASED]) < text.index(messages[guard.TRACKING_CHANGED])
    assert "IS NOT DISTINCT FROM 12 END" in text  # the sum of the other rows' hashes the run knows
    assert "NOT IN ('003', '3')" in text
    assert "'16390'::oid" in text  # the table's file: a TRUNCATE or rewrite takes the slow path
    assert guard.GUARD_SETTING in guard.counts_at_begin_sql(16384)
    lease_run = guard.guard_for("TRUE", rows, others_sum_sql(table, own), own)
    assert guard.MESSAGES[guard.LOCK_RELEASED] not in lease_run


def test_a_failed_check_is_read_back_from_the_servers_answer_and_nothing_else_is():
    for code, text in guard.MESSAGES.items():
        answer = f'invalid input syntax for type integer: "{text}"'
        assert guard.failed_check("22P02", answer) == code
        assert guard.failed_check("57014", answer) is None  # a timeout is not a failed check
    assert guard.failed_check("22P02", 'invalid input syntax for type integer: "abc"') is None
    assert guard.failed_check(None, "") is None


def test_the_read_back_after_commit_is_one_statement_with_the_tables_file_first():
    table = TrackingTable("schema_migrations", "public")
    text = readback_query(table, ("003", "3"), 16384)
    assert text.startswith("SELECT pg_catalog.pg_relation_filenode('16384'::oid)::pg_catalog.int8, ")
    assert "pg_prepared_statements WHERE from_sql)::text UNION ALL" in text  # a migration's PREPAREs
    assert text.endswith("WHERE t.version::text IN ('003', '3')")
    assert readback_query(table, "$1, $2", 16384).endswith("IN ($1, $2)")  # prepared once per run


def test_the_tracking_row_is_an_upsert_that_works_without_a_unique_constraint():
    table = TrackingTable("schema_migrations", "public")
    text = record_statement(
        table, version="003", name="it's", checksum="abc", execution_ms=None, applied_by="me"
    ).as_string(None)
    assert text.startswith('WITH updated AS (UPDATE "public"."schema_migrations"')
    assert "version::text IN ('003', '3')" in text and "'it''s'" in text
    assert "WHERE NOT EXISTS (SELECT 1 FROM updated)" in text


def test_event_kinds_are_typed_and_serialise_as_before():
    event = Event("applied", "applied 001_a.sql (3 ms)", {"file": "001_a.sql"})
    assert event.kind is EventKind.APPLIED and event.kind == "applied"
    assert json.dumps({"event": event.kind}) == '{"event": "applied"}'
    assert f"{event.kind}" == "applied"
    assert Event(EventKind.PLAN, "x").data == {}
    with pytest.raises(ValueError):
        Event("no_such_kind", "x")
