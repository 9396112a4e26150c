"""The benchmark's side of the server: fresh databases, a clean checkpoint, proof that a tool applied all."""

from __future__ import annotations

import psycopg

from peerbench.workload import SCHEMA_QUERY, TABLES_QUERY, ExpectedSchema, row_count_query


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def prepare_database(admin_url: str, name: str) -> None:
    """Create an empty database, then checkpoint so no run pays for the previous run's dirty pages."""
    with admin(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute("CHECKPOINT")


def drop_database(admin_url: str, name: str) -> None:
    with admin(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_applied(url: str, applied_query: str, count: int) -> str:
    """Return "" when the database holds all ``count`` migrations, else what is missing."""
    expected = ExpectedSchema.after(count)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            tables, columns, indexes, views = conn.execute(SCHEMA_QUERY).fetchone() or (0, 0, 0, 0)
            names = [name for (name,) in conn.execute(TABLES_QUERY)]
            rows = conn.execute(row_count_query(names)).fetchone()
            recorded = conn.execute(applied_query).fetchone()
    except psycopg.Error as exc:
        return f"checking the result failed: {exc}".strip()
    found = ExpectedSchema(
        int(tables), int(columns), int(indexes), int(rows[0] or 0) if rows else 0, int(views)
    )
    recorded = recorded or (0,)
    problems = []
    if found != expected:
        problems.append(f"schema has {found}, expected {expected}")
    if int(recorded[0]) != count:
        problems.append(f"{recorded[0]} migrations recorded, expected {count}")
    return "; ".join(problems)
