"""Knowing whether a connection goes through a transaction pooler, before trusting the session.

A session advisory lock, ``SET`` and server-side prepared statements all belong to one
server backend. A transaction pooler (PgBouncer with ``pool_mode = transaction``)
hands each transaction to whichever backend is free, so the lock taken in one
transaction may sit on a backend that another client uses next, and a ``SET`` made
outside a transaction lands nowhere in particular. pgship therefore finds out where
it is before it takes its lock:

1. **Direct?** The server reports the client address and port it sees
   (``inet_client_addr()``, ``inet_client_port()``). When they are this socket's own
   local address and port, nothing sits in between: the connection is *direct*, and
   the check cost nothing but a column in a query pgship runs anyway. A Unix socket
   seen as a Unix socket by the server counts as direct too.
2. **Something in between**: a second connection probes it. It opens a transaction
   and asks for its backend's pid while the first connection is idle. A pooler that
   pins sessions (PgBouncer's ``session`` mode, a plain TCP proxy) can never give the
   second client the first one's backend; a transaction pooler reuses the idle
   backend at once (PgBouncer picks the most recently used one), so the same pid
   proves *transaction* pooling, and so does the first connection's pid changing.
   A second pattern does not depend on which idle backend the pooler picks: both
   connections hold a transaction (two backends), the probe's ends last, and this
   connection's next statement lands on the backend freed most recently, the
   probe's, under a transaction pooler. A pooler that refuses ``BEGIN`` is in
   *statement* mode. Five rounds without any sign mean the session is pinned.

What the runner does with each answer is its business (:mod:`pgship.lease`); this
module only observes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import psycopg

Mode = Literal["direct", "session", "transaction", "statement"]

#: the modes where one client connection keeps one server backend
PINNED: frozenset[str] = frozenset({"direct", "session"})

_PROBE_ROUNDS = 5


@dataclass(frozen=True)
class ConnectionPath:
    """How this client reaches its server backend, and how pgship found out."""

    mode: Mode
    reason: str

    @property
    def pinned(self) -> bool:
        """True when every transaction of the connection runs on the same backend."""
        return self.mode in PINNED

    def to_json(self) -> dict[str, str | bool]:
        return {"mode": self.mode, "pinned": self.pinned, "reason": self.reason}


def is_direct(server_addr: str | None, server_port: int | None, local: object, family: int) -> bool:
    """Pure part of step 1: does the peer the server sees equal this socket's local end?"""
    if family == socket.AF_UNIX:
        return server_addr is None
    if server_addr is None or server_port is None or not isinstance(local, tuple) or len(local) < 2:
        return False
    local_addr, local_port = str(local[0]), int(local[1])
    if local_addr.startswith("::ffff:"):
        local_addr = local_addr[len("::ffff:") :]
    server = server_addr.split("/")[0]
    if server.startswith("::ffff:"):
        server = server[len("::ffff:") :]
    return local_port == server_port and local_addr == server


def _backend_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_backend_pid()", prepare=False).fetchone()
    return int(row[0]) if row else -1


def _direct(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT inet_client_addr()::text, inet_client_port()", prepare=False).fetchone()
    addr, port = (row[0], row[1]) if row else (None, None)
    fd = conn.pgconn.socket
    sock = socket.socket(fileno=fd)
    try:
        family, local = sock.family, sock.getsockname()
    finally:
        sock.detach()  # the socket is libpq's: never close it here
    return is_direct(addr, port, local, family)


def detect(conn: psycopg.Connection, connect_again: Callable[[], psycopg.Connection]) -> ConnectionPath:
    """Find out whether ``conn`` keeps one backend; ``connect_again`` opens a probe.

    Both connections must be in autocommit mode and idle.

    Costs one query when the connection is direct; otherwise one more short-lived connection.
    """
    import psycopg

    if _direct(conn):
        return ConnectionPath("direct", "the server sees this client's own address and port")
    with connect_again() as probe:
        for _ in range(_PROBE_ROUNDS):
            first = _backend_pid(conn)
            try:
                with probe.transaction():
                    second = _backend_pid(probe)
                    if second == first:
                        return ConnectionPath(
                            "transaction",
                            "a second client was given this connection's idle server backend "
                            f"(pid {first}): transactions are pooled",
                        )
                    again = _backend_pid(conn)
            except psycopg.errors.ProtocolViolation as exc:
                if "statement pooling" in str(exc):
                    return ConnectionPath("statement", "the pooler refuses transactions (statement pooling)")
                raise
            if again != first:
                return ConnectionPath(
                    "transaction",
                    f"this connection's server backend changed between transactions ({first} -> {again})",
                )
            # A second pattern that other clients of a busy pool cannot hide: both connections hold
            # a transaction (so they run on two backends), the probe's ends last, and the next
            # statement of this connection goes to the backend freed most recently: the probe's,
            # under a transaction pooler; always its own, when sessions are pinned.
            conn.execute("BEGIN", prepare=False)
            try:
                mine = _backend_pid(conn)
                with probe.transaction():
                    _backend_pid(probe)
                    conn.execute("COMMIT", prepare=False)
            finally:
                if conn.info.transaction_status != 0:  # IDLE
                    conn.execute("ROLLBACK", prepare=False)
            after = _backend_pid(conn)
            if after != mine:
                return ConnectionPath(
                    "transaction",
                    f"this connection's server backend changed between transactions ({mine} -> {after})",
                )
    return ConnectionPath(
        "session",
        "something sits between client and server (the server sees another address or port), "
        "but every transaction ran on the same backend: sessions are pinned",
    )
