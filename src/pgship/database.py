"""Connecting to PostgreSQL, waiting for it, and keeping its password out of every message.

A deploy often starts before the database does (containers boot in parallel),
so connecting can wait with backoff; but a wrong password or a missing
database will not fix itself, so those fail at once with what to check.

One file although over 400 lines: connecting, classifying a failed connection and redacting
passwords from what it says are one concern: every error message a connection produces must
pass the same scrubber, and keeping them together means no path can skip it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from pgship.errors import ConnectionRejected, DatabaseUnavailable, UsageError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import Row

APPLICATION_NAME = "pgship"
#: A URL's scheme as a person may mistype it: ``postgresql:/``, ``postgresql//``, ``postgres:``...
#: (and any other scheme: ``postgresql+psycopg://`` is a URL, and its password a secret, even if refused)
_SCHEME_TEXT = r"(?:postgres(?:ql)?(?::/{0,2}|/{1,2})|[a-z][a-z0-9+.-]*:/{1,2})"
_SCHEME = re.compile(rf"(?i){_SCHEME_TEXT}")
_VALID_SCHEME = re.compile(r"postgres(?:ql)?://")
#: In free text: a URL's user, then everything up to the last ``@`` of the same word is the password.
_URL_PASSWORD = re.compile(rf"(?P<prefix>(?i:\b{_SCHEME_TEXT})[^:/@\s]*:)(?P<password>\S*)(?P<at>@)")
_KEYWORD_PASSWORD = re.compile(r"(?P<prefix>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|\S+)", re.I)
#: Characters that split a malformed password into the pieces a library error may quote.
_PIECES = re.compile(r"[\s:/?#@&=%'\"]+")
_MIN_SECRET = 3  # shorter strings are not replaced: "***" everywhere "ab" appears helps nobody
_MIN_PIECE = 4
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
    "invalid integer value",
    "invalid sslmode value",
    "invalid value for parameter",
    "invalid target_session_attrs",
    "invalid load_balance_hosts",
    "invalid channel_binding",
    "invalid gssencmode",
    "invalid require_auth",
)
URL_HINT = (
    "Write it as postgresql://USER@HOST:5432/DBNAME with the password after USER and a colon, or in "
    "PGPASSWORD (key=value pairs work too: host=... dbname=...). In the user name and password, "
    "percent-encode @ as %40, : as %3A, / as %2F, # as %23, ? as %3F, % as %25 and a space as %20 "
    "(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=\"\"))' PASSWORD)."
)


@dataclass(frozen=True)
class UrlParts:
    """What a ``postgresql://`` URL names, read the way libpq reads it; never raises, whatever the text."""

    user: str = ""
    password: str | None = None
    hosts: str = ""
    ports: str = ""
    dbname: str = ""
    query: str = ""


def split_url(url: str) -> UrlParts | None:
    """The parts of a URL (``None`` for a key=value string); a malformed one gives its best reading.

    The user information runs from the scheme to the *last* ``@`` before the host, so a password
    holding a raw ``@``, ``/``, ``#``, ``?`` or space stays in the password: whatever is uncertain
    is treated as secret.
    """
    scheme = _SCHEME.match(url)
    if not scheme:
        return None
    rest = url[scheme.end() :]
    at = _last_at_before_host(rest)
    userinfo, hostpart = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    user, colon, password = userinfo.partition(":")
    authority, _, path = hostpart.partition("/")
    authority, _, query = authority.partition("?")
    if "?" in path:
        path, _, query = path.partition("?")
    hosts, ports = [], []
    for host in authority.split(","):
        if host.startswith("["):  # [::1]:5432
            name, _, port = host[1:].partition("]")
            port = port.removeprefix(":")
        else:
            name, _, port = host.partition(":")
        hosts.append(_unquote(name))
        ports.append(port)
    return UrlParts(
        user=_unquote(user),
        password=_unquote(password) if colon else None,
        hosts=",".join(hosts),
        ports=",".join(p for p in ports if p) if any(ports) else "",
        dbname=_unquote(path),
        query=query,
    )


