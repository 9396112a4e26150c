"""Tracking table names as typed, and the runner's running total of tracking row hashes (pure)."""

from __future__ import annotations

import pytest

from pgship.history import TrackingTable
from pgship.runner import KnownRows


@pytest.mark.parametrize(
    ("text", "schema", "name"),
    [
        ("schema_migrations", None, "schema_migrations"),
        ("public.schema_migrations", "public", "schema_migrations"),
        ('"public"."schema_migrations"', "public", "schema_migrations"),
        ('"schema_migrations"', None, "schema_migrations"),
        ('"my app"."Migrations"', "my app", "Migrations"),
        ('"a""b".x', 'a"b', "x"),
    ],
)
def test_names_are_parsed_with_or_without_quotes(text, schema, name):
    assert TrackingTable.parse(text) == TrackingTable(name=name, schema=schema)


@pytest.mark.parametrize("text", ["", "a..b", "a.b.c", "a b", '"unclosed', "a.", ".a", "a;drop"])
def test_other_text_is_refused(text):
    with pytest.raises(ValueError, match="not a table name"):
        TrackingTable.parse(text)


def test_two_spellings_of_one_resolved_table_share_one_lock_key():
    keys = {
        TrackingTable.parse(t).lock_key for t in ("public.schema_migrations", '"public"."schema_migrations"')
    }
    assert len(keys) == 1
    assert TrackingTable.parse("other.schema_migrations").lock_key not in keys


def test_the_expected_total_leaves_out_the_migrations_own_rows():
    rows = KnownRows(oid=1, filenode=2)
    rows.replace((), [("001", 5), ("002", 7), ("2", 11)])
    assert rows.expected(("003", "3")) == 23
    assert rows.expected(("002", "2")) == 5
    rows.replace(("003", "3"), [("003", 13)])
    assert rows.expected(("004", "4")) == 36
    rows.replace(("002", "2"), [("002", 1)])  # a legacy file's row, completed by the runner
    assert rows.expected(("004", "4")) == 19


def test_a_database_error_that_a_stop_signal_caused_is_recognised_as_the_interrupt():
    """psycopg leaving a pipeline after a signal says "cannot exit pipeline mode while busy": the
    runner must report the interrupt (exit 130, checked against the database), not a failed migration."""
    import psycopg

    from pgship.runner import signalled

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise psycopg.OperationalError("cannot exit pipeline mode while busy") from None
    except psycopg.OperationalError as caused_by_signal:
        assert signalled(caused_by_signal)
    assert not signalled(psycopg.OperationalError("server closed the connection unexpectedly"))
