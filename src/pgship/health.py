"""Health of a release: is the database reachable, and does its schema match the migrations shipped?

Three endpoints (docs/ARCHITECTURE.md, "Health"), answering ``application/health+json`` in
the shape of the IETF health-check draft (``status`` pass | warn | fail,
``releaseId``, ``checks``):

* ``GET /health/live``     the process serves; never touches the database;
* ``GET /health``          readiness: database reachable and nothing pending; statuses only;
* ``GET /health/database`` the details, optionally behind a bearer token.

Three layers, each testable on its own:

1. pure functions turning an :class:`Observation` (what one check saw) into documents;
2. :class:`DatabaseProbe`, the only code that talks to PostgreSQL: one round trip per
   check, in a read-only transaction, bounded in time even when the server hangs;
3. :func:`create_app`, which caches observations for a short time (one database round
   trip per cache period, however many requests arrive) and serves them.

Responses never carry a DSN, host, user, password, SQL text or stack trace: a failed
check is described generically, with the SQLSTATE class at most. The details go to
the server's log, scrubbed of passwords.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pgship import history as tracking
from pgship.database import passwords_in, scrub
from pgship.history import DEFAULT_TABLE, History, TrackingTable
from pgship.migrations import Discovery, discover
from pgship.planner import Plan, State, make_plan
from pgship.schema.check import SchemaCheck, SchemaVerdict

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import AsyncConnectionPool
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

MEDIA_TYPE = "application/health+json"
from pgship.config import HEALTH_CACHE_TTL_S as DEFAULT_CACHE_TTL_S  # noqa: E402 - re-exported
from pgship.config import HEALTH_CHECK_TIMEOUT_S as DEFAULT_CHECK_TIMEOUT_S  # noqa: E402

SCHEMA_TIMEOUT_S = 30.0  # ?schema=1: the first request replays the migrations (about a second)
APPLICATION_NAME = "pgship-health"
PASS, WARN, FAIL = "pass", "warn", "fail"
_SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}

#: Names of the SQLSTATE classes a health check can meet (PostgreSQL docs, appendix A).
SQLSTATE_CLASSES = {
    "08": "connection exception",
    "0A": "feature not supported",
    "22": "data exception",
    "25": "invalid transaction state",
    "28": "invalid authorization specification",
    "3D": "invalid catalog name",
    "3F": "invalid schema name",
    "40": "transaction rollback",
    "42": "syntax error or access rule violation",
    "53": "insufficient resources",
    "54": "program limit exceeded",
    "55": "object not in prerequisite state",
    "57": "operator intervention",
    "58": "system error",
    "XX": "internal error",
}

log = logging.getLogger("pgship.health")


# -- 1. pure: observations -> documents --------------------------------------------
@dataclass(frozen=True)
class CheckFailure:
    """Why a database check failed, in terms safe to show anyone."""

    kind: str  # timeout | unreachable | query | not_a_tracking_table
    sqlstate: str | None = None

    @property
    def sqlstate_class(self) -> str | None:
        return self.sqlstate[:2] if self.sqlstate else None

    def describe(self, timeout_s: float) -> str:
        """A generic sentence: what failed, never where or as whom."""
        code = self.sqlstate_class
        suffix = f" (SQLSTATE class {code}: {SQLSTATE_CLASSES.get(code, 'other')})" if code else ""
        if self.kind == "timeout":
            return f"the database did not answer within {timeout_s:g} s{suffix}"
        if self.kind == "unreachable":
            return f"cannot connect to the database{suffix}"
        if self.kind == "not_a_tracking_table":
            return "the configured tracking table has no version column"
        return f"the health query failed{suffix}"


@dataclass(frozen=True)
class Observation:
    """What one database check saw: a plan (files x tracking table), or why there is none."""

    checked_at: datetime
    duration_ms: float
    server_version: str | None = None
    plan: Plan | None = None
    failure: CheckFailure | None = None


@dataclass(frozen=True)
class Release:
    """What this server ships, fixed when it starts: the release id and the migration files."""

    discovery: Discovery
    table: str = DEFAULT_TABLE
    release_id: str | None = None
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S

    @property
    def shipped_count(self) -> int:
        return len(self.discovery.migrations)

    @property
    def latest_shipped(self) -> str | None:
        latest = self.discovery.latest
        return str(latest.version) if latest else None


def worst(*statuses: str) -> str:
    """The overall status: fail beats warn beats pass."""
    return max(statuses, key=_SEVERITY.__getitem__, default=PASS)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header(status: str, release: Release) -> dict[str, Any]:
    document: dict[str, Any] = {"status": status}
    if release.release_id:
        document["releaseId"] = release.release_id
    return document


def _versions(plan: Plan, *states: State) -> list[str]:
    return [str(entry.version) for entry in plan.with_state(*states)]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def database_report(observation: Observation, release: Release) -> dict[str, Any]:
    """The detailed document of ``/health/database``."""
    when = _timestamp(observation.checked_at)
    connection: dict[str, Any] = {"componentType": "datastore"}
    migrations: dict[str, Any] = {"componentType": "datastore"}
    outputs: list[str] = []
    if observation.failure is not None or observation.plan is None:
        failure = observation.failure or CheckFailure("query")
        reason = failure.describe(release.check_timeout_s)
        connection.update(status=FAIL, output=reason)
        migrations.update(status=FAIL, output="not checked: the database did not answer")
        outputs.append(reason)
        applied: dict[str, Any] = {}
    else:
        plan = observation.plan
        pending = _versions(plan, State.PENDING, State.OUT_OF_ORDER)
        without_file = _versions(plan, State.MISSING, State.AHEAD)
        edited = _versions(plan, State.DRIFTED)
        if pending:
            outputs.append(f"{_plural(len(pending), 'pending migration')}: {', '.join(pending)}")
        if without_file:
            outputs.append(
                f"{_plural(len(without_file), 'applied migration')} with no file in this release: "
                + ", ".join(without_file)
            )
        if edited:
            outputs.append(f"checksum mismatch (edited after it was applied): {', '.join(edited)}")
        status = FAIL if pending else WARN if without_file or edited else PASS
        connection.update(status=PASS, serverVersion=observation.server_version)
        migrations.update(status=status)
        if outputs:
            migrations["output"] = "; ".join(outputs)
        applied = {
            "appliedCount": plan.applied_count,
            "latestApplied": str(plan.latest_applied) if plan.latest_applied else None,
            "pending": pending,
            "appliedWithoutFile": without_file,
            "checksumMismatches": edited,
        }
    connection.update(observedValue=round(observation.duration_ms, 1), observedUnit="ms", time=when)
    migrations.update(
        observedValue=len(applied["pending"]) if applied else None,
        observedUnit="pending migrations",
        time=when,
        table=release.table,
        shippedCount=release.shipped_count,
        latestShipped=release.latest_shipped,
        **applied,
    )
    document = _header(worst(connection["status"], migrations["status"]), release)
    if outputs:
        document["output"] = "; ".join(outputs)
    document["checks"] = {"database:connection": [connection], "database:migrations": [migrations]}
    return document


def readiness_report(detailed: dict[str, Any]) -> dict[str, Any]:
    """``/health``: the same verdict as the detailed document, with statuses only."""
    document: dict[str, Any] = {key: detailed[key] for key in ("status", "releaseId") if key in detailed}
    document["checks"] = {
        name: [{key: entry[key] for key in ("componentType", "status", "time")} for entry in entries]
        for name, entries in detailed["checks"].items()
    }
    return document


def liveness_report(release: Release) -> dict[str, Any]:
    """``/health/live``: answering at all is the whole check."""
    return _header(PASS, release)


def http_status(document: dict[str, Any]) -> int:
    """200 for pass and warn, 503 for fail (what load balancers and orchestrators expect)."""
    return 503 if document["status"] == FAIL else 200


# -- 2. I/O: the database probe ----------------------------------------------------
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


# -- 3. caching and serving ----------------------------------------------------------
T = TypeVar("T")


class ObservationCache(Generic[T]):
    """Keeps the latest result for ``ttl_s`` and shares one refresh among concurrent callers.

    However many requests arrive, the database sees at most one check per period;
    with ``ttl_s = 0`` requests that arrive while a check runs still share it.
    """

    def __init__(
        self, refresh: Callable[[], Awaitable[T]], ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh = refresh
        self.ttl_s = ttl_s
        self.clock = clock
        self._value: T | None = None
        self._expires = -math.inf
        self._inflight: asyncio.Future[T] | None = None

    async def get(self) -> tuple[T, float]:
        """The current value and how many seconds it stays fresh."""
        now = self.clock()
        if self._value is not None and now < self._expires:
            return self._value, self._expires - now
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        value = await asyncio.shield(self._inflight)
        return value, max(0.0, self._expires - self.clock())

    async def _refresh(self) -> T:
        try:
            value = await self.refresh()
            self._value, self._expires = value, self.clock() + self.ttl_s
            return value
        finally:
            self._inflight = None


@dataclass(frozen=True)
class Rendered:
    """A document serialised once per check, then served as-is to every request."""

    body: bytes
    status_code: int

    @classmethod
    def of(cls, document: dict[str, Any]) -> Rendered:
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(body, http_status(document))


@dataclass(frozen=True)
class Snapshot:
    """One observation with its two documents rendered."""

    observation: Observation
    database: Rendered
    readiness: Rendered


class HealthService:
    """The endpoints, over a cached probe."""

    def __init__(
        self,
        release: Release,
        probe: Probe,
        *,
        token: str | None,
        cache_ttl_s: float,
        schema_check: SchemaCheck | None = None,
    ) -> None:
        self.release = release
        self.probe = probe
        self.schema_check = schema_check
        self._schema_lock = asyncio.Lock()
        self.token = token or None
        self.cache_ttl_s = cache_ttl_s
        self.cache: ObservationCache[Snapshot] = ObservationCache(self._snapshot, cache_ttl_s)
        self._live = Rendered.of(liveness_report(release))

    async def _snapshot(self) -> Snapshot:
        observation = await self.probe.observe()
        detailed = database_report(observation, self.release)
        return Snapshot(observation, Rendered.of(detailed), Rendered.of(readiness_report(detailed)))

    def _response(self, rendered: Rendered, cache_control: str) -> Response:
        from starlette.responses import Response

        return Response(
            rendered.body,
            status_code=rendered.status_code,
            media_type=MEDIA_TYPE,
            headers={"Cache-Control": cache_control},
        )

    def _cache_control(self, fresh_for_s: float, *, private: bool = False) -> str:
        if self.cache_ttl_s <= 0:
            return "no-store"
        return f"{'private, ' if private else ''}max-age={int(fresh_for_s)}"

    # -- endpoints -------------------------------------------------------------
    async def live(self, request: Request) -> Response:
        return self._response(self._live, "no-store")

    async def ready(self, request: Request) -> Response:
        snapshot, fresh_for = await self.cache.get()
        return self._response(snapshot.readiness, self._cache_control(fresh_for))

    async def database(self, request: Request) -> Response:
        if self.token is not None:
            denied = self._deny(request.headers.get("authorization"))
            if denied is not None:
                return denied
        if request.query_params.get("schema", "").lower() in ("1", "true", "yes"):
            return await self._database_with_schema()
        snapshot, fresh_for = await self.cache.get()
        return self._response(snapshot.database, self._cache_control(fresh_for, private=bool(self.token)))

    async def _database_with_schema(self) -> Response:
        """The detailed document plus a live-vs-migrations schema comparison (opt-in, token only).

        Comparing costs a replay once and a catalog read each time, so it is never done by
        default, only behind the token, and one request at a time.
        """
        from starlette.responses import JSONResponse

        if self.token is None or self.schema_check is None:
            return JSONResponse(
                {"error": "forbidden", "message": "?schema=1 needs the server started with a health token "
                 "(PGSHIP_HEALTH_TOKEN)"},
                status_code=403,
                headers={"Cache-Control": "no-store"},
            )  # fmt: skip
        snapshot, _ = await self.cache.get()
        document = json.loads(snapshot.database.body)
        async with self._schema_lock:
            try:
                verdict = await asyncio.wait_for(asyncio.to_thread(self.schema_check.run), SCHEMA_TIMEOUT_S)
            except TimeoutError:
                verdict = SchemaVerdict(
                    "warn", [], 0, f"schema comparison took longer than {SCHEMA_TIMEOUT_S:g} s"
                )
        check = verdict.to_check()
        check["time"] = _timestamp(datetime.now(UTC))
        document.setdefault("checks", {})["database:schema"] = [check]
        document["status"] = worst(document["status"], verdict.status)
        return self._response(Rendered.of(document), "no-store")

    def _deny(self, authorization: str | None) -> Response | None:
        """None when the bearer token matches; otherwise the 401 to send (RFC 6750)."""
        from starlette.responses import JSONResponse

        assert self.token is not None
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), self.token.encode()
        ):
            return None
        challenge = 'Bearer realm="pgship-health"'
        if authorization:
            challenge += ', error="invalid_token"'
        return JSONResponse(
            {"error": "unauthorized", "message": "/health/database needs a valid bearer token"},
            status_code=401,
            headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Warm up (first check) when served on its own; close the pool on shutdown.

        When the app is mounted inside another Starlette app this does not run: the
        probe then connects on the first request, and the process exit closes it.
        """
        warm_up = asyncio.ensure_future(self.cache.get())
        try:
            yield
        finally:
            if not warm_up.done():
                warm_up.cancel()
            with contextlib.suppress(BaseException):
                await warm_up
            await self.probe.close()


