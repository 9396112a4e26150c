"""A network path to the scenario's database that a scenario can close, cut or freeze.

Deploy and health scenarios need a database that comes up late, goes down, or
stops answering. Stopping the run's server would disturb every other scenario
and is impossible on the ``url`` backend; instead pgship is pointed at this
loopback TCP relay, which forwards to the real server (whatever the backend)
and can be switched, at any moment, between:

* **refusing**: the port is reserved but nobody listens, so connections are
  refused at once, as when the database is not started yet;
* **forwarding**: every connection is relayed to the server;
* **frozen**: connections are accepted (and the open ones kept) but nothing is
  relayed in either direction, as when the server or the network hangs.

Going back to *refusing* drops the open connections, as a server that goes
away does.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from pgship.testing.spec.commands import PgshipCli
    from pgship.testing.spec.world import ScenarioWorld

REFUSING, FORWARDING, FROZEN = "refusing", "forwarding", "frozen"
_POLL_S = 0.05


@dataclass
class _Relay:
    """One client connection and, unless frozen when it arrived, its connection to the server."""

    client: socket.socket
    upstream: socket.socket | None
    closed: bool = field(default=False)

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


class DatabaseLink:
    """A relay on 127.0.0.1 to the database of ``target_url``; starts *refusing*."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self.target_url = target_url
        self.target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.state = REFUSING
        self._lock = threading.Lock()
        self._relays: list[_Relay] = []
        self._closed = False
        self._listener = self._reserve(0)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"db-link-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``target_url`` with its host and port replaced by the relay's (same user, password, database)."""
        parts = urlsplit(self.target_url)
        userinfo, _, _ = parts.netloc.rpartition("@")
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    # -- switching -------------------------------------------------------------------
    def forward(self) -> None:
        """Accept connections and relay them (the database is up)."""
        with self._lock:
            if self.state == REFUSING:
                self._listener.listen(16)
            self.state = FORWARDING

    def freeze(self) -> None:
        """Keep every connection open but relay nothing (the database hangs)."""
        with self._lock:
            if self.state == REFUSING:
                self._listener.listen(16)
            self.state = FROZEN

    def refuse(self) -> None:
        """Drop every connection and refuse new ones (the database is down)."""
        with self._lock:
            relays, self._relays = self._relays, []
            for relay in relays:  # first: an open connection would keep the port from being bound again
                relay.close()
            if self.state != REFUSING:
                self._listener.close()
                self._listener = self._reserve(self.port)
            self.state = REFUSING

    def close(self) -> None:
        """Stop relaying and free the port (registered for cleanup by the steps)."""
        with self._lock:
            self._closed = True
            relays, self._relays = self._relays, []
            for relay in relays:
                relay.close()
            self._listener.close()
        self._thread.join(timeout=5)

    # -- the relay -------------------------------------------------------------------
    @staticmethod
    def _reserve(port: int) -> socket.socket:
        """A socket bound to the port but not listening: connecting to it is refused.

        Non-blocking, and polled rather than waited on with select(): a thread inside
        select() keeps a closed listener alive, and its port could not be bound again.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.setblocking(False)
        return sock

    def _accept_loop(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                if self.state == REFUSING:
                    client = None
                else:
                    try:
                        client, _ = self._listener.accept()
                    except OSError:  # nothing waiting (BlockingIOError), or just closed
                        client = None
            if client is None:
                time.sleep(_POLL_S / 2)
                continue
            client.setblocking(True)
            self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        upstream = None
        if self.state == FORWARDING:
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                return
        relay = _Relay(client, upstream)
        with self._lock:
            if self.state == REFUSING:  # switched while connecting
                relay.close()
                return
            self._relays.append(relay)
        if upstream is not None:
            threading.Thread(target=self._pump, args=(relay,), daemon=True).start()

    def _pump(self, relay: _Relay) -> None:
        assert relay.upstream is not None
        peer = {relay.client: relay.upstream, relay.upstream: relay.client}
        while not relay.closed:
            if self.state != FORWARDING:
                time.sleep(_POLL_S)  # frozen: leave the bytes where they are
                continue
            try:
                ready, _, _ = select.select(list(peer), [], [], _POLL_S)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError("one side closed")
                    peer[sock].sendall(data)
            except (OSError, ValueError):
                relay.close()
                return


# -- a scenario's link -------------------------------------------------------------------
def scenario_link(world: ScenarioWorld) -> DatabaseLink:
    """The scenario's link to its database, made (forwarding) on first use and closed after the scenario."""
    link = world.facts.get("database_link")
    if link is None:
        link = DatabaseLink(world.database_url)
        link.forward()
        world.cleanup.closeable(link, f"the database link on port {link.port}")
        world.facts["database_link"] = link
    return link


def through_link(world: ScenarioWorld, **env: str) -> PgshipCli:
    """The scenario's pgship, pointed at the database through the link, with ``env`` added."""
    return replace(world.cli, database_url=scenario_link(world).url, env={**world.cli.env, **env})
