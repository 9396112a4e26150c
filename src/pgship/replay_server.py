"""The server a replay runs on: which major, embedded or given by URL, its scratch database, its roles.

On the embedded server everything goes away with it. On a shared server (``--replay-url``)
the replay creates a scratch database and drops it afterwards, and drops the roles it
created, only those: roles belong to the whole server. :mod:`pgship.replay` runs the
migrations on what this module opens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

from pgship.database import connect, describe
from pgship.errors import ExitCode, PgshipError

if TYPE_CHECKING:
    from pgship.migrations import Discovery
    from pgship.testing.server import PostgresServer

SCRATCH_PREFIX = "pgship_replay"
# A replay is one session for a second or two: no room for 200 clients, nothing for autovacuum to do.
EMBEDDED_SETTINGS = {"max_connections": "20", "autovacuum": "off"}


class ReplayUnavailable(PgshipError):
    """No server to replay on: the embedded package is missing, or the version/URL cannot be used."""

    exit_code = ExitCode.INVALID
    kind = "replay_unavailable"


def choose_major(pg_version: int | None, url: str | None, match_url: str | None) -> tuple[int | None, str]:
    """The embedded server's major and why: asked for, the production server's own, or the default.

    ``pg_version`` is ``--pg-version``; with ``url`` (``--replay-url``) the server's own major is
    used and none is chosen; ``match_url`` is the production server whose major to copy.
    """
    from pgship.testing.binaries import RELEASES, default_major

    if pg_version is not None or url is not None:
        return pg_version, "as --pg-version asked" if pg_version is not None else ""
    if match_url:
        live = describe(match_url)
        major = server_major(match_url)
        if major in RELEASES:
            return major, f"the major of {live}"
        if major is not None:
            return default_major(), (
                f"{live} runs PostgreSQL {major}, which the embedded server does not have; "
                f"default {default_major()}"
            )
    return default_major(), ""


def server_major(url: str) -> int | None:
    """The major version of the server at ``url``, or ``None`` when it cannot be asked (quickly)."""
    import psycopg

    try:
        with connect(url, wait_s=0.0) as conn:
            row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    except (psycopg.Error, PgshipError):
        return None
    return int(row[0]) if row else None


def open_server(replay_url: str | None, pg_version: int | None) -> PostgresServer:
    if replay_url is not None:
        from pgship.testing.external import ExternalPostgres, ExternalServerError

        if pg_version is not None:
            raise ReplayUnavailable(
                "--pg-version chooses the embedded server's major version; it cannot apply to --replay-url "
                "(the replay runs on that server's own version)",
                hint="Drop one of the two options.",
            )
        try:
            return ExternalPostgres(replay_url)
        except ExternalServerError as exc:
            raise ReplayUnavailable(f"--replay-url: {exc}", hint="Pass a postgresql:// URL.") from None
    from pgship.testing.embedded import DEFAULT_VERSION, EmbeddedPostgres, EmbeddedServerError

    try:
        server = EmbeddedPostgres(
            version=pg_version or DEFAULT_VERSION, settings=EMBEDDED_SETTINGS, progress=_progress
        )
    except EmbeddedServerError as exc:
        hint = exc.hint or (
            "Replay on a server you provide: --replay-url URL (pgship creates a scratch database there "
            "and drops it afterwards; the user needs CREATEDB)."
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


def _progress(message: str) -> None:
    """First use of a major downloads it: say so on stderr (stdout may be a JSON document)."""
    import sys

    print(message, file=sys.stderr, flush=True)


def scratch_database(server: PostgresServer) -> str:
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


def ensure_roles(server: PostgresServer, roles: Sequence[str]) -> list[str]:
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


def role_names(server: PostgresServer) -> set[str]:
    """The server's roles; the replay's first connection, so an unreachable server is said here."""
    import psycopg

    try:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            return {row[0] for row in conn.execute("SELECT rolname FROM pg_roles")}
    except psycopg.OperationalError as exc:
        from pgship.errors import DatabaseUnavailable

        raise DatabaseUnavailable(
            f"cannot connect to the replay server: {_first_line(exc)}",
            hint="Check --replay-url or PGSHIP_REPLAY_URL (host, port, user, password).",
        ) from None


_CREATE_ROLE = re.compile(r'\bCREATE\s+(?:ROLE|USER|GROUP)\s+(?:"((?:[^"]|"")+)"|([A-Za-z_][\w$]*))', re.I)


def named_roles(discovery: Discovery) -> set[str]:
    """Roles the migration files create by name (``CREATE ROLE/USER/GROUP name``, also inside DO blocks)."""
    named: set[str] = set()
    for migration in discovery.migrations:
        for quoted, bare in _CREATE_ROLE.findall(migration.text):
            named.add(quoted.replace('""', '"') if quoted else bare.lower())
    return named


def roles_the_migrations_created(server: PostgresServer, before: set[str], discovery: Discovery) -> list[str]:
    """Roles that exist now, did not before the replay, and that a migration file creates by name.

    Both conditions: a role someone else created on the shared server meanwhile is not named by
    the migrations, and a role the migrations name that existed before is not the replay's.
    """
    named = named_roles(discovery)
    if not named:
        return []
    import psycopg

    try:
        now = role_names(server)
    except psycopg.Error:
        return []
    return sorted((now - before) & named)


def drop_roles(server: PostgresServer, roles: list[str]) -> list[str]:
    """Drop roles a replay created on a server it does not own (their database is gone already)."""
    if not roles or server.backend == "embedded":
        return []
    import psycopg
    from psycopg import sql

    dropped = []
    with suppress(psycopg.Error), psycopg.connect(server.admin_url, autocommit=True) as conn:
        for role in dict.fromkeys(roles):
            with suppress(psycopg.Error):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                dropped.append(role)
    return dropped


def _first_line(exc: Exception) -> str:
    from pgship.database import redact

    text = str(exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


__all__ = [
    "EMBEDDED_SETTINGS",
    "SCRATCH_PREFIX",
    "ReplayUnavailable",
    "choose_major",
    "drop_roles",
    "ensure_roles",
    "named_roles",
    "open_server",
    "role_names",
    "roles_the_migrations_created",
    "scratch_database",
    "server_major",
]
