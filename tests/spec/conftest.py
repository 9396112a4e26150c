"""Fixtures for testing the specification's harness against a real embedded PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pgship.testing.spec.backends import BackendChoice
from pgship.testing.spec.session import SpecSession


@pytest.fixture(scope="session")
def spec_session() -> Iterator[SpecSession]:
    session = SpecSession(BackendChoice("embedded"), clone_strategy="file_copy").start()
    try:
        yield session
    finally:
        session.close()
