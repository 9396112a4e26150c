"""A throwaway PostgreSQL server with all of contrib, for tests, the specification and replays.

The binaries are PostgreSQL 14-18 builds with every contrib extension (pgcrypto,
uuid-ossp, pg_trgm, citext, hstore, ltree, btree_gist...), fetched once per major
into a cache by :mod:`pgship.testing.binaries`. The server listens on a free TCP
port of 127.0.0.1 with a real password (tests prove secrets are never printed)
and can be stopped and crashed on purpose.

Start-up: ``initdb`` runs once per major and user into a cached template data
directory; each server copies it (a few tens of milliseconds instead of most of
a second), starts, and sets its own random password over the Unix socket.
When this process is root, the server runs as an unprivileged system user
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pgship.testing import binaries
from pgship.testing.server import PostgresServer

DEFAULT_VERSION = binaries.default_major()


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be set up; the message carries the server's log, ``hint`` what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def postgres_bin_dir(version: int = DEFAULT_VERSION) -> Path:
    """Directory holding ``postgres``, ``pg_ctl``, ``psql``... of that major (fetched on first use)."""
    try:
        return binaries.bin_dir(version)
    except binaries.BinariesError as exc:
        raise EmbeddedServerError(str(exc), exc.hint) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scratch_parent(durable: bool) -> str | None:
    """Where a server's data directory goes: memory (``/dev/shm``) unless it must survive like a disk.

    A throwaway server with fsync off gains nothing from a disk but the cost of writing its data
    directory there (copying the template took 0.2-0.9 s on a busy disk, 20 ms in memory).
    ``PGSHIP_EMBEDDED_DIR`` chooses another place; durable servers use the usual temp directory.
    """
    explicit = os.environ.get("PGSHIP_EMBEDDED_DIR")
    if explicit:
        return explicit
    shm = Path("/dev/shm")
    if durable or not shm.is_dir() or not os.access(shm, os.W_OK | os.X_OK):
        return None
    stats = os.statvfs(shm)
    if stats.f_bavail * stats.f_frsize < _SHM_NEEDED:  # a container's default /dev/shm is 64 MB
        return None
    return str(shm)


_SHM_NEEDED = 2 * 1024**3


_LOG_PID = re.compile(r"\[(\d+)\]")


def postmaster_failed(log: str) -> bool:
    """Whether a start's log says the postmaster gave up (not a client refused while it starts).

    The postmaster writes this start's first line; a FATAL from another process is a backend
    turning a client away ("the database system is starting up", a wrong password) and says
    nothing about the server.
    """
    lines = [line for line in log.splitlines() if line.strip()]
    if not lines:
        return False
    first = _LOG_PID.search(lines[0])
    postmaster = first.group(1) if first else None
    for line in lines:
        found = _LOG_PID.search(line)
        if found and postmaster and found.group(1) != postmaster:
            continue
        if "FATAL:" in line or "database system is shut down" in line:
            return True
    return False


class EmbeddedPostgres(PostgresServer):
    """A PostgreSQL server in a temporary directory, on 127.0.0.1 with password authentication.

    ``version`` is the major (14-18; default 16 or ``PGSHIP_EMBEDDED_PG_VERSION``).
    ``durable=False`` (the default) turns fsync off: right for tests, wrong for
    benchmarks that compare commit costs. ``progress`` hears about a first-use download.
    """

    backend = "embedded"

    def __init__(
        self,
        *,
        version: int | None = None,
        password: str | None = None,
        user: str = "postgres",
        port: int | None = None,
        durable: bool = False,
        settings: dict[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.version = version or DEFAULT_VERSION
        self.user = user
        self.password = password or "pgship-" + secrets.token_urlsafe(12)
        self.port = port or _free_port()
        # a caller who chose the port may have a client knocking on it already: such a server
        # listens on TCP only once its own password is set (setup), or the client would meet the
        # template's password and be refused for good
        self._private_first = port is not None
        self._listen_tcp = True
        self.durable = durable
        self.settings = dict(settings or {})
        try:
            binaries.check_major(self.version)
            self.prefix = binaries.ensure_installed(self.version, progress=progress)
        except binaries.BinariesError as exc:
            raise EmbeddedServerError(str(exc), exc.hint) from None
        self.bin_dir = self.prefix / "bin"
        self._run_as = binaries.run_as_user()
        self._closed = False
        self._running = False
        self._log_start = 0
        self.root = Path(tempfile.mkdtemp(prefix="pgship-pg-", dir=_scratch_parent(durable)))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        atexit.register(self.close)

    # -- lifecycle -----------------------------------------------------------------
    def setup(self) -> EmbeddedPostgres:
        """Copy the cached template data directory (``initdb`` on first use), start, set the password."""
        self._prepare_permissions()
        template = self._template_data_dir()
        self._run_tool(["cp", "-a", str(template), str(self.data_dir)], "cp")
        if self._private_first:
            self._listen_tcp = False  # the Unix socket only, while the template's password is in force
            self.start()
            self._set_password()
            self.stop()
            self._listen_tcp = True
            self.start()
            return self
        self.start()
        self._set_password()
        return self

    def _template_data_dir(self) -> Path:
        """An initdb'd data directory for this major and superuser, made once and copied by every server."""
        release = binaries.RELEASES[self.version]
        templates = binaries.cache_root() / "templates"
        user = (
            self.user
            if self.user.replace("_", "").isalnum()
            else hashlib.sha256(self.user.encode()).hexdigest()[:16]
        )
        target = templates / f"postgresql-{release}-{user}"
        if (target / "PG_VERSION").exists() and (target.parent / f"{target.name}.complete").exists():
            return target
        templates.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            templates.chmod(0o755)
        with binaries.file_lock(templates / f"{target.name}.lock"):
            if (target / "PG_VERSION").exists() and (target.parent / f"{target.name}.complete").exists():
                return target
            shutil.rmtree(target, ignore_errors=True)
            scratch = Path(tempfile.mkdtemp(prefix=".initdb-", dir=templates))
            scratch.chmod(0o755)
            binaries.chown_to_server_user(scratch)
            data = scratch / "data"
            pwfile = scratch / "pwfile"
            pwfile.write_text("pgship-template-" + secrets.token_urlsafe(12) + "\n")  # replaced at start
            binaries.chown_to_server_user(pwfile)
            try:
                self._run(
                    "initdb",
                    "-D",
                    str(data),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                    "--no-instructions",
                    "--wal-segsize=1",  # one 1 MB WAL segment to copy per server instead of 16 MB
                    cwd=scratch,
                )
                data.rename(target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)  # a failed initdb leaves nothing behind
            (target.parent / f"{target.name}.complete").write_text(release + "\n")
        return target

    def _set_password(self) -> None:
        """The template's password is shared; give this server its own (over the trusted Unix socket)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            # never in the server's log, whatever its settings (a test may log every statement)
            conn.execute("SET log_statement = 'none'; SET log_min_duration_statement = -1")
            conn.execute("SET log_min_error_statement = 'panic'")
            statement = sql.SQL("ALTER ROLE {} PASSWORD {}")
            conn.execute(statement.format(sql.Identifier(self.user), sql.Literal(self.password)))

    def _server_options(self) -> str:
        options = {
            "listen_addresses": "127.0.0.1" if self._listen_tcp else "",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "200",
        }
        if not self.durable:
            options.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        options.update(self.settings)
        return " ".join(f"-c {key}={value}" for key, value in options.items())

    @property
    def can_control(self) -> bool:
        return True

    def start(self) -> None:
        # -W and our own wait: pg_ctl -w looks every 100 ms, a replay's server is ready in about 50
        self._log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        self._pg_ctl("start", "-W", "-l", str(self.log_file), "-o", self._server_options())
        self._running = True
        self._wait_until(self._ready, "start")

    def stop(self) -> None:
        self._pg_ctl("stop", "-w", "-m", "fast")
        self._running = False

    def restart(self, *, immediate: bool = True) -> None:
        mode = "immediate" if immediate else "fast"
        self._pg_ctl(
            "restart", "-w", "-t", "30", "-m", mode, "-l", str(self.log_file), "-o", self._server_options()
        )
        self._running = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._running:
            with contextlib.suppress(EmbeddedServerError):
                self._pg_ctl("stop", "-W", "-m", "immediate")
                self._wait_until(lambda: not (self.data_dir / "postmaster.pid").exists(), "stop")
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def _ready(self) -> bool:
        """The postmaster says ``ready`` in its pid file (line 8); a start that failed raises at once."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= 8 and lines[7].strip() == "ready":
            return True
        log = ""
        with contextlib.suppress(FileNotFoundError), open(self.log_file, "rb") as handle:
            handle.seek(self._log_start)  # this start's lines only: an earlier stop logged "shut down"
            log = handle.read().decode(errors="replace")
        if postmaster_failed(log):
            raise EmbeddedServerError(f"PostgreSQL did not start:\n{log[-4000:]}")
        return False

    def _wait_until(self, done: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        pause = 0.002
        while not done():
            if time.monotonic() > deadline:
                log = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
                raise EmbeddedServerError(f"PostgreSQL did not {what} within {timeout_s:.0f} s:\n{log}")
            time.sleep(pause)
            pause = min(pause * 1.5, 0.05)

    def __enter__(self) -> EmbeddedPostgres:
        if not self._running:
            self.setup()
        return self

    # -- addresses -----------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def bin(self) -> Path:
        """The directory of this server's client programs (psql, pg_dump)."""
        return self.bin_dir

    # -- helpers -------------------------------------------------------------------
    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str, cwd: Path | None = None) -> None:
        self._run_tool([str(self.bin_dir / program), *args], program, cwd=cwd)

    def _run_tool(self, command: list[str], name: str, cwd: Path | None = None) -> None:
        env = {**os.environ, "LD_LIBRARY_PATH": binaries.library_path(self.prefix)}
        env.pop("PGDATA", None)
        result = subprocess.run(
            command,
            user=self._run_as,
            cwd=cwd or self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            message = f"{name} {' '.join(command[1:2])} failed:\n{result.stdout}\n{log}"
            missing = binaries.missing_libraries(self.prefix, core_only=True)
            if missing:
                raise EmbeddedServerError(
                    f"the embedded PostgreSQL {self.version} cannot run on this machine: it lacks "
                    f"{', '.join(sorted(missing))}\n{message}",
                    binaries.MISSING_LIBRARIES_HINT,
                )
            raise EmbeddedServerError(message)

    def _prepare_permissions(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is None:
            return
        try:
            binaries.ensure_system_user()
        except binaries.BinariesError as exc:
            raise EmbeddedServerError(str(exc), exc.hint) from None
        self.root.chmod(0o755)
        binaries.traversable(self.root)
        binaries.traversable(self.prefix / "bin")
        for path in (self.root, self.socket_dir):
            binaries.chown_to_server_user(path)
