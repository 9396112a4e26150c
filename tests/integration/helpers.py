"""Small helpers for integration tests that look inside the database."""

from __future__ import annotations

from typing import Any

import psycopg


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def scalar(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    rows = query(url, sql, params)
    return rows[0][0] if rows else None


def table_exists(url: str, name: str) -> bool:
    return bool(scalar(url, "SELECT to_regclass(%s) IS NOT NULL", (name,)))


def tracking_rows(url: str, table: str = "schema_migrations") -> list[tuple[Any, ...]]:
    return query(
        url, f"SELECT version, name, checksum, execution_ms, applied_by FROM {table} ORDER BY version"
    )


def applied_versions(url: str, table: str = "schema_migrations") -> list[str]:
    if not table_exists(url, table):
        return []
    return [row[0] for row in query(url, f"SELECT version::text FROM {table} ORDER BY version")]
