"""Knowing a transaction pooler when we see one, and a lease lock that works through it.

Real PgBouncer (Debian's package, started by :mod:`pgship.testing.pgbouncer`) in front
of the embedded server, in each pool mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from pgship import lease as leases
from pgship.history import TrackingTable
from pgship.pooler import detect, is_direct
from pgship.testing.pgbouncer import PgBouncer

TABLE = TrackingTable(name="schema_migrations", schema="public")


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, prepare_threshold=None)


@pytest.fixture(scope="module", params=["transaction", "session", "statement"])
def bouncer(request, pg_server) -> Iterator[PgBouncer]:
    with PgBouncer(pg_server.admin_url, pool_mode=request.param) as running:
        yield running


@pytest.fixture(scope="module")
def transaction_bouncer(pg_server) -> Iterator[PgBouncer]:
    with PgBouncer(pg_server.admin_url, pool_mode="transaction") as running:
        yield running


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_direct_connection_is_recognised_without_a_probe(database_url):
    with _connect(database_url) as conn:
        path = detect(conn, lambda: pytest.fail("a direct connection must not need a probe"))
    assert path.mode == "direct"
    assert path.pinned


def test_each_pool_mode_is_recognised_through_pgbouncer(bouncer, database_url):
    url = bouncer.url_for(_dbname(database_url))
    with _connect(url) as conn:
        path = detect(conn, lambda: _connect(url))
    assert path.mode == bouncer.pool_mode, path.reason
    assert path.pinned is (bouncer.pool_mode == "session")


@pytest.mark.parametrize(
    ("server_addr", "server_port", "local", "expected"),
    [
        ("127.0.0.1/32", 5555, ("127.0.0.1", 5555), True),
        ("127.0.0.1/32", 5556, ("127.0.0.1", 5555), False),
        ("10.0.0.2/32", 5555, ("127.0.0.1", 5555), False),
        ("::ffff:127.0.0.1/128", 7, ("127.0.0.1", 7), True),
        (None, None, ("127.0.0.1", 7), False),
    ],
)
def test_direct_means_the_server_sees_this_sockets_own_address(server_addr, server_port, local, expected):
    import socket

    assert is_direct(server_addr, server_port, local, socket.AF_INET) is expected


def _lease(ttl_s: float = leases.DEFAULT_TTL_S, holder: str = "test") -> leases.Lease:
    return leases.Lease(TABLE, holder=holder, ttl_s=ttl_s)


def test_one_lease_at_a_time_through_a_transaction_pooler(transaction_bouncer, database_url):
    url = transaction_bouncer.url_for(_dbname(database_url))
    first, second = _lease(holder="first"), _lease(holder="second")
    with _connect(url) as a, _connect(url) as b:
        assert first.ensure_table(a) is True
        assert first.try_acquire(a)
        assert not second.try_acquire(b), "a second runner took a lease that was held"
        holder = second.current_holder(b)
        assert holder is not None and holder.holder == "first"
        assert first.renew(a)
        first.release(a)
        assert second.try_acquire(b), "a released lease could not be taken"
        assert not first.renew(a), "a runner renewed a lease it no longer holds"


def test_an_abandoned_lease_expires_and_never_earlier(database_url):
    dead, next_runner = _lease(ttl_s=1.0, holder="killed runner"), _lease(ttl_s=1.0, holder="next")
    with _connect(database_url) as conn:
        dead.ensure_table(conn)
        assert dead.try_acquire(conn)
        expired_at = conn.execute(
            "SELECT expires_at FROM public.schema_migrations_lease WHERE name = 'migrate'"
        ).fetchone()[0]
        deadline = time.monotonic() + 30  # a bound on the test, not an assertion on speed
        while not next_runner.try_acquire(conn):
            assert time.monotonic() < deadline, "an expired lease was never released"
            time.sleep(0.1)
        acquired_at = conn.execute(
            "SELECT acquired_at FROM public.schema_migrations_lease WHERE name = 'migrate'"
        ).fetchone()[0]
    assert acquired_at >= expired_at, "the lease passed to another runner before it expired"


def test_a_migration_of_a_run_that_lost_its_lease_is_rolled_back(database_url):
    stale, thief = _lease(ttl_s=0.2, holder="paused runner"), _lease(holder="other deploy")
    with _connect(database_url) as conn:
        stale.ensure_table(conn)
        assert stale.try_acquire(conn)
        conn.execute("CREATE TABLE applied_twice (id int)")
        deadline = time.monotonic() + 30
        while not thief.try_acquire(conn):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(psycopg.Error) as failure, conn.transaction():
            conn.execute("INSERT INTO applied_twice VALUES (1)")
            conn.execute(stale.check_statement())
        assert failure.value.sqlstate == leases.LEASE_LOST_SQLSTATE
        assert conn.execute("SELECT count(*) FROM applied_twice").fetchone()[0] == 0


def test_the_check_holds_the_lease_until_the_migration_commits(database_url):
    runner, other = _lease(ttl_s=0.5, holder="runner"), _lease(holder="other")
    with _connect(database_url) as conn, _connect(database_url) as rival:
        runner.ensure_table(conn)
        assert runner.try_acquire(conn)
        with conn.transaction():
            conn.execute(runner.check_statement())
            time.sleep(0.7)  # the lease's first expiry passes while the migration is still open
            rival.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.try_acquire(rival)  # waits for the migration's row lock instead of taking over


def test_renewing_in_the_background_keeps_the_lease(database_url):
    kept, rival = _lease(ttl_s=0.6, holder="long migration"), _lease(holder="rival")
    with _connect(database_url) as conn:
        kept.ensure_table(conn)
        assert kept.try_acquire(conn)
        kept.start_renewing(lambda: _connect(database_url))
        try:
            for _ in range(8):  # several lease lengths
                time.sleep(0.25)
                assert not rival.try_acquire(conn), "a lease that was being renewed expired"
        finally:
            kept.stop_renewing()
        assert not kept.lost.is_set()
        kept.release(conn)


def _create_lease_tables_at_once(database_url: str, table: TrackingTable, runners: int) -> list[object]:
    """``runners`` threads, each on its own connection, create ``table``'s lease table at one instant."""
    import threading

    contenders = [leases.Lease(table, holder=f"runner {i}") for i in range(runners)]
    connections = [_connect(database_url) for _ in contenders]
    start = threading.Barrier(runners)
    outcomes: list[object] = [None] * runners

    def create(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = contenders[index].ensure_table(connections[index])
        except Exception as exc:  # recorded, asserted by the caller
            outcomes[index] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for conn in connections:
        conn.close()
    return outcomes


def test_deploys_starting_together_create_the_lease_table_once_without_an_error(database_url):
    """CREATE TABLE IF NOT EXISTS races with itself; two deploys must not fail on "type ... exists"."""
    for round_ in range(5):
        table = TrackingTable(name=f"race_{round_}_migrations", schema="public")
        outcomes = _create_lease_tables_at_once(database_url, table, 6)
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert not errors, errors
        assert outcomes.count(True) >= 1
