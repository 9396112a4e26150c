"""Asking a running release's health endpoints over real HTTP, and keeping every answer.

Scenarios talk to ``pgship serve`` the way a load balancer or an engineer
with ``curl`` does: httpx against 127.0.0.1. Every answer is kept (the
security scenarios scan them all) and attached to the report.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from pgship.testing.spec import attachments

logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the step log

#: the check bound docs/DEPLOYMENT.md and the README promise ("about 2 s", ``--check-timeout`` default)
CHECK_BOUND_S = 2.0
#: what a client allows on top of the bound: process scheduling on a busy 2-core CI machine
MARGIN_S = 8.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class HealthAnswer:
    """One HTTP answer of a health endpoint."""

    path: str
    status_code: int
    content_type: str
    text: str
    headers: dict[str, str]

    def document(self) -> dict[str, Any]:
        try:
            document = json.loads(self.text)
        except json.JSONDecodeError:
            raise AssertionError(f"GET {self.path} did not answer JSON:\n{self.text}") from None
        assert isinstance(document, dict), f"GET {self.path} answered {document!r}, not a JSON object"
        return document


@dataclass
class HealthEndpoint:
    """The endpoints of one running release on ``port``; ``token`` is sent when asked to."""

    port: int
    token: str | None = None
    answers: list[HealthAnswer] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ask(
        self, path: str, *, with_token: bool = True, timeout: float = CHECK_BOUND_S + MARGIN_S
    ) -> HealthAnswer:
        """GET ``path``; a request that takes longer than ``timeout`` fails the step (a hung probe)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token and with_token else {}
        try:
            response = httpx.get(self.base_url + path, headers=headers, timeout=timeout)
        except httpx.TimeoutException:
            raise AssertionError(f"GET {path} got no answer within {timeout:g} s: the probe hung") from None
        answer = HealthAnswer(
            path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.text,
            dict(response.headers),
        )
        self.answers.append(answer)
        shown = f"GET {path}{'' if headers or not self.token else ' (no token)'} -> {response.status_code}"
        attachments.attach_json(shown, _pretty(answer.text))
        return answer

    def is_live(self) -> bool:
        """Whether ``/health/live`` answers 200 (not recorded: used while waiting for a start)."""
        try:
            return httpx.get(self.base_url + "/health/live", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_until_live(self, *, timeout: float = 30.0) -> None:
        """Poll until the server answers (a guard against a server that never starts, not a speed claim)."""
        deadline = time.monotonic() + timeout
        while not self.is_live():
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.base_url}/health/live did not answer within {timeout:g} s")
            time.sleep(0.05)


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except json.JSONDecodeError:
        return text