def _last_at_before_host(rest: str) -> int:
    """Where the user information ends: the last ``@`` before the path or query of the URL."""
    at = rest.rfind("@")
    while at >= 0 and re.search(r"/[^/]*\?[^@]*=", rest[:at]):
        at = rest.rfind("@", 0, at)  # an @ inside the query (?options=a@b) does not end the user
    return at


def _unquote(text: str) -> str:
    return unquote(text, errors="replace")


def check_url(url: str | None) -> None:
    """Refuse (exit 2) a connection string libpq or any other reader would misread; no secret shown.

    Checks syntax only, before anything connects: the scheme, one ``@``, no raw space, ``#`` or
    ``?`` in the user information, numeric ports, percent-encoding and parameter names (libpq's own
    parser).
    """
    if not url:
        return
    reason = url_problem(url)
    if reason:
        is_uri = _SCHEME.match(url) is not None or "=" not in url.partition(" ")[0]
        what = "a valid postgresql:// URL" if is_uri else "a valid connection string"
        raise UsageError(
            f"the database URL is not {what}: {reason}; it was not used, and nothing was changed",
            hint=URL_HINT,
        )


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be used as a connection string, in words that quote none of it; or ``None``."""
    scheme = _SCHEME.match(url)
    if scheme is None and "=" not in url:
        return "it does not start with postgresql:// and is not a key=value connection string"
    if scheme is not None and not _VALID_SCHEME.match(url):
        if re.match(r"(?i)postgres", url):
            return "it must start with postgresql:// (the scheme in lower case, a colon and two slashes)"
        return "its scheme must be postgresql:// or postgres://"
    if scheme is not None:
        problem = _uri_problem(url)
        if problem:
            return problem
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(url)
    except Exception as exc:  # psycopg.ProgrammingError: libpq's message quotes the text, never shown
        return _libpq_reason(str(exc))
    for port in str(params.get("port") or "").split(","):
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return "the port must be a number from 1 to 65535"
    return None


def _uri_problem(url: str) -> str | None:
    rest = url[url.index("://") + 3 :]
    authority = re.split(r"[/]", rest, maxsplit=1)[0]
    if authority.count("@") > 1:
        return "it has more than one @ before the host (an @ in the user name or password must be %40)"
    userinfo = authority.rpartition("@")[0] if "@" in authority else ""
    if "@" not in authority and "@" in rest and not re.search(r"\?[^@]*=", rest.split("@")[0]):
        return "it has a / before the @ (a / in the user name or password must be %2F)"
    for char, name, code in ((" ", "a space", "%20"), ("#", "a #", "%23"), ("?", "a ?", "%3F")):
        if char in userinfo:
            return f"the user name or password holds {name}, which must be written {code}"
    if " " in url:
        return "it holds a space (write %20)"
    return None


def _libpq_reason(message: str) -> str:
    lowered = message.lower()
    for marker, reason in (
        ("percent-encoded", "it holds an invalid percent-encoding (% must be followed by two hex digits)"),
        ("unexpected spaces", "it holds a space (write %20)"),
        ("invalid uri query parameter", "it has an unknown parameter after ?"),
        ("invalid connection option", "it has an unknown connection option"),
        ("separator", "a parameter after ? is not written key=value"),
        ('missing "="', "a part of it is not written key=value"),
        ("unterminated quoted string", "a quoted value is not closed"),
        ("ipv6", "an IPv6 address is not closed with ]"),
    ):
        if marker in lowered:
            return reason
    return "libpq cannot parse it"


def redact(text: str) -> str:
    """Hide passwords in anything that may contain a connection string, however malformed."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['prefix']}***{m['at']}", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['prefix']}***", text)


