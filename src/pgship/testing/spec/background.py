"""A pgship command running in the background whose output a scenario watches as it comes.

``PgshipCli.start`` gives a process with piped output. Something must read
those pipes while it runs (a full pipe blocks the process), and a scenario
often needs to act when a line appears ("the deploy is now waiting for the
database": open the database). :class:`Watched` reads both streams in threads,
lets a step wait for a line, and turns the finished process into an ordinary
:class:`CommandResult` for the scenario's history and the report.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, cast

from pgship.testing.spec.commands import SUBPROCESS, CommandResult, PgshipCli


class Watched:
    """A started pgship process, its output collected line by line."""

    def __init__(self, cli: PgshipCli, proc: subprocess.Popen[str]) -> None:
        self.cli = cli
        self.proc = proc
        self.started = time.perf_counter()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((proc.stdout, self._stdout), (proc.stderr, self._stderr))
        ]
        for reader in self._readers:
            reader.start()

    @classmethod
    def start(cls, cli: PgshipCli, *args: str, json_output: bool = False) -> Watched:
        """Start ``pgship ARGS`` (stopped at cleanup, like every process ``cli.start`` makes)."""
        return cls(cli, cli.start(*args, json_output=json_output))

    def _read(self, stream: IO[str] | None, lines: list[str]) -> None:
        if stream is None:
            return
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        """Everything printed so far, stdout first."""
        with self._changed:
            return "".join(self._stdout) + "".join(self._stderr)

    def wait_for(self, pattern: str, *, timeout: float = 60) -> str:
        """The first output line matching ``pattern``; fails if the process ends or ``timeout`` passes first.

        ``timeout`` is a guard against a hung scenario, not a claim about speed.
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in [*self._stdout, *self._stderr]:
                    if regex.search(line):
                        return line.rstrip("\n")
                exited = self.proc.poll() is not None and not any(r.is_alive() for r in self._readers)
                remaining = deadline - time.monotonic()
                if exited or remaining <= 0:
                    why = f"exited with code {self.proc.returncode}" if exited else f"ran {timeout:g} s"
                    raise AssertionError(
                        f"pgship {why} without printing a line matching {pattern!r}:\n{self.output}"
                    )
                self._changed.wait(timeout=min(remaining, 0.2))

    def until(self, ready: Callable[[], bool], *, timeout: float = 60, what: str = "ready") -> None:
        """Poll ``ready()`` while the process runs; fails if it exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                self._join()
                raise AssertionError(
                    f"pgship exited with code {self.proc.returncode} before it was {what}:\n{self.output}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"pgship was not {what} after {timeout:g} s:\n{self.output}")
            time.sleep(0.05)

    def finish(self, *, timeout: float = 120) -> CommandResult:
        """Wait for the exit, record the result in the scenario's history (and the report)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._record()
            raise AssertionError(f"pgship was still running after {timeout:g} s:\n{self.output}") from None
        return self._record()

    def stop(self) -> CommandResult:
        """Stop a service (SIGTERM, as an orchestrator does) and record what it printed."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.finish(timeout=15)

    def _join(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)

    def _record(self) -> CommandResult:
        self._join()
        args = cast("list[str]", self.proc.args)  # the list PgshipCli.start gave Popen
        argv = tuple(str(arg) for arg in args[3:])  # after `python -m pgship`
        with self._changed:
            result = CommandResult(
                argv,
                self.proc.returncode,
                "".join(self._stdout),
                "".join(self._stderr),
                time.perf_counter() - self.started,
                SUBPROCESS,
            )
        self.cli.history.append(result)
        if self.cli.on_result is not None:
            self.cli.on_result(result)
        return result
