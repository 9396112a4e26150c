"""Helpers shared by the step modules; no step definitions here.

behave executes every file in steps/ as a step module; a step module that
another one imported would register its steps twice, so shared code lives here.
"""

from __future__ import annotations

import re
from typing import Any

_LIST_SEPARATOR = re.compile(r"\s*(?:,|\band\b)\s*")


def version_list(text: str) -> list[str]:
    """``"003, 005 and 010"`` -> ``["003", "005", "010"]``."""
    return [part for part in _LIST_SEPARATOR.split(text.strip()) if part]


def version_key(version: str) -> tuple[int, ...]:
    """Versions compare numerically part by part (``040`` equals ``40``)."""
    return tuple(int(part) for part in version.split("."))


SCHEMA_SNAPSHOT = """
SELECT c.relkind::text AS kind, c.relname AS name,
       coalesce(string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                           ORDER BY a.attnum), '') AS columns
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'i', 'S')
GROUP BY c.relkind, c.relname
ORDER BY c.relname
"""


def schema_snapshot(context: Any) -> list[dict[str, Any]]:
    """Every table, view, index and sequence with its columns: equal snapshots = unchanged schema."""
    return context.world.query(SCHEMA_SNAPSHOT)


def applied_versions(context: Any) -> list[str]:
    return [row["version"] for row in context.world.tracking_rows()]


def ensure_release_applied(context: Any, number: int) -> None:
    """Bring the scenario database to release ``number`` the way a user would: ``pgship migrate``."""
    context.world.workspace.ship_release(number)
    context.world.facts["shipped_release"] = number
    result = context.world.cli.run("migrate", json_output=True)
    assert result.exit_code == 0, f"setting up release {number} failed:\n{result.output}"
