"""Steps about the scenario's database: its state before and after pgship acts on it."""

from __future__ import annotations

from typing import Any

from behave import given, then

from pgship.testing.spec.world import TRACKING_TABLE


def user_tables(context: Any) -> list[str]:
    rows = context.world.query(
        "SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%' "
        "AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1"
    )
    return [row["relname"] for row in rows]


@given("a fresh database")
def fresh_database(context: Any) -> None:
    assert user_tables(context) == [], f"a fresh database should be empty, found {user_tables(context)}"


@then("the database has no tables")
def no_tables(context: Any) -> None:
    tables = user_tables(context)
    assert tables == [], f"expected no tables, found {tables}"


@then('the database has the table "{name}"')
def has_table(context: Any, name: str) -> None:
    assert name in user_tables(context), f"no table {name!r} in {user_tables(context)}"


@then("the database has no tracking table")
def no_tracking_table(context: Any) -> None:
    assert not context.world.table_exists(TRACKING_TABLE)
