"""Everything a scenario starts is registered here and released after it, even when it failed.

Why a registry rather than ``try/finally`` in each step: a step that starts a
runner or a health server cannot know whether a later step will fail, and
behave's ``after_scenario`` runs whatever happened. Releasing in reverse
order mirrors how things were built (a server started inside a temp dir is
stopped before the dir is removed). Every release is attempted; the errors are
raised together afterwards so one stuck process cannot hide another.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class Closeable(Protocol):
    """Anything with a ``close()``: servers, clients, connections."""

    def close(self) -> None: ...


class CleanupError(RuntimeError):
    """One or more registered resources could not be released."""


@dataclass
class CleanupRegistry:
    """A stack of release actions, run last-in first-out by :meth:`close`."""

    #: seconds a process gets to exit after SIGTERM before it is killed
    grace_seconds: float = 5.0
    _actions: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._actions)

    def callback(self, description: str, action: Callable[[], None]) -> None:
        """Run ``action`` at cleanup; ``description`` names it in error messages."""
        self._actions.append((description, action))

    def process(self, proc: subprocess.Popen[bytes] | subprocess.Popen[str], name: str = "") -> None:
        """Stop a subprocess at cleanup: SIGTERM, then SIGKILL after the grace period."""
        label = name or f"process {proc.pid} ({_argv0(proc)})"
        self.callback(label, lambda: stop_process(proc, self.grace_seconds))

    def directory(self, path: Path) -> None:
        """Remove a temporary directory tree at cleanup."""
        self.callback(f"directory {path}", lambda: shutil.rmtree(path, ignore_errors=False))

    def closeable(self, obj: Closeable, name: str = "") -> None:
        """Call ``obj.close()`` at cleanup (servers, clients, connections)."""
        close = obj.close
        self.callback(name or type(obj).__name__, close)

    def close(self) -> None:
        """Release everything, newest first; raise :class:`CleanupError` listing what failed."""
        failures: list[str] = []
        while self._actions:
            description, action = self._actions.pop()
            try:
                action()
            except FileNotFoundError:
                continue  # already gone: the goal of the cleanup is reached
            except Exception as exc:
                failures.append(f"{description}: {type(exc).__name__}: {exc}")
        if failures:
            raise CleanupError("cleanup failed for:\n  " + "\n  ".join(failures))


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace_seconds: float) -> None:
    """Terminate ``proc`` if it still runs; kill it if it ignores the request."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_seconds)


def _argv0(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> str:
    args = proc.args
    if isinstance(args, (list, tuple)) and args:
        return str(args[0])
    return str(args)
