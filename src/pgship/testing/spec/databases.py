"""One fresh database per scenario, cloned from a template prepared once per run.

Cloning with ``CREATE DATABASE ... TEMPLATE`` costs milliseconds, where a new
server costs seconds: that is what lets every scenario start from an empty,
private database. All names carry a per-run prefix so that on a shared server
(the ``url`` backend) the harness only ever drops databases it created.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from pgship.testing.server import PostgresServer

#: ``CREATE DATABASE ... STRATEGY`` exists from PostgreSQL 15 on
_STRATEGY_MIN_VERSION = 150000
STRATEGIES = ("file_copy", "wal_log")


@dataclass
class ScenarioDatabases:
    """Creates the template once, then clones and drops one database per scenario.

    ``strategy`` is ``file_copy``, ``wal_log`` or ``None`` (the server's default).
    FILE_COPY copies the template's files after a checkpoint: cheap when fsync
    is off (the embedded server). WAL_LOG copies block by block through the WAL:
    cheaper on a durable server, where each FILE_COPY checkpoint waits for disk.
    ``bench/spec_overhead.py`` measures both.
    """

    server: PostgresServer
    strategy: str | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    _admin: psycopg.Connection | None = field(default=None, init=False, repr=False)
    _template: str | None = field(default=None, init=False)
    _created: set[str] = field(default_factory=set, init=False)

    @property
    def prefix(self) -> str:
        return f"pgship_spec_{self.run_id}"

    @property
    def template(self) -> str:
        if self._template is None:
            raise RuntimeError("prepare_template() has not run")
        return self._template

    def _connection(self) -> psycopg.Connection:
        """One autocommit admin connection, reused: a new one per clone would double the cost."""
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(self.server.admin_url, autocommit=True)
        return self._admin

    def prepare_template(self) -> str:
        """Create the run's template database (empty, UTF8) and close it to connections."""
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise ValueError(
                f"unknown clone strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}"
            )
        conn = self._connection()
        if self.strategy and (conn.info.server_version < _STRATEGY_MIN_VERSION):
            self.strategy = None  # older servers have one strategy only
        name = f"{self.prefix}_template"
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(sql.Identifier(name))
        )
        self._created.add(name)
        # No session may be connected to a template while it is cloned; forbidding
        # connections turns a stray one into a clear error here instead of a flaky clone.
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        self._template = name
        return name

    def create(self, label: str = "s") -> str:
        """Clone the template into a new database and return its name."""
        name = f"{self.prefix}_{label}_{secrets.token_hex(3)}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self.template)
        )
        if self.strategy:
            statement = sql.SQL("{} STRATEGY {}").format(statement, sql.SQL(self.strategy.upper()))
        self._connection().execute(statement)
        self._created.add(name)
        return name

    def drop(self, name: str) -> None:
        """Drop a database this run created, terminating its connections first."""
        if name not in self._created:
            raise ValueError(f"refusing to drop {name!r}: this run did not create it")
        self._connection().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        self._created.discard(name)

    def url(self, name: str) -> str:
        return self.server.url_for(name)

    def close(self) -> None:
        """Drop every database of this run, the template last, and close the admin connection."""
        try:
            for name in sorted(self._created - {self._template}):
                self.drop(name)
            if self._template in self._created:
                self._connection().execute(
                    sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(self._template))
                )
                self.drop(self._template)
        finally:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
