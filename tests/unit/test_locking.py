"""Which lock a run takes for each connection path (pure: pgship.locking.choose)."""

from __future__ import annotations

import pytest

from pgship.errors import ExitCode, UsageError
from pgship.locking import choose, refuse_no_transaction
from pgship.pooler import ConnectionPath


@pytest.mark.parametrize("mode", ["direct", "session"])
def test_a_pinned_session_keeps_the_advisory_lock_even_with_a_direct_url(mode):
    for direct_url in (False, True):
        choice = choose(ConnectionPath(mode, "why"), direct_url=direct_url)
        assert (choice.lock, choice.via_direct_url) == ("advisory", False)
    assert choose(ConnectionPath("direct", "why"), direct_url=False).note == ""


def test_a_transaction_pooler_locks_with_a_lease_or_moves_to_the_direct_url():
    path = ConnectionPath("transaction", "a second client got this backend")
    lease = choose(path, direct_url=False)
    assert (lease.lock, lease.via_direct_url) == ("lease", False)
    assert "lease" in lease.note and "--direct-url" in lease.note
    moved = choose(path, direct_url=True)
    assert (moved.lock, moved.via_direct_url) == ("advisory", True)
    assert "direct URL" in moved.note
    assert moved.to_json() == {
        "mode": "transaction",
        "pinned": False,
        "reason": "a second client got this backend",
        "lock": "advisory",
        "direct_url": True,
    }


def test_statement_pooling_is_refused_with_exit_2():
    with pytest.raises(UsageError) as refused:
        choose(ConnectionPath("statement", "no BEGIN"), direct_url=True)
    assert refused.value.exit_code == ExitCode.INVALID
    assert "statement" in refused.value.message


def test_no_transaction_files_through_the_pooler_are_refused_naming_them_and_the_option():
    refuse_no_transaction([])  # nothing to refuse
    with pytest.raises(UsageError) as refused:
        refuse_no_transaction(["005_index.sql", "007_index.sql"])
    assert "005_index.sql, 007_index.sql" in refused.value.message
    assert "--direct-url" in refused.value.hint and "PGSHIP_DIRECT_URL" in refused.value.hint
