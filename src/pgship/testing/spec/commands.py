"""Run ``pgship`` the way a user does, and keep what it printed.

Two modes, one result type: *in-process* calls ``pgship.cli.main(argv)`` with
stdout and stderr captured (fast, and faithful for commands that only talk to
the database); *subprocess* runs ``python -m pgship`` (needed where process
behaviour is the point: signals, concurrency, the deploy pipeline). Both run
in the scenario's workspace so ``pyproject.toml`` lookups see the scenario's
files, never the repository's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

IN_PROCESS = "in-process"
SUBPROCESS = "subprocess"


@dataclass(frozen=True)
class CommandResult:
    """One finished pgship command."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    mode: str

    @property
    def output(self) -> str:
        """Everything the command printed, stdout first."""
        return self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr

    def json(self) -> Any:
        """The command's ``--json`` document (stdout)."""
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"`{self.display()}` did not print JSON: {exc}\n{self.output}") from None

    def display(self) -> str:
        """The command as a person types it in the scenario's folder, with DATABASE_URL set.

        The scenario's URL and migrations folder are passed as flags (so nothing
        from the environment leaks in), but they are the same in every command of
        a scenario: the transcript names them once instead.
        """
        return "pgship " + shlex.join(_without_connection_flags(self.argv))


def _without_connection_flags(argv: tuple[str, ...]) -> list[str]:
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-d", "--database-url", "-m", "--migrations-dir"):
            skip = True
            continue
        shown.append(arg)
    return shown


def _flag_value(argv: tuple[str, ...], *names: str) -> str | None:
    for index, arg in enumerate(argv[:-1]):
        if arg in names:
            return argv[index + 1]
    return None


@dataclass
class PgshipCli:
    """Invokes pgship against one scenario's database and migrations folder.

    ``on_result`` receives every finished command (the harness attaches it to
    the report); ``on_process`` receives every background process (the harness
    registers it for cleanup).
    """

    database_url: str
    migrations_dir: Path
    cwd: Path
    mode: str = IN_PROCESS
    env: dict[str, str] = field(default_factory=dict)
    on_result: Callable[[CommandResult], None] | None = None
    on_process: Callable[[subprocess.Popen[str]], None] | None = None
    history: list[CommandResult] = field(default_factory=list)
    _started: dict[int, float] = field(default_factory=dict, repr=False)

    def argv(self, *args: str, json_output: bool = False) -> list[str]:
        """The full argument list: scenario database and folder first, ``--json`` last if asked."""
        folder = self.migrations_dir
        if folder.is_relative_to(self.cwd):  # shorter, and what a person in that folder would type
            folder = folder.relative_to(self.cwd)
        argv = ["-d", self.database_url, "-m", str(folder), *args]
        if json_output:
            argv.append("--json")
        return argv

    def run(
        self, *args: str, json_output: bool = False, mode: str | None = None, timeout: float = 120
    ) -> CommandResult:
        """Run a command to completion and record its result."""
        argv = self.argv(*args, json_output=json_output)
        chosen = mode or self.mode
        if chosen == IN_PROCESS:
            result = self._run_in_process(argv)
        elif chosen == SUBPROCESS:
            result = self._run_subprocess(argv, timeout)
        else:
            raise ValueError(f"unknown mode {chosen!r}")
        self.history.append(result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def start(self, *args: str, json_output: bool = False) -> subprocess.Popen[str]:
        """Start a command in the background (registered for cleanup); the caller waits for it."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgship", *self.argv(*args, json_output=json_output)],
            cwd=self.cwd,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._started[proc.pid] = time.perf_counter()
        if self.on_process is not None:
            self.on_process(proc)
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = 60) -> CommandResult:
        """Wait for a command from :meth:`start` and record its result like :meth:`run` does.

        A process killed by a signal has a negative exit code (``-9`` for SIGKILL).
        A process still running after ``timeout`` is killed, recorded, and reported as an error.
        """
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            overran = False
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            overran = True
        started = self._started.pop(proc.pid, time.perf_counter())
        args = cast("list[str]", proc.args)  # the list :meth:`start` gave Popen
        argv = tuple(str(arg) for arg in args[3:])  # after python -m pgship
        result = CommandResult(
            argv, proc.returncode, stdout, stderr, time.perf_counter() - started, SUBPROCESS
        )
        self.history.append(result)
        if self.on_result is not None:
            self.on_result(result)
        if overran:
            raise AssertionError(
                f"`{result.display()}` was still running after {timeout:g} s:\n{result.output}"
            )
        return result

    # -- modes --------------------------------------------------------------------
    def _run_in_process(self, argv: list[str]) -> CommandResult:
        from pgship.cli import main  # imported late: the harness must load before the CLI exists

        out, err = io.StringIO(), io.StringIO()
        started = time.perf_counter()
        with _working_directory(self.cwd), _patched_environ(self.env), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):  # fmt: skip
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse exits on bad arguments
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        seconds = time.perf_counter() - started
        return CommandResult(tuple(argv), int(code or 0), out.getvalue(), err.getvalue(), seconds, IN_PROCESS)

    def _run_subprocess(self, argv: list[str], timeout: float) -> CommandResult:
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "pgship", *argv],
            cwd=self.cwd,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - started
        return CommandResult(
            tuple(argv), completed.returncode, completed.stdout, completed.stderr, seconds, SUBPROCESS
        )

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not _leaks_settings(key)}
        env.update(self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


def _leaks_settings(key: str) -> bool:
    """Settings from the developer's shell that would make a scenario depend on the machine."""
    if key == "PGSHIP_EMBEDDED_PG_VERSION":
        return False
    return key == "DATABASE_URL" or key.startswith(("PGSHIP_", "PG"))


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _patched_environ(extra: dict[str, str]) -> Iterator[None]:
    """Give an in-process command the same environment a subprocess would get.

    Only the keys that differ are touched (usually none), and they are put back
    one by one: setenv/unsetenv race with getenv in other threads (libpq reads
    PG* variables when the prefetch thread reconnects), so the less, the better.
    """
    changes: dict[str, str | None] = {key: None for key in os.environ if _leaks_settings(key)}
    changes.update({key: value for key, value in extra.items() if os.environ.get(key) != value})
    saved = {key: os.environ.get(key) for key in changes}
    try:
        _apply(changes)
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def describe_url(url: str) -> str:
    """``user@host:port/dbname``: enough to know where a command ran, never a password."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{user}{parts.hostname or ''}{port}{parts.path}"


def format_transcript(result: CommandResult, scrub: Callable[[str], str]) -> str:
    """The attachment text: command, exit code, duration, then what it printed."""
    database = _flag_value(result.argv, "-d", "--database-url") or ""
    folder = _flag_value(result.argv, "-m", "--migrations-dir") or ""
    lines = [
        f"$ {result.display()}",
        f"# database: {describe_url(database)} · migrations: {folder}/",
        f"# exit code {result.exit_code} · {result.seconds * 1000:.0f} ms · {result.mode}",
    ]
    if result.stdout:
        lines += ["", "## stdout", result.stdout.rstrip("\n")]
    if result.stderr:
        lines += ["", "## stderr", result.stderr.rstrip("\n")]
    return scrub("\n".join(lines) + "\n")