def passwords_in(url: str | None, environ: Mapping[str, str] | None = None) -> list[str]:
    """Every password this process knows for the connection: from the URL, key=value or PGPASSWORD.

    For a malformed URL, also the pieces of its password a library error might quote on its own.
    """
    environ = os.environ if environ is None else environ
    found: list[str] = []
    if url:
        parts = split_url(url)
        if parts is not None and parts.password:
            raw = _raw_password(url)
            found += [parts.password, raw]
            found += [p for p in _PIECES.split(raw) + _PIECES.split(parts.password) if len(p) >= _MIN_PIECE]
        for match in _URL_PASSWORD.finditer(url):
            if match["password"]:
                found += [unquote(match["password"]), match["password"]]
        for match in _KEYWORD_PASSWORD.finditer(url):
            value = match["password"].strip("'")
            found += [value, unquote(value)]
    if environ.get("PGPASSWORD"):
        found.append(environ["PGPASSWORD"])
    return sorted({p for p in found if len(p) >= _MIN_SECRET}, key=len, reverse=True)


def _raw_password(url: str) -> str:
    """The password as written in the URL (percent-encoded or not)."""
    scheme = _SCHEME.match(url)
    rest = url[scheme.end() :] if scheme else url
    at = _last_at_before_host(rest)
    return rest[:at].partition(":")[2] if at >= 0 else ""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Redact connection strings, then replace any known secret (also JSON-escaped) still there."""
    text = redact(text)
    for secret in secrets:
        if len(secret) >= _MIN_SECRET:
            text = text.replace(secret, "***")
            escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
            if escaped != secret:
                text = text.replace(escaped, "***")
    return text


def describe(url: str | None, environ: Mapping[str, str] | None = None) -> str:
    """A human name for the target database, without password: ``user@host:port/dbname``.

    Never raises, whatever the text. Without a URL it names what libpq falls back on: the ``PG*``
    variables, else the local Unix socket, port 5432, the operating-system user and a database of
    that name.
    """
    env = os.environ if environ is None else environ
    if url and _SCHEME.match(url):
        parts = split_url(url) or UrlParts()
        user = parts.user or env.get("PGUSER", "")
        host = parts.hosts or env.get("PGHOST", "") or "localhost"
        port = parts.ports or env.get("PGPORT", "5432")
        dbname = parts.dbname or env.get("PGDATABASE", user)
        return redact(f"{user + '@' if user else ''}{host}:{port}/{dbname}")
    if url:  # key=value conninfo
        return redact(url)
    user = env.get("PGUSER", "") or _os_user()
    host = env.get("PGHOST", "") or "local socket"
    return f"{user + '@' if user else ''}{host}:{env.get('PGPORT', '5432')}/{env.get('PGDATABASE', user)}"


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name for this uid (a container): libpq fails too, but describe never does
        return ""


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


def one_row(cursor: psycopg.Cursor[Row]) -> Row:
    """The row of a query that always returns exactly one (``SHOW``, ``SELECT`` without ``FROM``).

    psycopg's ``fetchone`` is typed ``Row | None``; for these queries it is never None.
    """
    row = cursor.fetchone()
    assert row is not None, "the query returns one row"
    return row


def connect(
    url: str | None,
    *,
    wait_s: float = 0.0,
    connect_timeout_s: float = 5.0,
    on_retry: Callable[[ConnectAttempt], None] | None = None,
    autocommit: bool = True,
    wait_option: str = "--wait",
    named: bool = True,
    pooled: bool = False,
) -> psycopg.Connection:
    """Connect, retrying transient failures for up to ``wait_s`` seconds.

    Raises :class:`DatabaseUnavailable` (exit 3) with the last error, redacted, when the time runs
    out; :class:`ConnectionRejected` (exit 6) at once when waiting cannot help (wrong password,
    missing database or role, a parameter the server or libpq refuses); :class:`UsageError`
    (exit 2) for a malformed URL, before trying. ``named=False`` says that nothing named the
    database (no URL, no ``PG*`` variable): the error then says so, and what libpq tried instead.
    ``pooled=True`` (through a transaction pooler) turns psycopg's automatic server-side prepared
    statements off: their names would collide on the server backends the pooler shares.
    """
    import psycopg

    check_url(url)
    started = time.monotonic()
    attempt = 0
    delay = 0.1
    while True:
        attempt += 1
        remaining = wait_s - (time.monotonic() - started)
        timeout = max(1, int(min(connect_timeout_s, max(remaining, 1.0)) + 0.999))
        try:
            conn = psycopg.connect(
                url or "",
                autocommit=autocommit,
                connect_timeout=timeout,
                application_name=APPLICATION_NAME,
            )
            if pooled:
                conn.prepare_threshold = None
            return conn
        except psycopg.ProgrammingError as exc:  # libpq cannot parse the string: its message quotes it
            raise UsageError(
                f"the database URL is not usable: {_libpq_reason(str(exc))}", hint=URL_HINT
            ) from None
        except psycopg.OperationalError as exc:
            message = tidy_message(scrub(str(exc), passwords_in(url)))
            elapsed = time.monotonic() - started
            remaining = wait_s - elapsed
            target = describe(url) if named else _libpq_defaults()
            if is_permanent(message):
                raise ConnectionRejected(
                    f"cannot connect to {target}: {message}",
                    hint=_permanent_hint(message) if named else NAME_THE_DATABASE,
                    attempts=attempt,
                    waited_s=elapsed,
                ) from None
            if remaining <= 0:
                waited = f" after waiting {elapsed:.0f} s ({attempt} attempts)" if wait_s > 0 else ""
                raise DatabaseUnavailable(
                    f"cannot connect to {target}{waited}: {message}",
                    hint=(
                        "Check that the database is running and reachable from here "
                        f"(host, port, firewall), or wait longer with {wait_option} SECONDS."
                    )
                    if named
                    else NAME_THE_DATABASE,
                    attempts=attempt,
                    waited_s=elapsed,
                ) from None
            if on_retry:
                first_line = (
                    scrub(str(exc).strip().splitlines()[0], passwords_in(url)) if str(exc).strip() else ""
                )
                on_retry(ConnectAttempt(attempt, elapsed, remaining, first_line or message))
            time.sleep(min(delay, max(remaining, 0.0)))
            delay = min(delay * 1.6, 2.0)


NAME_THE_DATABASE = (
    "Name the database: export DATABASE_URL=postgresql://USER@HOST:5432/DBNAME (the password after "
    "USER and a colon, or in PGPASSWORD), or pass -d URL (libpq's PGHOST, PGPORT, PGUSER and "
    "PGDATABASE work too). No database at hand? `python -m pgship.testing` starts a throwaway one."
)


def tidy_message(message: str) -> str:
    """A libpq message on one line: its hint lines start with a TAB, which JSON would show as ``\\t``."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return "".join(
        line if i == 0 else (" " if lines[i - 1][-1] in ".?!:;," else ". ") + line
        for i, line in enumerate(lines)
    )


