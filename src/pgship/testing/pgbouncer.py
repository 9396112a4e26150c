"""A real PgBouncer in front of a test server, in transaction or session pooling mode.

Why a real one: what breaks behind a pooler (a session advisory lock taken on one
backend and "released" on another, ``SET`` that does not stick, server-side prepared
statements that collide) is PgBouncer's behaviour, not something a fake can promise.
Debian's ``pgbouncer`` package provides the binary (``scripts/install-pgbouncer.sh``
installs it when missing); this module writes a configuration into a temporary
directory, starts the daemon in the foreground on a free loopback port and stops it.

PgBouncer refuses to run as root, like PostgreSQL: a root process runs it as the
``postgres`` system user the Debian package creates (or another unprivileged user).

The admin console (``RECONNECT``, ``KILL``, ``PAUSE``, ``SHOW POOLS``) is reachable
through :meth:`PgBouncer.admin`, which the fault campaign uses to cut every server
connection in the middle of a run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

PoolMode = Literal["session", "transaction", "statement"]

#: where Debian installs the daemon; ``PGSHIP_PGBOUNCER`` names another binary
DEFAULT_BINARY = "/usr/sbin/pgbouncer"
_RUN_AS_CANDIDATES = ("postgres", "pgserver")


class PgBouncerError(RuntimeError):
    """PgBouncer is missing or did not start; the message carries its log."""


def pgbouncer_binary() -> Path:
    """The ``pgbouncer`` executable, or an error saying how to install it."""
    named = os.environ.get("PGSHIP_PGBOUNCER")
    for candidate in (named, shutil.which("pgbouncer"), DEFAULT_BINARY):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise PgBouncerError(
        "pgbouncer is not installed: run `bash scripts/install-pgbouncer.sh` "
        "(Debian's package), or set PGSHIP_PGBOUNCER to the binary"
    )


def is_available() -> bool:
    try:
        pgbouncer_binary()
    except PgBouncerError:
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in _RUN_AS_CANDIDATES:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "pgserver"],
        check=True,
        capture_output=True,
    )
    return "pgserver"


class PgBouncer:
    """PgBouncer on 127.0.0.1, forwarding every database name to one upstream server.

    ``upstream_url`` is a superuser URL of the server (its user and password become
    PgBouncer's only login, with scram-sha-256 on both sides). :meth:`url_for` gives a
    client URL for a database through the pooler.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        pool_mode: PoolMode = "transaction",
        pool_size: int = 4,
        port: int | None = None,
    ) -> None:
        parts = urlsplit(upstream_url)
        if not parts.hostname or not parts.username:
            raise PgBouncerError("the upstream URL needs a host and a user")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 5432
        self.user = unquote(parts.username)
        self.password = unquote(parts.password or "")
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = port or _free_port()
        self.binary = pgbouncer_binary()
        self.root = Path(tempfile.mkdtemp(prefix="pgship-pgbouncer-"))
        self.config = self.root / "pgbouncer.ini"
        self.log_file = self.root / "pgbouncer.log"
        self._run_as = _unprivileged_user()
        self._process: subprocess.Popen[bytes] | None = None
        self._closed = False
        atexit.register(self.close)

    # -- configuration ---------------------------------------------------------------
    def _write_config(self) -> None:
        userlist = self.root / "userlist.txt"
        # PgBouncer's auth file: "user" "password"; a plain password works for scram-sha-256.
        userlist.write_text(f'"{_quoted(self.user)}" "{_quoted(self.password)}"\n')
        userlist.chmod(0o600)
        self.config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={self.upstream_host} port={self.upstream_port}",
                    "",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    f"unix_socket_dir = {self.root}",
                    "auth_type = scram-sha-256",
                    f"auth_file = {userlist}",
                    f"admin_users = {self.user}",
                    f"pool_mode = {self.pool_mode}",
                    f"default_pool_size = {self.pool_size}",
                    "max_client_conn = 400",
                    "server_lifetime = 3600",
                    "server_idle_timeout = 600",
                    # psycopg sends none of these, other drivers do; ignoring keeps the pooler usable
                    "ignore_startup_parameters = extra_float_digits,options",
                    f"logfile = {self.log_file}",
                    f"pidfile = {self.root / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        self.config.chmod(0o600)
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            self.root.chmod(0o700)
            for path in (self.root, userlist, self.config):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> PgBouncer:
        if self._process is not None and self._process.poll() is None:
            return self
        self._write_config()
        self._process = subprocess.Popen(
            [str(self.binary), str(self.config)],
            user=self._run_as,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PgBouncerError(f"pgbouncer exited at start:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)
        raise PgBouncerError(f"pgbouncer did not listen on port {self.port}:\n{self.log()}")

    def stop(self) -> None:
        """Stop at once (SIGTERM): every client sees its connection close."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- addresses ---------------------------------------------------------------------
    def url_for(self, dbname: str) -> str:
        """A client URL of ``dbname`` through the pooler (same user and password as the server)."""
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{quote(dbname, safe='')}"
        )

    def admin(self, command: str) -> list[tuple[object, ...]]:
        """Run a command on the admin console (``RECONNECT``, ``KILL db``, ``SHOW POOLS``...).

        The console speaks only the simple query protocol, hence ``pgconn.exec_``.
        """
        import psycopg

        with psycopg.connect(self.url_for("pgbouncer"), autocommit=True) as conn:
            result = conn.pgconn.exec_(command.encode())
            if result.status not in (1, 2):  # COMMAND_OK, TUPLES_OK
                message = (result.error_message or b"").decode(errors="replace").strip()
                raise PgBouncerError(f"pgbouncer admin {command!r} failed: {message}")
            rows: list[tuple[object, ...]] = []
            for row in range(result.ntuples):
                rows.append(
                    tuple(
                        (result.get_value(row, col) or b"").decode(errors="replace")
                        for col in range(result.nfields)
                    )
                )
            return rows


def _quoted(value: str) -> str:
    return value.replace('"', '""')


def new_password() -> str:
    return "pgship-" + secrets.token_urlsafe(12)
