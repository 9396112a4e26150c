"""Shared fixtures: one embedded PostgreSQL per test session, one fresh database per test."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliResult:
    """What a pgship invocation returned and printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


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


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run pgship in this process (fast), capturing its output."""
    from pgship.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    try:
        if env:
            os.environ.update(env)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse errors
                code = int(exit_.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return CliResult(code, stdout.getvalue(), stderr.getvalue())


def spawn_cli(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
    """Start pgship as a real process (for concurrency, signals and kills)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pgship", *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.fixture
def cli():
    return run_cli
