"""One fresh database per scenario, cloned from a template prepared once per run.

Cloning with ``CREATE DATABASE ... TEMPLATE`` costs milliseconds, where a new
server costs seconds: that is what lets every scenario start from an empty,
private database. All names carry a per-run prefix so that on a shared server
(the ``url`` backend) the harness only ever drops databases it created.

With ``prefetch`` on (the harness's default), one background thread keeps the
next clone ready and drops used databases after their scenario, so a scenario
normally waits for neither: on a busy 2-core machine a clone can take 100 ms,
which would otherwise be paid on every scenario's critical path.
"""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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

    :meth:`create` and :meth:`drop` work synchronously; :meth:`take` and
    :meth:`release` are what scenarios use, and go through the prefetching
    thread when ``prefetch`` is on.
    """

    server: PostgresServer
    strategy: str | None = None
    prefetch: bool = False
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    _template: str | None = field(default=None, init=False)
    _created: set[str] = field(default_factory=set, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False)
    _connections: list[psycopg.Connection] = field(default_factory=list, init=False, repr=False)
    _worker: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _spare: Future[str] | None = field(default=None, init=False, repr=False)
    _drops: list[Future[None]] = field(default_factory=list, init=False, repr=False)

    @property
    def prefix(self) -> str:
        return f"pgship_spec_{self.run_id}"

    @property
    def template(self) -> str:
        if self._template is None:
            raise RuntimeError("prepare_template() has not run")
        return self._template

    def _connection(self) -> psycopg.Connection:
        """One autocommit admin connection per thread, reused: a new one per clone would double the cost."""
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.server.admin_url, autocommit=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

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
        self._remember(name)
        # No session may be connected to a template while it is cloned; forbidding
        # connections turns a stray one into a clear error here instead of a flaky clone.
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(name)
            )
        )
        self._template = name
        if self.prefetch:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgship-spec-db")
            self._spare = self._worker.submit(self.create)
        return name

    # -- synchronous ------------------------------------------------------------------
    def create(self, label: str = "s") -> str:
        """Clone the template into a new database and return its name."""
        name = f"{self.prefix}_{label}_{secrets.token_hex(3)}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self.template)
        )
        if self.strategy:
            statement = sql.SQL("{} STRATEGY {}").format(statement, sql.SQL(self.strategy.upper()))
        self._connection().execute(statement)
        self._remember(name)
        return name

    def drop(self, name: str) -> None:
        """Drop a database this run created, terminating its connections first."""
        with self._lock:
            if name not in self._created:
                raise ValueError(f"refusing to drop {name!r}: this run did not create it")
        self._connection().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        with self._lock:
            self._created.discard(name)

    def _remember(self, name: str) -> None:
        with self._lock:
            self._created.add(name)

    # -- per scenario -----------------------------------------------------------------
    def take(self) -> str:
        """A fresh database for a scenario: the prefetched one if ready, else one made now.

        A prefetch that failed (say the server was stopped by a fault scenario at
        that moment) is retried here, in the caller's thread, so its error, if it
        persists, fails this scenario's set-up.
        """
        self._drops = [future for future in self._drops if not future.done() or future.exception()]
        if self._spare is None or self._worker is None:
            return self.create()
        spare, self._spare = self._spare, None
        try:
            name = spare.result()
        except Exception:
            name = self.create()
        self._spare = self._worker.submit(self.create)
        return name

    def release(self, name: str) -> None:
        """Drop a scenario's database: in the background with prefetch, else now.

        A background drop that fails leaves the name in the run's list, so
        :meth:`close` drops it again (and fails loudly if it still cannot).
        """
        if self._worker is None:
            self.drop(name)
            return
        self._drops.append(self._worker.submit(self.drop, name))

    def settle(self) -> None:
        """Wait until background drops and the next clone are done (tests, benchmarks)."""
        futures: list[Future[Any]] = [*self._drops, *([self._spare] if self._spare else [])]
        for future in futures:
            future.exception()
        self._raise_failed_drops()

    def _raise_failed_drops(self) -> None:
        done = [future for future in self._drops if future.done()]
        self._drops = [future for future in self._drops if not future.done()]
        for future in done:
            error = future.exception()
            if error is not None:
                raise error

    def url(self, name: str) -> str:
        return self.server.url_for(name)

    def close(self) -> None:
        """Drop every database of this run, the template last, and close the admin connections."""
        try:
            if self._worker is not None:
                self._worker.shutdown(wait=True)  # finishes queued drops and the spare clone
                self._worker = None
            for name in sorted(self._created - {self._template}):
                self.drop(name)
            if self._template in self._created:
                self._connection().execute(
                    sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(self._template))
                )
                self.drop(self._template)
        finally:
            with self._lock:
                connections, self._connections = self._connections, []
            for conn in connections:
                conn.close()
            self._local = threading.local()
