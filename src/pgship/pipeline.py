"""Statements pipelined on the connection's libpq handle: one round trip, one protocol message per
statement, and the results kept in order. A statement is a text, or one prepared by :func:`prepare`
and run by name with its values (:class:`Prepared`).

On the wire this is what ``with conn.pipeline(): conn.execute(...)`` sends (each statement an
extended-protocol message without parameters, then one Sync), so the server runs them identically
and ``pg_stat_activity`` shows the statement running. What it saves is psycopg's cursor machinery
for each statement, which cost more CPU than the round trip itself. It goes through
``conn.pgconn`` and :mod:`psycopg.pq` (psycopg's documented low-level interface) and waits with
``conn.wait``, so a stop signal cancels the query as psycopg's own ``execute`` does.

The server stops at the first error: that statement's result is the error, every later one is
``PIPELINE_ABORTED`` (:attr:`Outcome.failed_at`). A connection lost midway keeps the results that
arrived before it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg.abc import PQGen
    from psycopg.pq.abc import PGconn, PGresult


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement prepared by :func:`prepare`, run by name with ``params`` (text, or None for NULL)."""

    name: bytes
    params: tuple[bytes | None, ...]


@dataclass
class Outcome:
    """One result per statement that answered, and the first error, if any."""

    results: list[PGresult]
    error: psycopg.Error | None = None
    failed_at: int | None = None  # the index of the statement whose result is the error

    @property
    def completed(self) -> int:
        """How many statements completed without error (they ran in order).

        Counted from the results' statuses, not their number: with the connection lost, libpq may
        answer every statement still queued with an error of its own.
        """
        from psycopg import pq

        done = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.EMPTY_QUERY)
        for index, result in enumerate(self.results):
            if result.status not in done:
                return index
        return len(self.results)

    def rows(self, index: int, encoding: str) -> Iterator[tuple[str | None, ...]]:
        """The rows of statement ``index``'s result, every value as text (or None for NULL)."""
        result = self.results[index]
        for row in range(result.ntuples):
            values = (result.get_value(row, column) for column in range(result.nfields))
            yield tuple(None if value is None else bytes(value).decode(encoding) for value in values)


def run(conn: psycopg.Connection, statements: Sequence[str | Prepared], encoding: str) -> Outcome:
    """Pipeline ``statements`` (texts without parameters, or :class:`Prepared`) and a Sync; return
    every result, errors included.

    A server error or a lost connection is returned, not raised; a stop signal (KeyboardInterrupt)
    propagates once psycopg has cancelled what runs.
    """
    commands = [s.encode(encoding) if isinstance(s, str) else s for s in statements]
    return _run(conn, commands, encoding)


def prepare(conn: psycopg.Connection, statements: Mapping[str, str], encoding: str) -> Outcome:
    """Prepare each of ``statements`` (name: text) as a named statement, in one round trip."""
    commands = [_Parse(name.encode(encoding), text.encode(encoding)) for name, text in statements.items()]
    return _run(conn, commands, encoding)


@dataclass(frozen=True, slots=True)
class _Parse:
    name: bytes
    text: bytes


def _run(conn: psycopg.Connection, commands: Sequence[bytes | Prepared | _Parse], encoding: str) -> Outcome:
    import psycopg
    from psycopg import errors, pq

    results: list[PGresult] = []
    with conn.lock:
        pgconn = conn.pgconn
        if conn.closed or conn.broken:
            return Outcome(results, psycopg.OperationalError("the connection is closed"))
        pgconn.enter_pipeline_mode()
        try:
            conn.wait(_exchange(pgconn, commands, results))
        except psycopg.Error as exc:
            return Outcome(results, exc)
        finally:
            if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status != pq.PipelineStatus.OFF:
                with suppress(psycopg.Error):  # uncollected results after an interrupt: it is closed next
                    pgconn.exit_pipeline_mode()
    for index, result in enumerate(results):
        if result.status == pq.ExecStatus.FATAL_ERROR:
            return Outcome(results, errors.error_from_result(result, encoding=encoding), index)
    return Outcome(results)


def _exchange(
    pgconn: PGconn, commands: Sequence[bytes | Prepared | _Parse], into: list[PGresult]
) -> PQGen[None]:
    """Queue the commands and a Sync, then flush while reading, until the Sync's result arrives.

    Reading while flushing means a server blocked on writing results never deadlocks us.
    """
    import psycopg
    from psycopg import pq
    from psycopg.waiting import Ready, Wait

    for command in commands:
        if isinstance(command, bytes):
            pgconn.send_query_params(command, None)
        elif isinstance(command, Prepared):
            pgconn.send_query_prepared(command.name, command.params)
        else:
            pgconn.send_prepare(command.name, command.text)
    pgconn.pipeline_sync()
    flushed = pgconn.flush() == 0
    first: PGresult | None = None  # the current statement's result
    while True:
        ready = yield (Wait.R if flushed else Wait.RW)
        if ready & Ready.W:
            flushed = pgconn.flush() == 0
        if not ready & Ready.R:
            continue
        pgconn.consume_input()
        ended = False
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:  # the end of one statement's results
                if ended:
                    break  # nothing more until the server sends more
                ended = True
                if first is not None:
                    into.append(first)
                    first = None
                continue
            ended = False
            status = result.status
            if status == pq.ExecStatus.PIPELINE_SYNC:
                return
            if status in (pq.ExecStatus.COPY_IN, pq.ExecStatus.COPY_OUT, pq.ExecStatus.COPY_BOTH):
                raise psycopg.NotSupportedError("COPY to or from the client cannot run in a migration")
            if first is None:
                first = result
