"""Replaying every migration on an empty database: proof that the files alone rebuild the schema.

Production runs each migration once, against the schema of its day. A later
file can come to depend on something the earlier files do not produce (a column
renamed twice, a fix made by hand, an edited applied migration) and production
never notices; every new environment does. A replay applies the whole set from
nothing, with the same :class:`~pgship.runner.Runner` and rules as ``migrate``,
on a throwaway server (embedded) or a scratch database on a server given by URL,
and throws it away afterwards. Which server, and how it is opened and cleaned up, is
:mod:`pgship.replay_server`'s job.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pgship.database import connect, describe, one_row
from pgship.errors import FailureDetails, MigrationFailed
from pgship.replay_server import (
    ReplayUnavailable,
    choose_major,
    drop_roles,
    ensure_roles,
    named_roles,
    open_server,
    role_names,
    roles_the_migrations_created,
    scratch_database,
)
from pgship.runner import EventSink, Runner, RunOptions
from pgship.testing.binaries import COMMON_EXTENSIONS as _COMMON
from pgship.testing.binaries import DEBIAN_PACKAGES as _DEBIAN_PACKAGES

if TYPE_CHECKING:
    import psycopg

    from pgship.history import TrackingTable
    from pgship.migrations import Discovery, Version

_REPLAY_OPTIONS = RunOptions(lock_wait_s=5.0, lock_retries=0, retry_pause_s=0.0, applied_by="pgship replay")


class ReplayFailed(MigrationFailed):
    """A migration failed on the empty database: the set does not rebuild the schema."""

    kind = "replay_failed"

    def __init__(self, failure: MigrationFailed, result: ReplayResult) -> None:
        details = failure.details
        where = f"{details.file}:{details.line}" if details.line else details.file
        state = f" [SQLSTATE {details.sqlstate}]" if details.sqlstate else ""
        super().__init__(
            details,
            message=f"replay from an empty database failed at {where}: {details.server_message}{state}",
            hint=replay_hint(details, result),
        )
        self.result = result

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "replay": self.result.to_dict()}


def replay_hint(details: FailureDetails, result: ReplayResult) -> str:
    """What to do about a replay failure, fitted to its cause.

    The replay server (not the migration) is to blame when it lacks an extension, a library or a
    role, or when a shared server already has a role the migrations create; otherwise the file does
    not work on what the earlier files build.
    """
    earlier = result.applied
    replayed = f"{earlier} earlier migration{'s' if earlier != 1 else ''} replayed cleanly"
    message = details.server_message
    extension = missing_extension(details.sqlstate, message, details.detail)
    if extension is not None:
        return (
            f"{replayed}; this one needs the extension {extension!r}, which the replay server "
            f"({result.location or result.server}) does not have. "
            + (
                f"The embedded server has PostgreSQL's contrib extensions ({', '.join(_COMMON)}, ...), "
                f"not {extension!r}: replay on a server that has it (a scratch database on a server of "
                "the production image): --replay-url URL or PGSHIP_REPLAY_URL."
                if result.server == "embedded"
                else f"Replay on a server that has {extension!r} installed (the production image): "
                "--replay-url URL or PGSHIP_REPLAY_URL."
            )
        )
    library = missing_library(message)
    if library is not None:
        package = _DEBIAN_PACKAGES.get(library)
        install = f" (Debian/Ubuntu: apt-get install {package})" if package else ""
        return (
            f"{replayed}; this one loads a library the replay server's machine lacks: {library}. "
            f"Install it on this machine{install} and replay again, or replay on a server that has it: "
            "--replay-url URL."
        )
    if details.sqlstate == "42704" and "role" in message.lower():
        return (
            f"{replayed}; this one names a role the replay server does not have. Roles belong to the "
            "server, not to the migrations: name them with --replay-role NAME so the replay creates "
            "them first (and drops them afterwards)."
        )
    if details.sqlstate == "42710" and message.lower().startswith("role ") and result.server == "url":
        return (
            f"{replayed}; this one creates a role that already exists on the replay server. Roles belong "
            "to the whole server, not to the scratch database: this replay needs an isolated server. "
            "Replay on the embedded server (drop --replay-url and PGSHIP_REPLAY_URL) or on a server of "
            "its own; pgship drops the roles a replay created, never ones that were there before."
        )
    if details.sqlstate == "42501":
        return (
            f"{replayed}; the replay's user lacks a privilege this file needs ({message}). Replay as a "
            "user with the privileges production's migration user has (a superuser for most "
            "extensions): --replay-url URL."
        )
    if details.sqlstate == "42601":
        return (
            f"{replayed}; this file does not parse on PostgreSQL {result.server_version or '?'}, whatever "
            "the earlier files built. If production runs another major version, replay on that one "
            "(--pg-version N, or a --replay-url server of the production image); otherwise fix the "
            "file (if it was edited after it ran, record the edit with `pgship repair`)."
        )
    return (
        f"{replayed}; this one fails on a database built from them alone, so every new environment (CI, "
        "a developer's machine, a rebuild after a disaster) stops here even if production is fine. "
        "Production got past it in another state (a change made by hand, or an earlier file edited "
        "after it ran). Make this file work on what the earlier files build (for example with IF EXISTS "
        "guards), then record the edit where it is already applied with `pgship repair`."
    )


_EXTENSION_PATTERNS = (
    re.compile(r'extension "([^"]+)" is not available'),  # PostgreSQL 15+
    re.compile(r'could not open extension control file "[^"]*/([^"/]+)\.control"'),  # 14 and the DETAIL
)
_LIBRARY_PATTERN = re.compile(
    r'could not load library "[^"]*": ([^:]+\.so[.0-9]*): cannot open shared object'
)


def missing_extension(sqlstate: str | None, message: str, detail: str | None = None) -> str | None:
    """The extension a ``CREATE EXTENSION`` failed for because the server lacks it, else ``None``."""
    if sqlstate not in ("0A000", "58P01"):
        return None
    for text in (message, detail or ""):
        for pattern in _EXTENSION_PATTERNS:
            found = pattern.search(text)
            if found:
                return found.group(1)
    return None


def missing_library(message: str) -> str | None:
    """The shared library an extension could not load (``libossp-uuid.so.16``), else ``None``."""
    found = _LIBRARY_PATTERN.search(message)
    return found.group(1).strip() if found else None


@dataclass
class ReplayResult:
    """What a replay did and what it cost."""

    server: str  # "embedded" or "url"
    server_version: str = ""
    location: str = ""  # where it ran, never with a password
    pg_version_source: str = ""  # why this major: "--pg-version", "default", "the live database's major"
    dropped_roles: list[str] = field(default_factory=list)  # roles the replay created on a shared server
    warnings: list[str] = field(default_factory=list)
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
        ) + "".join(f"\nwarning: {warning}" for warning in self.warnings)


@dataclass
class Replay:
    """A replayed database that still exists (inside :func:`replayed`)."""

    url: str
    result: ReplayResult
    table: TrackingTable  # where the replay put the tracking table (see :func:`replay_table`)


@dataclass(frozen=True)
class ReplayOptions:
    """Where and how far to replay. The default: every migration, on an embedded PostgreSQL."""

    url: str | None = None  # a server to create (and drop) a scratch database on, instead of embedded
    pg_version: int | None = None  # the embedded server's major version
    match_url: str | None = None  # without pg_version: replay on this (production) server's major
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
    :class:`ReplayUnavailable` (exit 2) when there is nothing to replay on. On a shared server
    (``options.url``) the roles the replay created are dropped afterwards, and only those.
    """
    options = options or ReplayOptions()
    started = time.perf_counter()
    result = ReplayResult(server="url" if options.url else "embedded")
    major, result.pg_version_source = choose_major(options.pg_version, options.url, options.match_url)
    server = open_server(options.url, major)
    roles_before: set[str] | None = None
    created_roles: list[str] = []
    try:
        if options.url is not None:
            roles_before = role_names(server)
            there = sorted(named_roles(discovery) & roles_before)
            if there:
                result.warnings.append(
                    f"the migrations create role(s) that already exist on the replay server "
                    f"({', '.join(there)}): roles belong to the whole server, so this replay did not "
                    "create them and cannot prove the migrations do. This replay needs an isolated "
                    "server: the embedded one (no --replay-url), or a server of its own."
                )
        database = scratch_database(server)
        try:
            url = server.url_for(database)
            result.start_ms = _ms_since(started)
            created_roles = ensure_roles(server, options.roles)
            used = _apply_all(url, discovery, table, options, result, on_event)
            result.total_ms = _ms_since(started)
            yield Replay(url, result, used)
        finally:
            if options.url is not None:  # an embedded server goes away whole; dropping first is wasted time
                server.drop_database(database)
    finally:
        if roles_before is not None:
            created_roles += roles_the_migrations_created(server, roles_before, discovery)
            result.dropped_roles = drop_roles(server, created_roles)
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
) -> TrackingTable:
    """``migrate`` on the empty database, with the production runner; fills in ``result``."""
    with connect(url) as conn:
        result.server_version = str(one_row(conn.execute("SHOW server_version"))[0])
        why = f", {result.pg_version_source}" if result.pg_version_source else ""
        result.location = (
            f"embedded PostgreSQL {result.server_version}{why}"
            if options.url is None
            else f"scratch database on {describe(options.url).rsplit('/', 1)[0]}, "
            f"PostgreSQL {result.server_version}"
        )
        used = replay_table(conn, table)
        started = time.perf_counter()
        runner = Runner(conn, used, options=_REPLAY_OPTIONS, on_event=on_event)
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
    return used


def replay_table(conn: psycopg.Connection, table: TrackingTable) -> TrackingTable:
    """The tracking table for a replay: as configured, or in ``public`` when nothing could be created.

    A session whose search_path names a schema that does not exist yet (a migration role with
    ``search_path = app`` whose first migration creates ``app``) has no schema to create an
    unqualified table in. The migrations still run with that search_path, so their objects land
    where production puts them; only pgship's bookkeeping table goes to ``public``.
    """
    if table.schema is not None:
        return table
    row = conn.execute("SELECT current_schema() IS NULL").fetchone()
    if row and row[0]:
        return replace(table, schema="public")
    return table


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


__all__ = [
    "Replay",
    "ReplayFailed",
    "ReplayOptions",
    "ReplayResult",
    "ReplayUnavailable",
    "missing_extension",
    "missing_library",
    "replay",
    "replay_hint",
    "replay_table",
    "replayed",
]
