"""The migration lock without a session: a lease row, for connections through a transaction pooler.

Through PgBouncer in transaction mode a session advisory lock is taken on whichever
backend served that one statement, stays there after the client moves on, and may
then be "held" by an unrelated client (or by nobody pgship can reach). So where no
direct connection is available, pgship locks with a row instead:

* the lease table (``<tracking table>_lease``, next to the tracking table) holds at
  most one row per lock name, with the holder's random token and an expiry computed
  by the server's clock (``clock_timestamp()``), never the client's;
* **taking** it is one short transaction: insert the row, or take it over when the
  previous holder's lease has expired;
* **renewing** it runs on a connection of its own, every third of the lease, while
  the migrations run; a runner killed with SIGKILL stops renewing, and its lease
  expires after at most one lease length;
* **each migration proves it still holds the lease** inside its own transaction, just
  before COMMIT (:meth:`Lease.check_statement`): it extends the lease *and* keeps the
  row locked until that transaction ends, so no other runner can take the lease over
  between the check and the commit. A runner that lost its lease (paused past the
  expiry, for example) has that migration rolled back instead of applying it twice;
* **releasing** deletes the row (only if the token is still ours).

Every statement is an ordinary short transaction on plain tables: nothing here needs
a session, prepared statements or ``SET``.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgship.config import LEASE_TTL_S

if TYPE_CHECKING:
    import psycopg

    from pgship.history import TrackingTable

#: SQLSTATE of the error a migration raises when its run no longer holds the lease
LEASE_LOST_SQLSTATE = "PGL01"
DEFAULT_TTL_S = LEASE_TTL_S  # pgship.config owns the default
LOCK_NAME = "migrate"


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds the lease, as the table says."""

    holder: str
    seconds_left: float

    def describe(self) -> str:
        return f"held by {self.holder} (expires in {max(self.seconds_left, 0):.0f} s unless renewed)"


