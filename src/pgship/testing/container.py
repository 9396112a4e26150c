"""A throwaway PostgreSQL server in a Docker container, started with testcontainers.

Why a container backend beside the embedded one: it runs the specification against the image
production runs (``PGSHIP_TEST_IMAGE``), not against whatever binaries a pip package ships.

Two choices differ from a plain ``PostgresContainer``:

* The host port is chosen up front and bound on 127.0.0.1 only. Docker gives a container a new
  random port each time it starts, so with a random mapping :attr:`admin_url` would go stale after
  :meth:`stop` / :meth:`start`; a fixed binding keeps one URL for the server's whole life, and
  loopback keeps it off every other interface.
* testcontainers is told to connect through 127.0.0.1 (see :func:`apply_testcontainers_defaults`):
  machines that carry ``/.dockerenv`` would otherwise make it target a bridge address.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import socket
import time
from typing import TYPE_CHECKING

from pgship.testing.server import PostgresServer

if TYPE_CHECKING:  # testcontainers is imported only when a container is started
    from docker.models.containers import Container
    from testcontainers.community.postgres import PostgresContainer

DEFAULT_IMAGE = "postgres:16"
#: Built by scripts/build-offline-postgres-image.sh where no registry is reachable.
OFFLINE_IMAGE = "pgship-local/postgres:15"
_CONTAINER_PORT = 5432
_LOOPBACK = "127.0.0.1"
_BIND_ATTEMPTS = 3

TESTCONTAINERS_DEFAULTS = {
    # Ryuk is a reaper container pulled from a registry; close() removes our container instead.
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    # Connect to published ports through the host, never to a bridge or gateway address.
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    "TESTCONTAINERS_HOST_OVERRIDE": _LOOPBACK,
}


class ContainerServerError(RuntimeError):
    """The container could not be started or did not answer; the message says what to do."""


def default_image() -> str:
    """The image to run: ``PGSHIP_TEST_IMAGE``, else the official ``postgres:16``."""
    return os.environ.get("PGSHIP_TEST_IMAGE") or DEFAULT_IMAGE


def apply_testcontainers_defaults() -> None:
    """Set the loopback-only, no-Ryuk settings unless the environment already chose others.

    testcontainers reads these variables when it is first imported, so they are also written
    into its configuration object in case it was imported earlier.
    """
    for name, value in TESTCONTAINERS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.ryuk_disabled = os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() == "true"
    mode = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
    testcontainers_config.connection_mode_override = mode
    testcontainers_config.tc_host_override = os.environ["TESTCONTAINERS_HOST_OVERRIDE"]


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ContainerPostgres(PostgresServer):
    """PostgreSQL in a container on a fixed 127.0.0.1 port, with a random password.

    ``durable=False`` (the default) turns fsync off, as the embedded backend does.
    """

    backend = "container"

    def __init__(
        self,
        image: str | None = None,
        *,
        password: str | None = None,
        user: str = "postgres",
        port: int | None = None,
        durable: bool = False,
        settings: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.image = image or default_image()
        self.user = user
        self.password = password or "pgship-" + secrets.token_urlsafe(12)
        self.port = port
        self.durable = durable
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self._container: PostgresContainer | None = None
        self._closed = False
        atexit.register(self.close)

    # -- lifecycle -----------------------------------------------------------------
    def setup(self) -> ContainerPostgres:
        """Start the container and wait until the server accepts password logins over TCP."""
        apply_testcontainers_defaults()
        fixed_port = self.port is not None
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            port = self.port if self.port is not None else _free_loopback_port()
            try:
                self._start_container(port)
            except _PortTaken:
                if fixed_port or attempt == _BIND_ATTEMPTS:
                    raise ContainerServerError(
                        f"port {port} on {_LOOPBACK} is already in use; pass another port"
                    ) from None
                continue
            self.port = port
            break
        self._wait_until_answering("start")
        return self

    def _start_container(self, port: int) -> None:
        import docker.errors
        from testcontainers.community.postgres import PostgresContainer

        try:  # the constructor already talks to the engine
            container = PostgresContainer(
                self.image, username=self.user, password=self.password, dbname="postgres", driver=None
            )
        except docker.errors.DockerException as exc:
            raise ContainerServerError(
                f"the Docker engine is not reachable ({_first_line(str(exc))}); "
                "start it with scripts/start-docker.sh"
            ) from None
        # docker-py accepts (address, port): publish on loopback only, on a port that never changes.
        # testcontainers types the value as a port number only
        container.ports[str(_CONTAINER_PORT)] = (_LOOPBACK, port)  # type: ignore[assignment]
        container.with_command(["postgres", *self._server_arguments()])
        try:
            # Pulls a missing image, starts the container, then waits for the module's own probe
            # (psql over TCP inside the container), which succeeds once set-up is complete.
            container.start()
        except docker.errors.ImageNotFound as exc:
            self._discard(container)
            raise ContainerServerError(self._image_missing_message(exc)) from None
        except docker.errors.APIError as exc:
            self._discard(container)
            text = str(exc)
            if "port is already allocated" in text or "address already in use" in text:
                raise _PortTaken from None
            if exc.status_code == 404 or "pull access denied" in text or "no such host" in text:
                raise ContainerServerError(self._image_missing_message(exc)) from None
            raise ContainerServerError(f"Docker could not start {self.image}: {_first_line(text)}") from None
        except docker.errors.DockerException as exc:
            self._discard(container)
            raise ContainerServerError(
                f"the Docker engine is not reachable ({_first_line(str(exc))}); "
                "start it with scripts/start-docker.sh"
            ) from None
        except Exception as exc:
            logs = self._logs_of(container)
            self._discard(container)
            raise ContainerServerError(
                f"{self.image} did not become ready ({type(exc).__name__}: {_first_line(str(exc))}); "
                f"last lines of its log:\n{logs}"
            ) from None
        self._container = container

    def _server_arguments(self) -> list[str]:
        options = {"max_connections": "200"}
        if not self.durable:
            options.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        options.update(self.settings)
        arguments: list[str] = []
        for key, value in options.items():
            arguments += ["-c", f"{key}={value}"]
        return arguments

    def _image_missing_message(self, exc: Exception) -> str:
        return (
            f"image {self.image} is not on this machine and could not be pulled "
            f"({_first_line(str(exc))}). Where no registry is reachable, build the offline image "
            f"with scripts/build-offline-postgres-image.sh and set PGSHIP_TEST_IMAGE={OFFLINE_IMAGE}"
        )

    @property
    def can_control(self) -> bool:
        return True

    def stop(self) -> None:
        # Both the official image and the offline one stop on SIGINT: a fast shutdown.
        self._require_container().stop(timeout=30)

    def start(self) -> None:
        self._require_container().start()
        self._wait_until_answering("start")

    def restart(self, *, immediate: bool = True) -> None:
        container = self._require_container()
        if immediate:
            container.kill()  # SIGKILL to the postmaster (PID 1): a power cut, crash recovery follows
            container.wait(condition="not-running")
            container.start()
        else:
            container.restart(timeout=30)
        self._wait_until_answering("restart")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._container is not None:
            self._discard(self._container)
            self._container = None

    def __enter__(self) -> ContainerPostgres:
        if self._container is None:
            self.setup()
        return self

    # -- addresses -----------------------------------------------------------------
    @property
    def admin_url(self) -> str:
        if self.port is None:
            raise ContainerServerError("the container has not been started: call setup() first")
        return f"postgresql://{self.user}:{self.password}@{_LOOPBACK}:{self.port}/postgres"

    @property
    def container_id(self) -> str:
        """The Docker id of the running container (for logs and debugging)."""
        return self._require_wrapped().get_container_id()

    def logs(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        return self._logs_of(self._require_wrapped(), lines)

    # -- helpers -------------------------------------------------------------------
    def _require_wrapped(self) -> PostgresContainer:
        if self._container is None:
            raise ContainerServerError("the container has not been started: call setup() first")
        return self._container

    def _require_container(self) -> Container:
        container = self._require_wrapped().get_wrapped_container()
        container.reload()
        return container

    def _wait_until_answering(self, action: str) -> None:
        """Poll a real login from the host through the published port, as clients will connect."""
        import psycopg

        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = _first_line(str(exc)).replace(self.password, "***")
                time.sleep(0.1)
        raise ContainerServerError(
            f"{self.image} did not answer within {self.startup_timeout:.0f}s after {action} "
            f"({last_error}); last lines of its log:\n{self.logs()}"
        )

    @staticmethod
    def _logs_of(container: PostgresContainer, lines: int = 40) -> str:
        try:
            stdout, stderr = container.get_logs()
        except Exception:  # the container may already be gone
            return "(no log: the container is gone)"
        text = (stdout + stderr).decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    @staticmethod
    def _discard(container: PostgresContainer) -> None:
        # Already removed, or the engine went away: either way nothing is left to release.
        with contextlib.suppress(Exception):
            container.stop(force=True, delete_volume=True)


class _PortTaken(Exception):
    """The chosen host port was taken between choosing it and Docker binding it."""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"
