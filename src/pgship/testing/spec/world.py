"""What one scenario works with: its database, its workspace, its pgship, its cleanup.

Steps reach it as ``context.world``. Facts a ``Given`` establishes for a later
``Then`` (for example the tracking rows before a deploy) go in ``facts``, named,
rather than as loose attributes on behave's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgship.testing.server import PostgresServer
from pgship.testing.spec.cleanup import CleanupRegistry
from pgship.testing.spec.commands import CommandResult, PgshipCli
from pgship.testing.spec.workspace import Workspace

TRACKING_TABLE = "schema_migrations"


@dataclass
class ScenarioWorld:
    server: PostgresServer
    database_name: str
    database_url: str
    workspace: Workspace
    cleanup: CleanupRegistry
    cli: PgshipCli
    facts: dict[str, Any] = field(default_factory=dict)
    #: the database's address without any pooler (equal to ``database_url`` unless the run is pooled)
    direct_url: str = ""
    #: the pool mode of the PgBouncer that ``database_url`` goes through, if any
    pooler_mode: str | None = None

    @property
    def last(self) -> CommandResult:
        """The most recent pgship command of this scenario."""
        if not self.cli.history:
            raise AssertionError("no pgship command has run in this scenario yet")
        return self.cli.history[-1]

    def query(
        self, statement: str, params: tuple[Any, ...] | dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Rows from the scenario's database (a short-lived connection, so none lingers)."""
        with psycopg.connect(self.database_url, autocommit=True, row_factory=dict_row) as conn:
            cursor = conn.execute(statement, params)
            return list(cursor.fetchall()) if cursor.description else []

    def table_exists(self, name: str) -> bool:
        return bool(self.query("SELECT to_regclass(%s) IS NOT NULL AS found", (name,))[0]["found"])

    def tracking_rows(self) -> list[dict[str, Any]]:
        """The tracking table's rows in the order they were applied (empty if there is no table)."""
        if not self.table_exists(TRACKING_TABLE):
            return []
        # another tool's table of that name (golang-migrate, dbmate) has no applied_at before pgship takes it
        has_dates = self.query(
            "SELECT count(*) AS n FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attname = 'applied_at'",
            (TRACKING_TABLE,),
        )[0]["n"]
        order = "applied_at, version" if has_dates else "version"
        return self.query(f"SELECT * FROM {TRACKING_TABLE} ORDER BY {order}")
