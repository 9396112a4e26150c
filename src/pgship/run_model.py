"""What a run is given and what it reports for each migration: plain data, shared by the runner
(:mod:`pgship.runner`, which re-exports them) and the applier (:mod:`pgship.apply`).

Apart from both so that reading commands (``status``, ``plan``) need not import how a migration is
applied.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class RunOptions:
    """How patient and how careful a run is. Defaults suit a production deploy."""

    lock_wait_s: float = 120.0  # how long to wait for another runner's advisory lock
    lock_timeout_s: float = 3.0  # first lock_timeout for a migration's statements
    lock_retries: int = 3  # further attempts after a lock timeout, each with double the timeout
    retry_pause_s: float = 1.0  # pause before a retry, so queued production queries drain
    statement_timeout_s: float | None = None
    applied_by: str | None = None  # recorded with each migration; default "<os user>@<host>"


@dataclass(slots=True)
class AppliedRecord:
    """A migration this run applied."""

    version: str
    name: str
    file: str
    execution_ms: int
    attempts: int = 1
    messages: list[dict[str, str]] = field(default_factory=list)  # the server's WARNINGs and NOTICEs


def ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
