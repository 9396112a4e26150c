"""Caching and serving (layer 3 of :mod:`pgship.health`): the endpoints over a cached probe.

:class:`ObservationCache` keeps one observation for a short time (one database round
trip per cache period, however many requests arrive); :class:`HealthService` answers
the three endpoints from it; :func:`create_app` wires them into a Starlette app.
Starlette is imported only when an app is built or a request answered, so importing
this module stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pgship.health.documents import (
    DEFAULT_CACHE_TTL_S,
    DEFAULT_CHECK_TIMEOUT_S,
    MEDIA_TYPE,
    Observation,
    Release,
    database_report,
    http_status,
    liveness_report,
    readiness_report,
    timestamp,
    worst,
)
from pgship.health.probe import DatabaseProbe, Probe
from pgship.history import DEFAULT_TABLE, TrackingTable
from pgship.migrations import discover

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from pgship.schema.check import SchemaCheck

SCHEMA_TIMEOUT_S = 30.0  # ?schema=1: the first request replays the migrations (about a second)
#: Where ``?schema=1`` replays the migrations when :func:`create_app` is given no ``schema_replay_url``.
REPLAY_URL_ENV = "PGSHIP_REPLAY_URL"


def replay_url_from_environment() -> str | None:
    """``$PGSHIP_REPLAY_URL``, or None when unset or empty: the health package's one environment read."""
    return os.environ.get(REPLAY_URL_ENV) or None


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

        from pgship.schema.check import SchemaVerdict

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
        check["time"] = timestamp(datetime.now(UTC))
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
    from pgship.replay import ReplayOptions
    from pgship.schema.check import SchemaCheck

    tracking_table = TrackingTable.parse(table)
    discovery = discover(migrations_dir if migrations_dir is not None else Path(DEFAULT_MIGRATIONS_DIR))
    release = Release(discovery, str(tracking_table), release_id or None, check_timeout_s)
    if probe is None:
        probe = DatabaseProbe(database_url, tracking_table, discovery, timeout_s=check_timeout_s)
    schema_check = SchemaCheck(
        database_url,
        discovery,
        tracking_table,
        ReplayOptions(url=schema_replay_url or replay_url_from_environment()),
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
    "REPLAY_URL_ENV",
    "SCHEMA_TIMEOUT_S",
    "HealthService",
    "ObservationCache",
    "Rendered",
    "Snapshot",
    "create_app",
    "replay_url_from_environment",
]
