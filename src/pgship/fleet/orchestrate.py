"""Running one operation on every target: the canary first and alone, then the waves, N at a time.

The operation on one target is a function given by the caller (:mod:`pgship.fleet.execute` runs
pgship's single-database run there); this module only decides what starts when:

* waves run one after another; inside a wave up to ``parallel`` targets run at once, on a pool of
  ``parallel`` threads (each worker holds at most one connection, whatever the fleet's size);
* the canary wave runs alone, first; if any canary target fails, no other wave starts;
* ``on_error="stop"``: after a failure no new target starts; targets in flight finish the migration
  they are applying and stop before their next one (``Control.stopping`` tells them);
  ``on_error="continue"``: every target is tried, the failures are reported together;
* an interrupt (Ctrl-C, SIGTERM) stops the same way: nothing new starts, the migrations in flight
  finish or roll back, and the report says which targets were not started.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from pgship.fleet.targets import Target, Wave

ON_ERROR = ("stop", "continue")
#: statuses that mean "this target is fine"; anything else (but ``skipped``) is a failure
SUCCESS = frozenset({"ok", "up_to_date", "at_release"})
SKIPPED = "skipped"  # never started: the run stopped first
STOPPED = "stopped"  # started, then stopped between two migrations because the run was stopping


@dataclass
class Outcome:
    """What happened on one target."""

    target: Target
    status: str  # ok, up_to_date, failed, unreachable, refused, invalid, locked, interrupted, skipped...
    exit_code: int = 0
    version_before: str | None = None
    version_after: str | None = None
    applied: list[str] = field(default_factory=list)
    duration_ms: int = 0
    error: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status not in SUCCESS and self.status not in (SKIPPED, STOPPED)


class Control:
    """Shared by the orchestrator and the workers: whether to stop, and why."""

    def __init__(
        self,
        on_stop: Callable[[str], None] | None = None,
        on_second_interrupt: Callable[[], None] | None = None,
    ) -> None:
        self._event = threading.Event()
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._on_stop = on_stop  # told once, with the first reason (progress shows it)
        # a second Ctrl-C while the migrations in flight finish: the caller may leave at once
        # (PostgreSQL rolls back what is in flight); by default the wait goes on
        self.on_second_interrupt = on_second_interrupt

    def stop(self, reason: str) -> None:
        with self._lock:
            first = self.reason is None
            if first:
                self.reason = reason
            self._event.set()
        if first and self._on_stop is not None:
            self._on_stop(reason)

    @property
    def stopping(self) -> bool:
        return self._event.is_set()


@dataclass
class FleetRun:
    """Every target's outcome, in wave order, and why the run stopped early (if it did)."""

    outcomes: list[Outcome]
    stopped: str | None = None  # "canary failed: ...", "a target failed: ...", "interrupted"
    interrupted: bool = False
    duration_ms: int = 0

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    @property
    def skipped(self) -> list[Outcome]:
        """Targets not finished because the run stopped: never started, or stopped between migrations."""
        return [o for o in self.outcomes if o.status in (SKIPPED, STOPPED)]


Work = Callable[[Target, Control], Outcome]
Progress = Callable[[str, Target, "Outcome | None"], None]  # ("start" | "done", target, outcome)


def run_waves(
    waves: Sequence[Wave],
    work: Work,
    *,
    parallel: int = 4,
    on_error: str = "stop",
    on_progress: Progress | None = None,
    control: Control | None = None,
) -> FleetRun:
    """Run ``work`` on every target of ``waves`` (see the module's docstring for the order)."""
    if parallel < 1:
        raise ValueError("parallel must be at least 1")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}")
    control = control or Control()
    report = on_progress or (lambda *_: None)
    progress_lock = threading.Lock()
    started = time.perf_counter()
    results: dict[int, Outcome] = {}
    interrupted = False

    def job(target: Target, index: int) -> None:
        if control.stopping:
            outcome = Outcome(
                target, SKIPPED, error={"kind": "not_started", "message": f"not started: {control.reason}"}
            )
        else:
            outcome = attempt(target)
        with progress_lock:
            results[index] = outcome  # here, not in the main thread: a Ctrl-C there cannot lose it

    def attempt(target: Target) -> Outcome:
        with progress_lock:
            report("start", target, None)
        began = time.perf_counter()
        try:
            outcome = work(target, control)
        except Exception as exc:  # a bug in one target's run must not hide the others
            outcome = Outcome(
                target,
                "failed",
                1,
                error={"kind": "error", "message": f"unexpected {type(exc).__name__}: {exc}"},
            )
        if not outcome.duration_ms:
            outcome.duration_ms = round((time.perf_counter() - began) * 1000)
        if outcome.failed and on_error == "stop":
            control.stop(f"{target.name} failed")
        with progress_lock:
            report("done", target, outcome)
        return outcome

    order = [target for wave in waves for target in wave.targets]
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pgship-fleet")
    futures: list[Future[None]] = []
    try:
        offset = 0
        for wave in waves:
            if control.stopping:
                break
            with _signals_held():  # a Ctrl-C between submit() and the append would lose a future
                batch = [pool.submit(job, t, offset + i) for i, t in enumerate(wave.targets)]
                futures += batch
            wait(batch)  # a Ctrl-C here: stop (below), then wait for the work in flight
            failed = [
                results[offset + i].target.name for i in range(len(batch)) if results[offset + i].failed
            ]
            offset += len(batch)
            if wave.canary and failed:
                control.stop(f"the canary failed ({', '.join(failed)})")
    except KeyboardInterrupt:
        interrupted = True
    again = control.on_second_interrupt or _keep_waiting
    while True:  # the targets in flight finish; a further Ctrl-C may land anywhere in here
        try:
            if interrupted:
                control.stop("interrupted")
            wait(futures)  # futures, not Thread.join: an interrupted join forgets the thread (bpo-45274)
            break
        except KeyboardInterrupt:
            if interrupted:
                again()
            interrupted = True
    with _signals_held():
        pool.shutdown(wait=True)  # every job is done: the workers only have to exit
    outcomes = []
    for index, target in enumerate(order):
        outcomes.append(
            results.get(index)
            or Outcome(
                target, SKIPPED, error={"kind": "not_started", "message": f"not started: {control.reason}"}
            )
        )
    return FleetRun(
        outcomes,
        stopped=control.reason,
        interrupted=interrupted,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )


def _keep_waiting() -> None:
    return None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back (delivered on leaving) where an interrupt would lose track.

    Threads started in here inherit the mask, so the workers never receive these signals either:
    the main thread does, as Python's handlers need.
    """
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


__all__ = ["ON_ERROR", "SKIPPED", "STOPPED", "SUCCESS", "Control", "FleetRun", "Outcome", "run_waves"]