def create_app(
    *,
    database_url: str | None = None,
    migrations_dir: str | Path | None = None,
    table: str = DEFAULT_TABLE,
    release_id: str | None = None,
    token: str | None = None,
    cache_ttl_s: float = DEFAULT_CACHE_TTL_S,
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    probe: Probe | None = None,
    schema_replay_url: str | None = None,
) -> Starlette:
    """The health endpoints as a Starlette app, to serve (``pgship serve``) or mount.

    ``database_url`` None means libpq's ``PG*`` variables. The migration files are read
    now, once: they are what this release ships (raises ``InvalidMigrations`` if they
    cannot be). ``token`` protects ``/health/database``; ``/health/live`` and ``/health``
    stay open. ``probe`` replaces the database probe (to share a pool, or to compare
    implementations in benchmarks).
    """
    from starlette.applications import Starlette
    from starlette.routing import Route

    from pgship.config import DEFAULT_MIGRATIONS_DIR

    tracking_table = TrackingTable.parse(table)
    discovery = discover(migrations_dir if migrations_dir is not None else Path(DEFAULT_MIGRATIONS_DIR))
    release = Release(discovery, str(tracking_table), release_id or None, check_timeout_s)
    if probe is None:
        probe = DatabaseProbe(database_url, tracking_table, discovery, timeout_s=check_timeout_s)
    from pgship.replay import ReplayOptions

    schema_check = SchemaCheck(
        database_url,
        discovery,
        tracking_table,
        ReplayOptions(url=schema_replay_url or os.environ.get("PGSHIP_REPLAY_URL") or None),
    )
    service = HealthService(release, probe, token=token, cache_ttl_s=cache_ttl_s, schema_check=schema_check)
    app = Starlette(
        routes=[
            Route("/health/live", service.live, methods=["GET"]),
            Route("/health", service.ready, methods=["GET"]),
            Route("/health/database", service.database, methods=["GET"]),
        ],
        lifespan=service.lifespan,
    )
    app.state.health = service
    return app


__all__ = [
    "MEDIA_TYPE",
    "CheckFailure",
    "DatabaseProbe",
    "HealthService",
    "Observation",
    "ObservationCache",
    "Release",
    "create_app",
    "database_report",
    "http_status",
    "liveness_report",
    "readiness_report",
]
