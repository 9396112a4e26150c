"""Connecting to PostgreSQL, waiting for it, and keeping its password out of every message.

A deploy often starts before the database does (containers boot in parallel),
so connecting can wait with backoff; but a wrong password or a missing
database will not fix itself, so those fail at once with what to check.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from pgship.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

APPLICATION_NAME = "pgship"
_URL_PASSWORD = re.compile(r"(?P<prefix>postgres(?:ql)?://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<at>@)")
_KEYWORD_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|\S+)", re.I)
_PERMANENT_FAILURES = (
    "password authentication failed",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "permission denied",
    "no password supplied",
    "invalid connection option",
    "invalid uri",
    "invalid port",
)


def redact(text: str) -> str:
    """Hide passwords in anything that may contain a connection string."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['prefix']}***{m['at']}", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['prefix']}***", text)


def passwords_in(url: str | None, environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """Every password this process knows for the connection: from the URL, key=value or PGPASSWORD."""
    environ = os.environ if environ is None else environ
    found = []
    if url:
        for match in _URL_PASSWORD.finditer(url):
            if match["password"]:
                found.append(unquote(match["password"]))
                found.append(match["password"])
        for match in _KEYWORD_PASSWORD.finditer(url):
            found.append(match["password"].strip("'"))
    if environ.get("PGPASSWORD"):
        found.append(environ["PGPASSWORD"])
    return sorted({p for p in found if p}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Redact connection strings, then replace any known secret that is still there."""
    text = redact(text)
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def describe(url: str | None) -> str:
    """A human name for the target database, without password: ``user@host:port/dbname``."""
    if url and "://" in url:
        parts = urlsplit(url)
        user = unquote(parts.username or "")
        host = parts.hostname or os.environ.get("PGHOST", "localhost")
        port = parts.port or os.environ.get("PGPORT", "5432")
        dbname = unquote(parts.path.lstrip("/")) or os.environ.get("PGDATABASE", user)
        return f"{user + '@' if user else ''}{host}:{port}/{dbname}"
    if url:  # key=value conninfo
        return redact(url)
    env = os.environ
    user = env.get("PGUSER", "")
    return (
        f"{user + '@' if user else ''}{env.get('PGHOST', 'localhost')}:{env.get('PGPORT', '5432')}/"
        f"{env.get('PGDATABASE', user)}"
    )


@dataclass(frozen=True)
class ConnectAttempt:
    """Reported to a progress callback while waiting for the database."""

    attempt: int
    elapsed_s: float
    remaining_s: float
    error: str


def is_permanent(message: str) -> bool:
    """Whether a connection error will not go away by waiting (credentials, missing database)."""
    lowered = message.lower()
    return any(marker in lowered for marker in _PERMANENT_FAILURES)


def connect(
    url: str | None,
    *,
    wait_s: float = 0.0,
    connect_timeout_s: float = 5.0,
    on_retry: Callable[[ConnectAttempt], None] | None = None,
    autocommit: bool = True,
    wait_option: str = "--wait",
) -> psycopg.Connection:
    """Connect, retrying transient failures for up to ``wait_s`` seconds.

    Raises :class:`DatabaseUnavailable` (exit 3) with the last error, redacted.
    """
    import psycopg

    started = time.monotonic()
    attempt = 0
    delay = 0.1
    while True:
        attempt += 1
        remaining = wait_s - (time.monotonic() - started)
        timeout = max(1, int(min(connect_timeout_s, max(remaining, 1.0)) + 0.999))
        try:
            return psycopg.connect(
                url or "",
                autocommit=autocommit,
                connect_timeout=timeout,
                application_name=APPLICATION_NAME,
            )
        except psycopg.OperationalError as exc:
            message = scrub(str(exc).strip(), passwords_in(url))
            elapsed = time.monotonic() - started
            remaining = wait_s - elapsed
            if is_permanent(message):
                raise DatabaseUnavailable(
                    f"cannot connect to {describe(url)}: {message}",
                    hint=_permanent_hint(message),
                    attempts=attempt,
                    waited_s=elapsed,
                ) from None
            if remaining <= 0:
                waited = f" after waiting {elapsed:.0f} s ({attempt} attempts)" if wait_s > 0 else ""
                raise DatabaseUnavailable(
                    f"cannot connect to {describe(url)}{waited}: {message}",
                    hint=(
                        "Check that the database is running and reachable from here "
                        f"(host, port, firewall), or wait longer with {wait_option} SECONDS."
                    ),
                    attempts=attempt,
                    waited_s=elapsed,
                ) from None
            if on_retry:
                on_retry(ConnectAttempt(attempt, elapsed, remaining, message))
            time.sleep(min(delay, max(remaining, 0.0)))
            delay = min(delay * 1.6, 2.0)


def _permanent_hint(message: str) -> str:
    lowered = message.lower()
    if "password" in lowered or "authentication" in lowered:
        return "Check the user and password in DATABASE_URL (or PGUSER/PGPASSWORD); waiting will not help."
    if "database" in lowered and "does not exist" in lowered:
        return "Create the database first, or fix the database name in DATABASE_URL."
    if "role" in lowered and "does not exist" in lowered:
        return "Create the role, or fix the user name in DATABASE_URL."
    if "pg_hba.conf" in lowered:
        return "The server refuses this client: allow it in pg_hba.conf or connect as another user."
    return "Fix the connection settings in DATABASE_URL; waiting will not help."
