"""Which lock a run takes, and on which connection: decided from how the connection reaches its server.

Two locks sit behind one decision:

* the **advisory lock** (:func:`hold_advisory_lock`, through :meth:`pgship.runner.Runner.advisory_lock`):
  session-level, on a
  connection that keeps one server backend (direct, or a pooler in *session* mode). It is what
  pgship always used, unchanged;
* the **lease** (:mod:`pgship.lease`): a row in ``<tracking table>_lease``, for a connection
  through a *transaction* pooler when no direct URL is available. Each transactional
  migration proves inside its own transaction that the run still holds it.

A pooler in *statement* mode cannot run a migration in a transaction at all: refused.

:func:`choose` is pure; :func:`hold_lease` does the waiting, renewing and releasing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgship.errors import LockNotAcquired, UsageError

if TYPE_CHECKING:
    import psycopg

    from pgship.history import TrackingTable
    from pgship.lease import Lease
    from pgship.pooler import ConnectionPath
    from pgship.runner import Runner

#: where the direct URL comes from when no --direct-url is given
DIRECT_URL_ENV = "PGSHIP_DIRECT_URL"

DIRECT_URL_HINT = (
    "Give pgship an address that reaches PostgreSQL without the pooler (--direct-url URL, or the "
    "PGSHIP_DIRECT_URL environment variable): the lock and no-transaction migrations need one server "
    "session."
)


@dataclass(frozen=True)
class ConnectionChoice:
    """What the run does about the path it found: which lock, and whether it moved to the direct URL."""

    path: ConnectionPath
    lock: str  # "advisory" | "lease"
    via_direct_url: bool = False

    @property
    def note(self) -> str:
        """One line for the text output; empty on a direct connection (nothing to say)."""
        if self.path.mode == "direct":
            return ""
        if self.via_direct_url:
            return (
                f"connection: through a {self.path.mode} pooler; taking the migration lock and running "
                "migrations on the direct URL"
            )
        if self.lock == "lease":
            return (
                "connection: through a transaction pooler (no session survives a transaction): locking with "
                "a lease row instead of an advisory lock; no-transaction migrations need --direct-url"
            )
        return f"connection: through a {self.path.mode} pooler that pins sessions: working as if direct"

    def to_json(self) -> dict[str, Any]:
        return {**self.path.to_json(), "lock": self.lock, "direct_url": self.via_direct_url}


def choose(path: ConnectionPath, *, direct_url: bool) -> ConnectionChoice:
    """The lock for ``path``; ``direct_url`` says a direct URL was given. Pure."""
    if path.mode == "statement":
        raise UsageError(
            "the database URL goes through a connection pooler in statement mode: it refuses "
            "transactions, and every migration needs one",
            hint="Point the URL at a pooler in transaction or session mode, or at PostgreSQL itself "
            "(--direct-url URL / PGSHIP_DIRECT_URL).",
        )
    if path.pinned:
        return ConnectionChoice(path, "advisory")
    if direct_url:
        return ConnectionChoice(path, "advisory", via_direct_url=True)
    return ConnectionChoice(path, "lease")


def refuse_no_transaction(files: list[str]) -> None:
    """Through a transaction pooler without a direct URL, a no-transaction migration cannot run."""
    if not files:
        return
    raise UsageError(
        f"{', '.join(files)} run{'s' if len(files) == 1 else ''} without a transaction "
        "(-- pgship:no-transaction), and this connection goes through a transaction pooler: its "
        "statements would land on different server sessions. Nothing was applied.",
        hint=DIRECT_URL_HINT,
    )


def _ensure_table(lease: Lease, conn: psycopg.Connection) -> None:
    import psycopg

    for attempt in range(3):
        try:
            lease.ensure_table(conn)
            return
        except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
            if attempt == 2:
                raise  # two runners created it at once: the second retry sees it


def _try_acquire(lease: Lease, conn: psycopg.Connection) -> bool:
    import psycopg

    try:
        return lease.try_acquire(conn)
    except psycopg.errors.LockNotAvailable:  # a migration of the holder is committing: still held
        return False


@contextlib.contextmanager
def hold_lease(
    lease: Lease,
    conn: psycopg.Connection,
    *,
    wait_s: float,
    connect: Callable[[], psycopg.Connection],
    on_wait: Callable[[str], None],
    on_acquired: Callable[[], None],
) -> Iterator[None]:
    """Take ``lease`` (polling up to ``wait_s``), renew it in the background, release it at the end.

    Raises :class:`LockNotAcquired` (exit 4) naming the holder when it stays taken.
    """
    _ensure_table(lease, conn)
    started = time.monotonic()
    delay = 0.05
    announced = False
    while not _try_acquire(lease, conn):
        waited = time.monotonic() - started
        holder = lease.current_holder(conn)
        who = f": {holder.describe()}" if holder else ""
        if waited >= wait_s:
            raise LockNotAcquired(
                f"another migration run held the migration lease ({lease.table}) for the whole wait "
                f"({wait_s:.0f} s){who}",
                hint="Let the other deploy finish and run again, or wait longer with --lock-wait. A runner "
                "that died stops renewing: its lease expires after --lease-ttl seconds.",
            )
        if not announced:
            on_wait(f"waiting for another migration run to finish (lease{who.replace(':', '', 1)})")
            announced = True
        time.sleep(min(delay, max(wait_s - waited, 0.01)))
        delay = min(delay * 1.5, 1.0)
    on_acquired()
    lease.start_renewing(connect)
    try:
        yield
    finally:
        lease.stop_renewing()
        if not conn.closed and not conn.broken:
            with contextlib.suppress(Exception):
                lease.release(conn)


@contextlib.contextmanager
def hold_advisory_lock(
    conn: psycopg.Connection,
    table: TrackingTable,
    *,
    wait_s: float,
    on_wait: Callable[[str], None],
    on_acquired: Callable[[], None],
) -> Iterator[None]:
    """Hold the session-level advisory lock of ``table`` (resolved), polling for it up to ``wait_s``.

    It polls ``pg_try_advisory_lock`` so a waiting runner never sits inside a transaction (``CREATE
    INDEX CONCURRENTLY`` would otherwise wait for it, and it for the index). Raises
    :class:`LockNotAcquired` (exit 4) naming the holder when it stays taken.
    """
    from pgship.database import one_row

    key = table.lock_key
    started = time.monotonic()
    delay = 0.05
    announced = False
    while not one_row(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)))[0]:
        waited = time.monotonic() - started
        holder = advisory_lock_holder(conn, key)
        if waited >= wait_s:
            raise LockNotAcquired(
                f"another migration run held the lock on {table} for the whole wait "
                f"({wait_s:.0f} s){': ' + holder if holder else ''}",
                hint="Let the other deploy finish and run again, or wait longer with --lock-wait.",
            )
        if not announced:
            on_wait(f"waiting for another migration run to finish{': ' + holder if holder else ''}")
            announced = True
        time.sleep(min(delay, max(wait_s - waited, 0.01)))
        delay = min(delay * 1.5, 1.0)
    on_acquired()
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def advisory_lock_holder(conn: psycopg.Connection, key: int) -> str:
    """Who holds the advisory lock ``key``, in words; empty if nobody (any more)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = conn.execute(
        "SELECT l.pid, a.application_name, now() - a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return ""
    pid, application, age = row
    seconds = int(age.total_seconds()) if age is not None else 0
    return f"held by backend pid {pid} ({application or 'unknown application'}, connected {seconds} s ago)"


def holder() -> str:
    """Who holds a lease, in another runner's wait message: process, user and host."""
    try:
        import getpass  # termios and pwd: only when the name is needed

        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"pgship pid {os.getpid()} ({user}@{socket.gethostname()})"


@contextlib.contextmanager
def locking_runner(
    conn: psycopg.Connection,
    *,
    url: str | None,
    direct_url: str | None,
    table: TrackingTable,
    lease_ttl_s: float,
    make_runner: Callable[..., Runner],
    on_choice: Callable[[ConnectionChoice], None],
    named: bool = True,
    wait_s: float = 0.0,
) -> Iterator[tuple[Runner, psycopg.Connection]]:
    """A runner for a command that takes the migration lock, on the right connection, with the right lock.

    It first finds out how ``conn`` reaches the server (:func:`pgship.pooler.detect`: one query when
    direct). Through a transaction pooler it moves to ``direct_url`` if given (a connection of its
    own, closed at the end), and otherwise locks with a lease and keeps no session state. Statement
    pooling is refused (exit 2). ``make_runner(conn, **locking)`` builds the runner.
    """
    from pgship.database import connect
    from pgship.pooler import detect

    path = detect(conn, lambda: connect(url, named=named, pooled=True))
    choice = choose(path, direct_url=direct_url is not None)
    on_choice(choice)
    if choice.via_direct_url:
        with connect(direct_url, wait_s=wait_s) as direct:
            yield make_runner(direct), direct
        return
    if choice.lock == "lease":
        from pgship.lease import Lease  # secrets and threading: only through a pooler

        conn.prepare_threshold = None
        lease = Lease(table, holder=holder(), ttl_s=lease_ttl_s)
        yield (
            make_runner(conn, lease=lease, lease_connect=lambda: connect(url, named=named, pooled=True)),
            conn,
        )
        return
    yield make_runner(conn), conn
