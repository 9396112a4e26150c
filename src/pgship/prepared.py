"""The runner's own statements of every migration, prepared once per run on a direct connection.

Besides the file's statements, a migration's round trip carries pgship's own: the settings after
BEGIN, the tracking row, the guard, and after COMMIT the clean-session reset and the read-back. Sent
as texts, the server parsed, analysed and planned each of them anew for every migration: on a
release of small migrations that was most of the server's time that was pgship's rather than the
files' (measured with ``perf`` on the server, docs/PERFORMANCE.md). Prepared once per run as named
statements, a migration only binds its values, and the server plans each at most a few times.

* Through a transaction pooler nothing is prepared (a statement prepared on one server connection is
  not there on the next): the texts are sent as they are (:mod:`pgship.apply`).
* The names carry a random part, so a migration's own ``PREPARE`` cannot collide with them.
* A migration may drop them (``DEALLOCATE ALL``). Its round trip then fails at the runner's first
  prepared statement after the file's with SQLSTATE 26000 (:data:`DROPPED`); the applier rolls it
  back, applies the same migration again with the texts, and prepares afresh, under new names, for
  the next one.
* A migration that replaced one of them on purpose (``DEALLOCATE`` the name, then ``PREPARE`` another
  statement with the same name and parameter types) could defeat the guard. So could a superuser
  migration in many other ways (replacing a function in ``pg_catalog``, say); the guard is there for
  migrations that release the lock or touch the tracking table by mistake, not to contain a hostile
  superuser.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pgship import guard, session
from pgship import history as tracking
from pgship.pipeline import Prepared

if TYPE_CHECKING:
    import psycopg

    from pgship.history import KnownRows, TrackingTable

#: SQLSTATE invalid_sql_statement_name: a prepared statement of the runner's was dropped
DROPPED = "26000"


class OwnStatements:
    """The statements for one run and one tracking table: their texts, then each migration's values."""

    def __init__(
        self,
        table: TrackingTable,
        conn: psycopg.Connection,
        *,
        oid: int,
        lock_held: str,
        statement_timeout_s: float | None,
        encoding: str,
        reset: list[str],
    ) -> None:
        self.oid = oid  # the tracking table they were written for
        self.encoding = encoding
        prefix = f"pgship_{os.urandom(6).hex()}_"
        spellings = "$1, $2"  # the version as written and plain (history.version_spellings)
        self.texts = {
            prefix + "begin": session.settings_sql(
                "$1", statement_timeout_s, also=guard.counts_at_begin(oid)
            ),
            prefix + "record": tracking.prepared_record_sql(table, conn),
            prefix + "guard": guard.guard_sql(
                lock_held, oid, "$3::pg_catalog.oid", tracking.others_sum_sql(table, spellings), "$4"
            ),
            prefix + "readback": tracking.readback_query(table, spellings, oid),
        }
        self._begin, self._record, self._guard, self._readback = (n.encode() for n in self.texts)
        # the clean-session reset after COMMIT: utility statements, parsed once too
        resets = {f"{prefix}reset{i}": text for i, text in enumerate(reset)}
        self.texts.update(resets)
        self.reset = [Prepared(name.encode(), ()) for name in resets]

    def _values(self, *values: str | None) -> tuple[bytes | None, ...]:
        return tuple(None if v is None else v.encode(self.encoding) for v in values)

    def begin(self, lock_timeout_s: float) -> Prepared:
        """The settings after BEGIN (:func:`pgship.session.settings_sql`)."""
        return Prepared(self._begin, (f"{int(lock_timeout_s * 1000)}ms".encode(),))

    def record(self, *, version: str, name: str, checksum: str | None, applied_by: str) -> Prepared:
        """The tracking row (:func:`pgship.history.prepared_record_sql`)."""
        plain = tracking.plain_version(version)
        return Prepared(self._record, self._values(version, plain, name, checksum, applied_by, version))

    def guard(self, own: tuple[str, str], rows: KnownRows) -> Prepared:
        """The guard (:func:`pgship.guard.guard_sql`) with what the run knows of the other rows."""
        return Prepared(self._guard, self._values(*own, str(rows.filenode), str(rows.expected(own))))

    def readback(self, own: tuple[str, str]) -> Prepared:
        """The read-back after COMMIT (:func:`pgship.history.readback_query`)."""
        return Prepared(self._readback, self._values(*own))
