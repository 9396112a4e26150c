"""Real `pgship serve` processes for tests, and a client that checks every answer for leaked secrets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import httpx

from tests.toolkit import spawn_cli


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_no_secrets(text: str, secrets: Iterable[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} contains {secret!r}:\n{text[:2000]}"


@dataclass
class Answer:
    status: int
    headers: httpx.Headers
    body: dict

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class ServeProcess:
    """A `pgship serve` subprocess; every response it gives is scanned for ``forbidden`` strings."""

    process: subprocess.Popen[str]
    port: int
    forbidden: list[str]
    answers: list[Answer] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, *, token: str | None = None, timeout: float = 10.0, **kwargs) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(self.base_url + path, headers=headers, timeout=timeout, **kwargs)
        raw = "\n".join(f"{k}: {v}" for k, v in response.headers.items()) + "\n" + response.text
        assert_no_secrets(raw, self.forbidden, f"the answer to GET {path}")
        answer = Answer(response.status_code, response.headers, response.json())
        self.answers.append(answer)
        return answer

    def wait_until(self, path: str, predicate, *, timeout: float = 30.0, **kwargs) -> Answer:
        deadline = time.monotonic() + timeout
        while True:
            answer = self.get(path, **kwargs)
            if predicate(answer) or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)

    def stop(self) -> tuple[str, str]:
        """Stop the server (SIGTERM, like an orchestrator) and return its output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return out, err


def start_serve(
    url: str,
    migrations_dir: str,
    *extra: str,
    env: dict[str, str] | None = None,
    forbidden: Iterable[str] = (),
    **popen: object,
) -> ServeProcess:
    """Start `pgship serve` on a free port and wait until /health/live answers.

    ``popen`` goes to ``subprocess.Popen`` (e.g. ``preexec_fn`` to set resource limits).
    """
    port = free_port()
    process = spawn_cli(
        "-d", url, "-m", migrations_dir, "serve", "--port", str(port), *extra, env=env, **popen
    )
    server = ServeProcess(process, port, [s for s in forbidden if s])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"pgship serve exited with {process.returncode}:\n{out}\n{err}")
        try:
            if httpx.get(server.base_url + "/health/live", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise AssertionError("pgship serve did not answer /health/live within 30 s")


class SilentServer:
    """A TCP port that accepts connections and never says a word: a hung database, as clients see it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(connection)  # kept open, never read, never answered

    def close(self) -> None:
        self.sock.close()
        for connection in self.accepted:
            connection.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def kill_session(pid: int) -> None:
    """Stop a process group started by a test (a service left running by a deploy)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
