"""The guard's lock check against a real PostgreSQL: it answers whether this session holds the run's
advisory lock, and asking never lets go of the lock, not even for an instant another session could use."""

from __future__ import annotations

import threading

import psycopg
import pytest

from pgship import guard
from tests.toolkit import wait_until

KEY = -6_148_914_691_236_517_206  # a signed key, as TrackingTable.lock_key gives
HELD = f"SELECT {guard.lock_held_sql(KEY)}"


@pytest.fixture
def sessions(database_url):
    with (
        psycopg.connect(database_url, autocommit=True) as ours,
        psycopg.connect(database_url, autocommit=True) as other,
    ):
        yield ours, other


def other_can_take(other: psycopg.Connection) -> bool:
    taken = other.execute("SELECT pg_try_advisory_lock(%s)", (KEY,)).fetchone()
    if taken and taken[0]:
        other.execute("SELECT pg_advisory_unlock(%s)", (KEY,))
        return True
    return False


def held_in_a_transaction(ours: psycopg.Connection, *, commit: bool = True) -> bool:
    ours.execute("BEGIN")
    answer = ours.execute(HELD).fetchone()
    ours.execute("COMMIT" if commit else "ROLLBACK")
    return bool(answer and answer[0])


def test_the_lock_this_session_holds_is_held_and_stays_held_after_asking(sessions):
    ours, other = sessions
    ours.execute("SELECT pg_advisory_lock(%s)", (KEY,))
    for _ in range(3):  # asking again and again never wears the hold down
        assert held_in_a_transaction(ours)
        assert not other_can_take(other)
    assert ours.execute(HELD).fetchone() == (True,)  # outside a transaction too (no-transaction files)
    assert not other_can_take(other)
    assert ours.execute("SELECT pg_advisory_unlock(%s)", (KEY,)).fetchone() == (True,)
    assert other_can_take(other)  # exactly one session-level hold was left: one unlock frees it


def test_a_released_lock_is_not_held_and_asking_does_not_keep_it(sessions):
    ours, other = sessions
    ours.execute("SELECT pg_advisory_lock(%s)", (KEY,))
    ours.execute("SELECT pg_advisory_unlock_all()")
    assert not held_in_a_transaction(ours, commit=False)
    assert other_can_take(other)  # the transaction's own hold ended with it


def test_a_lock_another_session_holds_is_not_ours(sessions):
    ours, other = sessions
    other.execute("SELECT pg_advisory_lock(%s)", (KEY,))
    assert not held_in_a_transaction(ours, commit=False)
    assert ours.execute("SELECT pg_try_advisory_lock(%s)", (KEY,)).fetchone() == (False,)


def test_a_session_waiting_for_the_lock_is_not_let_in_while_we_ask(sessions, database_url):
    """Step 2 drops the session-level hold for an instant: a waiter must not be granted the lock then."""
    ours, other = sessions
    ours.execute("SELECT pg_advisory_lock(%s)", (KEY,))
    waiter_pid = other.info.backend_pid
    done = threading.Event()
    waiting = threading.Thread(
        target=lambda: (other.execute("SELECT pg_advisory_lock(%s)", (KEY,)), done.set()), daemon=True
    )
    waiting.start()
    with psycopg.connect(database_url, autocommit=True) as watcher:
        wait_until(
            lambda: (
                watcher.execute(
                    "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = %s AND NOT granted)", (waiter_pid,)
                ).fetchone()
                == (True,)
            ),
            "the other session waiting for the lock",
        )
        assert held_in_a_transaction(ours)
        assert not done.is_set()  # still waiting: it was never granted the lock
        assert watcher.execute(
            "SELECT granted FROM pg_locks WHERE pid = %s AND locktype = 'advisory'", (waiter_pid,)
        ).fetchone() == (False,)
    ours.execute("SELECT pg_advisory_unlock(%s)", (KEY,))
    waiting.join(30)
    assert done.is_set()  # one unlock let the waiter in: the run held exactly one session-level hold
