"""Shared fixtures: one embedded PostgreSQL per test session, one fresh database per test."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.toolkit import run_cli

ROOT = Path(__file__).resolve().parents[1]


class MigrationsDir:
    """A scratch migrations directory a test writes files into."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, sql: str | bytes) -> Path:
        target = self.path / name
        if isinstance(sql, bytes):
            target.write_bytes(sql)
        else:
            target.write_text(sql, encoding="utf-8")
        return target

    def __str__(self) -> str:
        return str(self.path)


#: tests that need Allure (npm) and Debian's chromium: `make test-report` runs them, `make pytest` does not
BROWSER_TESTS = ("tests/report/", "tests/docs/test_diagrams.py::test_every_diagram_renders")


#: the longest tests (30-80 s each on 2 busy cores): started first, so that with pytest-xdist
#: (`make pytest`) none of them is left running alone at the end
LONG_TESTS = (
    "tests/integration/test_fleet_faults.py::test_a_fleet_run_killed_at_random_moments",
    "tests/faults/test_kill.py::test_sigkill_anywhere",
    "tests/integration/test_exactly_once.py::test_two_spellings_of_one_table_share_one_lock",
    "tests/docs/test_guide_examples.py::test_the_guide_examples_run_in_order",
    "tests/faults/test_pooler.py::test_sigkill_through_a_transaction_pooler",
    "tests/faults/test_interrupted_index.py",
    "tests/faults/test_concurrency.py",
    "tests/test_workflows.py::test_actionlint_accepts_every_workflow",
    "tests/faults/test_secrets.py",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(BROWSER_TESTS):
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: not item.nodeid.startswith(LONG_TESTS))  # stable: the rest keep their order


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def signals_as_they_were(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test starts with the process's stop signals as the session began: unblocked, default handlers.

    With pytest-xdist one process runs many tests in turn, and every process a test starts inherits the
    signal mask: a SIGINT left blocked by an earlier test (in-process pgship holds stop signals back
    while it writes a report) would make a later test's runner deaf to Ctrl-C. A test that leaves the
    mask changed is named in a warning, and the mask and handlers are put back.
    """
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    handlers = {signum: signal.getsignal(signum) for signum in _STOP_SIGNALS}
    yield
    left = signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if left != mask:
        blocked = sorted(signal.Signals(s).name for s in set(left) - set(mask))
        warnings.warn(f"{request.node.nodeid} left {', '.join(blocked)} blocked", stacklevel=1)
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    from pgship.testing import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture
def database_url(pg_server) -> Iterator[str]:
    with pg_server.fresh_database() as url:
        yield url


@pytest.fixture
def migrations(tmp_path: Path) -> MigrationsDir:
    return MigrationsDir(tmp_path / "migrations")


@pytest.fixture
def cli():
    return run_cli