def _libpq_defaults(environ: Mapping[str, str] | None = None) -> str:
    """What libpq tries when nothing names the database, in words."""
    env = os.environ if environ is None else environ
    user = env.get("PGUSER") or _os_user() or "the operating-system user"
    port = env.get("PGPORT", "5432")
    return (
        "the default database: no -d/--database-url, DATABASE_URL, PGHOST or PGDATABASE is set, so "
        f"libpq tried the local Unix socket on port {port} as user {user}, database "
        f"{env.get('PGDATABASE') or user}"
    )


def _permanent_hint(message: str) -> str:
    lowered = message.lower()
    if "password" in lowered or "authentication" in lowered:
        advice = "Check the user and password in DATABASE_URL (or PGUSER/PGPASSWORD)."
    elif "database" in lowered and "does not exist" in lowered:
        advice = "Create the database first, or fix the database name in DATABASE_URL."
    elif "role" in lowered and "does not exist" in lowered:
        advice = "Create the role, or fix the user name in DATABASE_URL."
    elif "pg_hba.conf" in lowered:
        advice = "The server refuses this client: allow it in pg_hba.conf or connect as another user."
    elif "permission denied" in lowered:
        advice = "Grant this user CONNECT on the database, or connect as another user."
    else:
        advice = "Fix the connection settings in DATABASE_URL (a parameter's value is refused)."
    return f"{advice} The server answered and refused, so waiting will not help (exit 6: do not retry)."