def lease_table(table: TrackingTable) -> TrackingTable:
    """The lease table that goes with a (schema-qualified) tracking table."""
    from pgship.history import TrackingTable

    return TrackingTable(name=f"{table.name}_lease", schema=table.schema)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Lease:
    """One run's claim on the lease for ``table``; ``holder`` says who we are in messages."""

    def __init__(self, table: TrackingTable, *, holder: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        if ttl_s <= 0:
            raise ValueError("the lease length must be positive")
        self.table = lease_table(table)
        self.holder = holder
        self.ttl_s = ttl_s
        self.token = secrets.token_hex(16)
        self.lost = threading.Event()
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()

    def rebind(self, table: TrackingTable) -> None:
        """Follow the tracking table once it is resolved (schema-qualified)."""
        self.table = lease_table(table)

    # -- the table ---------------------------------------------------------------------
    def ensure_table(self, conn: psycopg.Connection) -> bool:
        """Create the lease table if missing; True when it was created."""
        from psycopg import sql

        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (self.table.regclass_text(),), prepare=False
        ).fetchone()
        if exists and exists[0]:
            return False
        import psycopg

        statements = []
        if self.table.schema:  # a tracking table in a schema of its own: the first run creates both
            statements.append(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.table.schema))
            )
        statements.append(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, token text NOT NULL, "
                "holder text NOT NULL, acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(), "
                "expires_at timestamptz NOT NULL)"
            ).format(self.table.identifier())
        )
        created = True
        for statement in statements:
            # IF NOT EXISTS is not safe against a concurrent creator: two deploys starting together
            # can both pass the check, and the second then fails on the catalog's unique index
            # ("type ... already exists"). The other deploy made it: that is all this needs.
            try:
                with conn.transaction():
                    conn.execute(statement, prepare=False)
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject,
                    psycopg.errors.DuplicateTable, psycopg.errors.DuplicateSchema):  # fmt: skip
                created = False
        return created

    # -- taking, renewing, releasing ---------------------------------------------------
    @staticmethod
    def _write(conn: psycopg.Connection, query: Any, params: tuple[Any, ...]) -> tuple[Any, int]:
        """One short read-write transaction: ``(first row, rowcount)`` of ``query``.

        Through a transaction pooler the backend may carry another client's session-level
        ``default_transaction_read_only``, ``lock_timeout`` or ``statement_timeout``: the
        transaction sets its own. The row is locked only by a migration between its lease check
        and its COMMIT, so 5 s of lock wait is plenty; a longer wait raises ``LockNotAvailable``.
        """
        conn.execute("BEGIN READ WRITE", prepare=False)
        try:
            conn.execute("SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '30s'", prepare=False)
            cursor = conn.execute(query, params, prepare=False)
            row = cursor.fetchone() if cursor.description else None
            count = cursor.rowcount
            conn.execute("COMMIT", prepare=False)
        except BaseException:
            if not conn.closed and not conn.broken:
                with contextlib.suppress(Exception):
                    conn.execute("ROLLBACK", prepare=False)
            raise
        return row, count

    def try_acquire(self, conn: psycopg.Connection) -> bool:
        """One short transaction: take the lease if it is free or expired."""
        from psycopg import sql

        row, _ = self._write(
            conn,
            sql.SQL(
                "INSERT INTO {t} AS l (name, token, holder, expires_at) "
                "VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s)) "
                "ON CONFLICT (name) DO UPDATE SET token = excluded.token, holder = excluded.holder, "
                "acquired_at = clock_timestamp(), expires_at = excluded.expires_at "
                "WHERE l.expires_at < clock_timestamp() RETURNING l.token"
            ).format(t=self.table.identifier()),
            (LOCK_NAME, self.token, self.holder, self.ttl_s),
        )
        return bool(row and row[0] == self.token)

    def renew(self, conn: psycopg.Connection) -> bool:
        """Push the expiry out by one lease length; False when the lease is no longer ours."""
        from psycopg import sql

        _, count = self._write(
            conn,
            sql.SQL(
                "UPDATE {} SET expires_at = clock_timestamp() + make_interval(secs => %s) "
                "WHERE name = %s AND token = %s AND expires_at > clock_timestamp()"
            ).format(self.table.identifier()),
            (self.ttl_s, LOCK_NAME, self.token),
        )
        return count == 1

    def release(self, conn: psycopg.Connection) -> None:
        from psycopg import sql

        self._write(
            conn,
            sql.SQL("DELETE FROM {} WHERE name = %s AND token = %s").format(self.table.identifier()),
            (LOCK_NAME, self.token),
        )

    def current_holder(self, conn: psycopg.Connection) -> LeaseHolder | None:
        from psycopg import sql

        row = conn.execute(
            sql.SQL(
                "SELECT holder, extract(epoch FROM expires_at - clock_timestamp()) FROM {} WHERE name = %s"
            ).format(self.table.identifier()),
            (LOCK_NAME,),
            prepare=False,
        ).fetchone()
        if row is None:
            return None
        return LeaseHolder(str(row[0]), float(row[1]))

    def check_statement(self) -> str:
        """SQL a migration runs last in its transaction: fail unless this run still holds the lease.

        It also extends the lease and locks its row until the transaction ends, so the lease
        cannot pass to another runner between this check and the COMMIT.
        """
        table = self.table.identifier().as_string(None)
        return (
            "DO $pgship_lease$ BEGIN "
            f"UPDATE {table} SET expires_at = clock_timestamp() + make_interval(secs => {self.ttl_s!r}) "
            f"WHERE name = {_literal(LOCK_NAME)} AND token = {_literal(self.token)} "
            "AND expires_at > clock_timestamp(); "
            "IF NOT FOUND THEN RAISE EXCEPTION 'this run no longer holds the migration lease' "
            f"USING ERRCODE = {_literal(LEASE_LOST_SQLSTATE)}, "
            "HINT = 'Another deploy may have taken over after the lease expired; "
            "this migration was rolled back. Run pgship status, then deploy again.'; "
            "END IF; END $pgship_lease$"
        )

    # -- renewing in the background ----------------------------------------------------
    def start_renewing(self, connect: Callable[[], psycopg.Connection]) -> None:
        """Renew every third of the lease on a connection of its own until :meth:`stop_renewing`."""

        def renew_loop() -> None:
            conn: psycopg.Connection | None = None
            try:
                while not self._stop.wait(self.ttl_s / 3):
                    try:
                        if conn is None or conn.closed or conn.broken:
                            conn = connect()
                        if not self.renew(conn):
                            self.lost.set()
                            return
                    except Exception:
                        # a lost connection: try again next time; the lease lasts three periods
                        if conn is not None:
                            with contextlib.suppress(Exception):
                                conn.close()
                        conn = None
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()

        self._stop.clear()
        self._renewer = threading.Thread(target=renew_loop, name="pgship-lease", daemon=True)
        self._renewer.start()

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
            self._renewer = None
