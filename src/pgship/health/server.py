"""The HTTP front of ``pgship serve``: uvicorn, guarded against hostile clients.

A load balancer's probe must keep getting answers while someone holds connections
open, sends a request a byte at a time, or sends a huge header. uvicorn with
httptools (the fast parser) has no header deadline and no header size limit: a
half-sent request is never timed out, enough of them exhaust the file descriptors,
and one 64 MiB header is parsed (slowly) into memory. :class:`GuardedHttpToolsProtocol`
is uvicorn's own httptools protocol with these limits added (:class:`~pgship.health.limits.ServerLimits`):

* a **request deadline**: from when a connection opens, or its previous response is
  sent, the client has ``header_timeout_s`` to deliver a complete request (line,
  headers, any body). A request begun but not finished by then gets ``408`` and the
  connection is closed; a connection that sent nothing is closed silently;
* a **head size limit**: a request line plus headers over ``max_header_bytes`` gets
  ``431`` and the connection is closed. At most the limit plus one socket read is ever
  buffered for it; the rest of what the client sends is discarded while the answer is
  on its way (a "lingering close": closing with unread data would reset the connection
  and lose the 431);
* a **write deadline**: a client that stops reading its answers (so they pile up in the
  buffers) has the same ``header_timeout_s`` to start reading again, or is cut off;
* a **connection cap**: with ``max_connections`` open, a new connection makes the
  server close the one that has waited longest for a complete request. A probe sends
  its whole request at once, so it is never the oldest waiter: a flood of slow
  clients evicts itself, and accepting never fails for want of file descriptors.

All waiting connections sit in one insertion-ordered dict, oldest first, so the
deadline sweep (a few times a second) and the eviction cost O(1) per connection; a
request costs two dict operations and no timer.

The limits and their defaults live in :mod:`pgship.health.limits` (light: the CLI
reads them on every start); so does :func:`~pgship.health.limits.raise_fd_limit`, which
``pgship serve`` calls at start-up, keeping the cap below the new limit.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pgship.health.limits import ServerLimits

log = logging.getLogger("pgship.health")

#: How long a connection answered 431 is drained, or one closed by the guard may flush, before an abort.
LINGER_S = 2.0
#: At most one summary of closed hostile connections per this many seconds in the log.
REPORT_EVERY_S = 60.0


def _response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


TIMED_OUT = _response(b"408 Request Timeout", b"Request Timeout: the request was not sent in time\n")
HEAD_TOO_LARGE = _response(b"431 Request Header Fields Too Large", b"Request Header Fields Too Large\n")


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose head is over the limit."""


