"""The database probe (layer 2 of :mod:`pgship.health`): the only health code that talks to PostgreSQL.

One round trip per check, in a read-only transaction, bounded in time even when the
server hangs. A failure is reduced to a :class:`~pgship.health.documents.CheckFailure`
(a kind and a SQLSTATE, never the message); the message goes to the log, scrubbed of
passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pgship import history as tracking
from pgship.database import passwords_in, scrub
from pgship.health.documents import CheckFailure, Observation
from pgship.history import History, TrackingTable
from pgship.migrations import Discovery
from pgship.planner import make_plan

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

APPLICATION_NAME = "pgship-health"

log = logging.getLogger("pgship.health")


class Probe(Protocol):
    """Anything that can observe the database; :class:`DatabaseProbe` is the real one."""

    async def observe(self) -> Observation: ...

    async def close(self) -> None: ...


_Result = tuple[str | None, list[Any] | None]  # server_version, tracking rows (None: no table)


class _CheckFailed(Exception):
    def __init__(self, failure: CheckFailure, cause: BaseException) -> None:
        super().__init__(failure.kind)
        self.failure = failure
        self.cause = cause


def classify(exc: BaseException) -> CheckFailure:
    """Map a psycopg error to a failure kind and its SQLSTATE, dropping the message."""
    import psycopg
    from psycopg import errors as pgerrors
    from psycopg_pool import PoolTimeout

    sqlstate = getattr(exc, "sqlstate", None) or _connect_sqlstate(str(exc))
    if isinstance(exc, pgerrors.QueryCanceled | pgerrors.LockNotAvailable):
        return CheckFailure("timeout", sqlstate)
    if isinstance(exc, PoolTimeout):
        return CheckFailure("unreachable")
    if isinstance(exc, psycopg.OperationalError):
        return CheckFailure("unreachable", sqlstate)
    return CheckFailure("query", sqlstate)


#: libpq reports a refused connection without its SQLSTATE: recognise the server's (English) message.
_CONNECT_FAILURES = (
    ("password authentication failed", "28P01"),
    ("no password supplied", "28P01"),
    ("no pg_hba.conf entry", "28000"),
    ("permission denied for database", "42501"),
    ("too many clients", "53300"),
    ("remaining connection slots", "53300"),
    ("the database system is", "57P03"),  # starting up, shutting down, in recovery mode
)


def _connect_sqlstate(message: str) -> str | None:
    if "FATAL:" not in message:
        return None
    fatal = message.split("FATAL:", 1)[1].strip().lower()
    if "does not exist" in fatal and fatal.startswith(("role ", "database ")):
        return "28000" if fatal.startswith("role ") else "3D000"
    return next((sqlstate for marker, sqlstate in _CONNECT_FAILURES if marker in fatal), None)


def check_statement(table: TrackingTable, timeout_s: float) -> str:
    """The whole check as one simple-protocol string: one network round trip.

    A READ ONLY transaction whose local timeouts end it on the server shortly
    before the client gives up, so a slow check does not linger as a backend.
    Everything it sets is local to it, and ``search_path`` goes back to its default
    for it: through a transaction pooler the backend is shared, and another client's
    session-level ``SET search_path`` may still be on it.
    """
    statement_ms = max(100, int(timeout_s * 1000 * 0.8))
    lock_ms = max(50, statement_ms // 2)
    query = tracking.rows_as_json_query(table).as_string(None)
    return (
        f"BEGIN READ ONLY; SET LOCAL search_path TO DEFAULT; SET LOCAL statement_timeout = {statement_ms}; "
        f"SET LOCAL lock_timeout = {lock_ms}; {query}; COMMIT"
    )


class DatabaseProbe:
    """Checks the database through a small async pool, bounded in time.

    While the database is healthy, checks borrow the pool's connection. After a
    connection is lost or a check times out, the pool is dropped and the next
    check connects directly: that reports *why* it cannot connect (SQLSTATE
    class), and retries at once instead of after the pool's growing backoff.
    """

    pool_size = 2

    def __init__(
        self, url: str | None, table: TrackingTable, discovery: Discovery, *, timeout_s: float
    ) -> None:
        self.url = url or ""
        self.table = table
        self.discovery = discovery
        self.timeout_s = timeout_s
        self.connect_timeout_s = max(2, math.ceil(timeout_s))  # libpq's minimum is 2 s
        self.statement = check_statement(table, timeout_s)
        self._secrets = passwords_in(url)
        self._pool: AsyncConnectionPool | None = None
        self._background: set[asyncio.Future[Any]] = set()

    # -- the check -------------------------------------------------------------
    async def observe(self) -> Observation:
        """Run one check; never raises and never takes (much) longer than ``timeout_s``."""
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        task = asyncio.ensure_future(self._fetch())
        done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not done:
            # psycopg cancels a query by asking the server, which may itself hang: let the
            # task finish in the background instead of waiting for it here.
            task.cancel()
            self._keep(task)
            self._drop_pool()
            log.warning("database check: no answer within %g s", self.timeout_s)
            return Observation(checked_at, elapsed_ms, failure=CheckFailure("timeout"))
        try:
            server_version, rows = task.result()
        except _CheckFailed as failed:
            log.warning("database check failed: %s", scrub(str(failed.cause).strip(), self._secrets))
            return Observation(checked_at, elapsed_ms, failure=failed.failure)
        try:
            history = History() if rows is None else tracking.from_json_rows(rows)
        except ValueError:
            return Observation(checked_at, elapsed_ms, failure=CheckFailure("not_a_tracking_table"))
        plan = make_plan(self.discovery, history)
        return Observation(checked_at, elapsed_ms, server_version, plan)

    async def _fetch(self) -> _Result:
        import psycopg

        try:
            pool = self._pool
            if pool is not None and pool.get_stats().get("pool_available", 0) > 0:
                result = await self._fetch_pooled(pool)
                if result is not None:
                    return result
            # No idle connection (still connecting, failing, or held by a hung check) or it died
            # (server restarted): connect directly, so the failure is reported at once and why.
            self._drop_pool()
            return await self._fetch_direct()
        except psycopg.Error as exc:
            raise _CheckFailed(classify(exc), exc) from None

    async def _fetch_pooled(self, pool: AsyncConnectionPool) -> _Result | None:
        """The result, or None when the pool has no live connection to offer."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            async with pool.connection(timeout=self.timeout_s) as conn:
                try:
                    return await self._run(conn)
                except psycopg.OperationalError:
                    if conn.broken:
                        return None
                    raise
        except PoolTimeout:
            return None

    async def _fetch_direct(self) -> _Result:
        """Connect without the pool (the error says why not), then start the pool for next time."""
        import psycopg

        conn = await psycopg.AsyncConnection.connect(self.url, **self._connect_kwargs())
        try:
            result = await self._run(conn)
        finally:
            await conn.close()
        await self._start_pool()
        return result

    async def _run(self, conn: psycopg.AsyncConnection[Any]) -> _Result:
        """``(server_version, rows)``; rows is None when the tracking table does not exist."""
        from psycopg import errors as pgerrors

        server_version = conn.info.parameter_status("server_version")
        cursor = conn.cursor()
        try:
            await cursor.execute(self.statement)
        except (pgerrors.UndefinedTable, pgerrors.InvalidSchemaName):
            await conn.execute("ROLLBACK")
            return server_version, None
        except Exception:
            if not conn.broken:
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
            raise
        while cursor.description is None or cursor.description[0].name != "to_jsonb":
            if not cursor.nextset():
                raise RuntimeError("the health query returned no rows result")  # pragma: no cover
        return server_version, [row[0] for row in await cursor.fetchall()]

    # -- the pool --------------------------------------------------------------
    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": self.connect_timeout_s,
            "application_name": APPLICATION_NAME,
        }

    async def _start_pool(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        if self._pool is not None:
            return
        pool = AsyncConnectionPool(
            self.url,
            kwargs=self._connect_kwargs(),
            min_size=1,
            max_size=self.pool_size,
            open=False,
            name=APPLICATION_NAME,
            timeout=self.timeout_s,
        )
        await pool.open(wait=False)
        self._pool = pool

    def _drop_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            self._keep(asyncio.ensure_future(pool.close(timeout=1.0)))

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._background.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log "exception never retrieved"

    async def close(self) -> None:
        self._drop_pool()
        if self._background:
            await asyncio.wait(set(self._background), timeout=2.0)


__all__ = ["APPLICATION_NAME", "DatabaseProbe", "Probe", "check_statement", "classify"]
