"""Fixtures of the fault campaign: its budget, its 200-migration workload and the reference states."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.harness import Reference
from tests.faults.results import Budget
from tests.faults.workload import GeneratedMigration, fault_workload, write_workload


@pytest.fixture(scope="session")
def budget() -> Budget:
    return Budget.from_environment()


@pytest.fixture(scope="session")
def workload(budget: Budget) -> list[GeneratedMigration]:
    return fault_workload(budget.migrations)


@pytest.fixture(scope="session")
def workload_dir(tmp_path_factory: pytest.TempPathFactory, workload: list[GeneratedMigration]) -> Path:
    return write_workload(tmp_path_factory.mktemp("fault-workload") / "migrations", workload)


@pytest.fixture(scope="session")
def reference(pg_server, workload_dir: Path, workload: list[GeneratedMigration], budget: Budget) -> Reference:
    return Reference(pg_server, workload_dir, workload, eager=budget.full)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="session")
def durable_server() -> Iterator[object]:
    """A server of its own for crash-restarts, with fsync and synchronous commit on like production."""
    from pgship.testing import EmbeddedPostgres

    with EmbeddedPostgres(durable=True) as server:
        yield server