class ConnectionGuard:
    """The state shared by one server's connections: who waits for a request, since when."""

    def __init__(self, limits: ServerLimits, max_connections: int) -> None:
        self.limits = limits
        self.max_connections = max_connections
        self.waiting: dict[GuardedHttpToolsProtocol, float] = {}  # oldest first
        self.stalled: dict[GuardedHttpToolsProtocol, float] = {}  # not reading its answers; oldest first
        self.lingering: dict[GuardedHttpToolsProtocol, None] = {}  # answered 431, draining; oldest first
        self.open = 0
        self.closed = {"timed_out": 0, "too_large": 0, "stalled": 0, "evicted": 0}
        self._reported = dict(self.closed)
        self._last_report = -math.inf
        self._sweeping: asyncio.TimerHandle | None = None
        self._interval = min(0.25, limits.header_timeout_s / 4)

    # -- bookkeeping, called by the protocol ---------------------------------------
    def admit(self, conn: GuardedHttpToolsProtocol) -> None:
        self.open += 1
        if self.open > self.max_connections:
            if self.waiting:
                self.closed["evicted"] += 1
                next(iter(self.waiting)).close_waiting()
            elif self.stalled or self.lingering:
                self.closed["evicted"] += 1
                next(iter(self.stalled or self.lingering)).cut_off()
        self.wait(conn)

    def wait(self, conn: GuardedHttpToolsProtocol) -> None:
        self.waiting[conn] = conn.loop.time()
        self._keep_sweeping(conn.loop)

    def stall(self, conn: GuardedHttpToolsProtocol) -> None:
        """The client stopped reading: its answers fill the buffers. Same deadline as a request."""
        self.stalled[conn] = conn.loop.time()
        self._keep_sweeping(conn.loop)

    def _keep_sweeping(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeping is None:
            self._sweeping = loop.call_later(self._interval, self._sweep, loop)

    def forget(self, conn: GuardedHttpToolsProtocol) -> None:
        """The guard is closing ``conn``: no deadline or eviction applies to it any more."""
        self.waiting.pop(conn, None)
        self.stalled.pop(conn, None)
        self.lingering.pop(conn, None)

    def served(self, conn: GuardedHttpToolsProtocol) -> None:
        self.waiting.pop(conn, None)

    def gone(self, conn: GuardedHttpToolsProtocol) -> None:
        self.open -= 1
        self.forget(conn)

    # -- the deadline ----------------------------------------------------------------
    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeping = None
        cutoff = loop.time() - self.limits.header_timeout_s
        for conn in _older_than(self.waiting, cutoff):
            self.closed["timed_out"] += 1
            conn.close_waiting()
        for conn in _older_than(self.stalled, cutoff):
            self.closed["stalled"] += 1
            conn.cut_off()
        self._report(loop.time())
        if self.waiting or self.stalled:
            self._sweeping = loop.call_later(self._interval, self._sweep, loop)

    def _report(self, now: float) -> None:
        if self.closed == self._reported or now - self._last_report < REPORT_EVERY_S:
            return
        new = {kind: self.closed[kind] - self._reported[kind] for kind in self.closed}
        log.warning(
            "closed client connections: %d without a complete request within %g s, "
            "%d with a request head over %d bytes, %d not reading their answers, "
            "%d evicted at %d open connections",
            new["timed_out"],
            self.limits.header_timeout_s,
            new["too_large"],
            self.limits.max_header_bytes,
            new["stalled"],
            new["evicted"],
            self.max_connections,
        )
        self._reported = dict(self.closed)
        self._last_report = now


def _older_than(
    since: dict[GuardedHttpToolsProtocol, float], cutoff: float
) -> list[GuardedHttpToolsProtocol]:
    """The entries stamped at or before ``cutoff``: a prefix, as the dict is in time order."""
    late = []
    for conn, stamp in since.items():
        if stamp > cutoff:
            break
        late.append(conn)
    return late


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request deadline, a head size limit and a connection cap."""

    guard_of_server: ClassVar[ConnectionGuard]  # set on the class :func:`protocol_factory` returns

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.max_header_bytes = guard.limits.max_header_bytes
        self._head_open = False  # a request has begun and its head is not complete
        self._head_bytes = 0  # bytes of the open head read so far (an upper bound)
        self._began_here = False  # the open head began in the read being parsed
        self._tail = b""  # the last 3 bytes of the previous read (a CRLFCRLF may straddle reads)
        self._chunk = 0  # the size of the read being parsed
        self._refused = False  # a head over the limit: what follows is discarded, 431 is the answer
        self._answer_pending = False  # the 431 waits for earlier pipelined requests' answers
        self._running: Any = None  # the request whose answer is being sent (pipelining: not self.cycle)

    # -- asyncio.Protocol --------------------------------------------------------------
    # as uvicorn's own: asyncio.Transport, narrower than asyncio.BaseProtocol's BaseTransport
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.guard.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.gone(self)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.guard.stall(self)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.guard.stalled.pop(self, None)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own data_received, but a head over the limit is answered 431 (not 400 and a warning).
        if self._refused:
            return  # lingering after a 431: drain, never parse
        self._unset_keepalive_if_required()
        self._chunk = len(data)
        self._began_here = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse()
                return
            self._invalid()
            return
        except httptools.HttpParserError:
            self._invalid()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._head_open:
            if self._began_here:
                # The open head contains no CRLFCRLF, so it starts after the last one in this read
                # (the end of the previous request), or at the read's start if there is none.
                end = (self._tail + data).rfind(b"\r\n\r\n")
                self._head_bytes = len(data) - (end + 4 - len(self._tail)) if end >= 0 else len(data)
            else:
                self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse()
                return
        self._tail = data[-3:]

    def _invalid(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._head_bytes = 0
        self._began_here = True

    def on_headers_complete(self) -> None:
        self._head_open = False
        # Cheap bound first: the head is at most what was read since it began plus this read.
        limit = self.max_header_bytes
        if self._head_bytes + self._chunk > limit and self._head_size() > limit:
            raise HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.guard.served(self)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._refused:
            if self._answer_pending and self.cycle.response_complete:
                self._answer_too_large()
        elif not self.pipeline:
            self.guard.wait(self)  # the next request's deadline starts now

    # -- closing -----------------------------------------------------------------------
    def _head_size(self) -> int:
        return len(self.url) + 12 + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def cut_off(self) -> None:
        """Abort a connection whose client does not read its answers (close() would wait for it)."""
        self.guard.forget(self)
        if self._running is not None:
            self._running.disconnected = True  # its answer is dropped, not written to a closed transport
        self.transport.abort()

    def close_waiting(self) -> None:
        """Deadline passed or evicted: 408 if a request had begun, then close.

        close() sends what is buffered first; a client that reads nothing would keep the
        connection that way, so an abort follows if it is still open a moment later.
        """
        self.guard.forget(self)
        if self.transport.is_closing():
            return
        if self._head_open or (self.cycle is not None and not self.cycle.response_started):
            self.transport.write(TIMED_OUT)
        self.transport.close()
        self.loop.call_later(LINGER_S, self.cut_off)

    def _refuse(self) -> None:
        """431 (after the answers to earlier pipelined requests), then drain the client's input.

        Draining for a moment keeps the answer from being lost: closing a socket with unread
        input resets the connection, and the client would never read its 431.
        """
        self._refused = True
        self._head_open = False
        self.guard.closed["too_large"] += 1
        self.guard.waiting.pop(self, None)
        self.guard.lingering[self] = None
        self.flow.resume_reading()
        if self.cycle is not None and not self.cycle.response_complete:
            self._answer_pending = True  # on_response_complete sends it: answers go out in order
            return
        self._answer_too_large()

    def _answer_too_large(self) -> None:
        self._answer_pending = False
        self.transport.write(HEAD_TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.cut_off)  # the answer was read by now, or never will be


def protocol_factory(limits: ServerLimits, max_connections: int) -> Any:
    """The ``http`` class to give ``uvicorn.Config``: the guarded protocol bound to one guard."""
    guard = ConnectionGuard(limits, max_connections)

    class Guarded(GuardedHttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, guard=guard, **kwargs)

    Guarded.guard_of_server = guard
    return Guarded


__all__ = [
    "ConnectionGuard",
    "GuardedHttpToolsProtocol",
    "protocol_factory",
]
