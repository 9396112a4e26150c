"""Stop signals (SIGINT, SIGTERM) around a run: holding them while a report is written, telling a
signal from the database error it caused, and finding out what an interrupted run left committed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from pgship import history as tracking
from pgship.database import one_row
from pgship.failures import first_line

if TYPE_CHECKING:
    import psycopg

    from pgship.history import TrackingTable

_STOP_SIGNALS = ("SIGINT", "SIGTERM")


def signalled(exc: BaseException) -> bool:
    """Whether a stop signal (raised as KeyboardInterrupt) is what really ended this database error.

    A signal that lands while psycopg is inside a pipeline interrupts it; leaving the pipeline then
    fails with "cannot exit pipeline mode while busy", an error that hides the interrupt behind it.
    """
    seen: set[int] = set()
    cause = exc.__context__ or exc.__cause__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__context__ or cause.__cause__
    return False


def hold_signals() -> None:
    """Hold SIGINT and SIGTERM (main thread): once a run is decided, its report must come out whole."""
    import signal

    with suppress(ValueError, AttributeError):
        signal.pthread_sigmask(signal.SIG_BLOCK, {getattr(signal, name) for name in _STOP_SIGNALS})


def release_held_signals() -> bool:
    """Let signals through again; True if one arrived while held (it is consumed, not delivered)."""
    import signal

    stops = {getattr(signal, name) for name in _STOP_SIGNALS}
    arrived = False
    with suppress(ValueError, AttributeError):
        if signal.pthread_sigmask(signal.SIG_BLOCK, set()) & stops:  # held at the moment
            while signal.sigtimedwait(stops, 0) is not None:
                arrived = True
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    return arrived


@contextmanager
def signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM must not cut short the check of what the first one left."""
    import signal

    saved = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        with suppress(ValueError):  # not the main thread
            saved[signum] = signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


#: What :func:`settle` needs of a connection, noted while it works: its backend's pid, DSN and password.
Reconnect = tuple[int, str, "bytes | None"]


def reconnect_info(conn: psycopg.Connection) -> Reconnect:
    return (conn.info.backend_pid, conn.info.dsn, conn.pgconn.password)


def settle(
    conn: psycopg.Connection, reconnect: Reconnect, table: TrackingTable | None
) -> tuple[set[str] | None, str]:
    """Versions recorded once ``conn``'s backend is gone, or None and why it could not be told.

    The signal may land after COMMIT was sent (pipelining) or after the server answered it but
    before this process noted it. So: cancel what runs, close the connection, wait until the
    server has finished with that backend (its transaction is then committed or rolled back),
    and read the tracking table (``table``, resolved; None: not located yet) on a fresh connection.
    ``reconnect`` was taken from ``conn`` while it was healthy (:func:`reconnect_info`).
    """
    import psycopg

    backend_pid, dsn, password = reconnect
    with suppress(Exception):
        conn.cancel_safe(timeout=5)
    with suppress(Exception):
        conn.close()
    try:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": 10}
        if password:
            kwargs["password"] = password.decode()
        with psycopg.connect(dsn, **kwargs) as fresh:
            deadline = time.monotonic() + 30
            while one_row(
                fresh.execute("SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = %s)", (backend_pid,))
            )[0]:
                if time.monotonic() > deadline:
                    return None, f"backend {backend_pid} is still running"
                time.sleep(0.02)
            if table is None:
                return set(), ""
            return tracking.recorded_versions(fresh, table), ""
    except psycopg.Error as exc:
        return None, first_line(exc, "no connection")
