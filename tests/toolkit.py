"""The tests' shared toolkit: waiting for a condition, running pgship in and out of process, starting
runners at the same instant, and finding pgship's sessions in ``pg_stat_activity``.

One copy of each, for every test package (unit, integration, faults, docs, spec). The specification's
steps keep theirs in ``steps/support.py`` (the spec's toolkit: behave loads ``steps/`` on its own and does
not import ``tests``). Fixtures stay in ``tests/conftest.py``; this module has no pytest fixtures.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg

T = TypeVar("T")

#: ``python -m pgship``, as an operator starts it
PGSHIP = (sys.executable, "-m", "pgship")


# -- waiting ----------------------------------------------------------------------------------------
def wait_until(
    predicate: Callable[[], T], what: str = "the condition", *, timeout: float = 30.0, interval: float = 0.02
) -> T:
    """Poll until ``predicate()`` returns something truthy, and return it.

    ``timeout`` bounds the test (a hang fails instead of stalling the suite); it asserts nothing about
    speed, so give it room for a loaded machine.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:g} s: {what}")
        time.sleep(interval)


# -- pgship in this process and as a process ----------------------------------------------------------
@dataclass
class CliResult:
    """What a pgship invocation returned and printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


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


def spawn_cli(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[str]:
    """Start pgship as a real process (for concurrency, signals and kills)."""
    return subprocess.Popen(
        [*PGSHIP, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def gate_lines(gate: Path) -> str:
    """Python lines that say the program is up (``<gate>.ready-<pid>``), then wait until ``gate`` exists."""
    return (
        f"open({str(gate)!r} + '.ready-' + str(os.getpid()), 'w').close()\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.001)\n"
    )


def cli_script(body: str = "sys.exit(main(sys.argv[1:]))\n", *, gate: Path | None = None) -> str:
    """A ``python -c`` program that runs pgship's ``main`` in a fresh interpreter.

    ``body`` runs after ``from pgship.cli import main`` (default: main with the program's arguments).
    With ``gate``, the program first waits at the gate (:func:`gate_lines`, :func:`start_together`).
    """
    waiting = gate_lines(gate) if gate is not None else ""
    return f"import os, sys, time\n{waiting}from pgship.cli import main\n{body}"


def ready(gate: Path) -> list[Path]:
    """The programs waiting at ``gate``."""
    return list(gate.parent.glob(f"{gate.name}.ready-*"))


def spawn_cli_loaded(*args: str, gate: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """pgship as a real process, loaded and waiting until ``gate`` exists (``gate.touch()`` starts it).

    The test then starts pgship's run at an instant of its choosing, not after an interpreter start-up
    whose length depends on the machine's load. Past the gate it runs as ``python -m pgship`` does
    (SIGTERM raises KeyboardInterrupt; the console script's ``pgship.cli.run``).
    """
    gate.parent.mkdir(parents=True, exist_ok=True)
    program = (
        "import os, signal, sys, time\n"
        "def stop(signum, frame):\n    raise KeyboardInterrupt\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "from pgship.cli import run\n"
        f"{gate_lines(gate)}"
        "run()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: ready(gate) or process.poll() is not None, "pgship loaded", timeout=120)
    return process


def start_together(
    arguments: Sequence[Sequence[str]],
    workdir: Path,
    launch: Callable[[list[str]], T],
    *,
    timeout: float = 120.0,
) -> list[T]:
    """One pgship per argument list, released at the same instant (a shared start file).

    ``launch(["-c", program, *arguments])`` starts ``python`` with those arguments and returns the
    runner. The gate opens once every interpreter has said it is up and polls for it (progress, not
    a guess at how long start-up takes).
    """
    gate = workdir / f"gate-{time.monotonic_ns()}"
    script = cli_script(gate=gate)
    runners = [launch(["-c", script, *args]) for args in arguments]
    wait_until(
        lambda: len(ready(gate)) >= len(runners),
        f"{len(runners)} runners up and waiting at the start",
        timeout=timeout,
    )
    gate.touch()
    return runners


# -- pgship's sessions in the database ----------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    """A pgship backend as pg_stat_activity shows it."""

    pid: int
    state: str | None
    query: str
    in_transaction: bool
    wait_event: str | None


def pgship_backends(
    admin: psycopg.Connection[Any] | str,
    dbname: str | None = None,
    *,
    application: str = "pgship",
    query_like: str | None = None,
    state: str | None = None,
) -> list[Backend]:
    """pgship's sessions (by ``application_name``), oldest first, optionally in one database, running
    a query ``LIKE query_like`` and in ``state``; the asking session never counts.

    ``admin`` is an open connection or a URL (connected for this one question).
    """
    sql = (
        "SELECT pid, state, coalesce(query, ''), xact_start IS NOT NULL, wait_event "
        "FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()"
    )
    params: list[Any] = [application]
    for column, value in (("datname", dbname), ("query", query_like), ("state", state)):
        if value is not None:
            sql += f" AND {column} {'LIKE' if column == 'query' else '='} %s"
            params.append(value)
    sql += " ORDER BY backend_start"
    if isinstance(admin, str):
        with psycopg.connect(admin, autocommit=True) as conn:
            rows = conn.execute(sql, params).fetchall()
    else:
        rows = admin.execute(sql, params).fetchall()
    return [Backend(*row) for row in rows]


def wait_for_backends_gone(admin: psycopg.Connection[Any] | str, dbname: str, timeout: float = 60.0) -> None:
    """A killed client's backend may still be finishing (or rolling back): wait until it is gone."""
    wait_until(
        lambda: not pgship_backends(admin, dbname),
        f"every pgship backend of {dbname} gone after its client ({timeout:g} s)",
        timeout=timeout,
    )
