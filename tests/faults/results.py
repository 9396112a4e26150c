"""Where trial outcomes go, and how many trials each fault gets.

``PGSHIP_FAULT_TRIALS`` sets the size of the campaign: unset, the default
``pytest`` run does a few trials of each fault on 60-migration runs (seconds);
``make faults`` sets it to 60 (SIGKILL trials; the other faults scale from it)
on 200-migration runs. Tests append one
JSON line per trial to ``PGSHIP_FAULT_RESULTS`` when it is set, which
``python -m tests.faults.campaign`` turns into the table of docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.faults.harness import Outcome

TRIALS_ENV = "PGSHIP_FAULT_TRIALS"
RESULTS_ENV = "PGSHIP_FAULT_RESULTS"
SHORT_KILL_TRIALS = (
    4  # one per aimed kind of kill point (inside a statement, between migrations, no-transaction, anywhere)
)
FULL_KILL_TRIALS = 60


@dataclass(frozen=True)
class Budget:
    """Trials per fault for this run."""

    kill: int
    terminate: int
    restart: int
    concurrent: int
    lock_contention: int
    concurrent_index: int
    fuzz_examples: int
    hostile: int  # trials per class of migration attacking the runner's state (lock, tracking table, session)
    signals: int  # SIGTERM/SIGINT at a random instant
    migrations: int  # the length of the workload run the kill, terminate, crash and race trials interrupt

    @property
    def full(self) -> bool:
        return self.kill >= 20

    @classmethod
    def from_environment(cls) -> Budget:
        raw = os.environ.get(TRIALS_ENV, "").strip()
        if raw in ("", "short"):
            kill = SHORT_KILL_TRIALS
        elif raw == "full":
            kill = FULL_KILL_TRIALS
        else:
            kill = max(1, int(raw))
        return cls(
            kill=kill,
            terminate=max(2, kill // 4),
            restart=max(1, kill // 6),
            concurrent=max(1, kill // 15),
            lock_contention=max(1, kill // 8),
            concurrent_index=max(1, kill // 15),
            fuzz_examples=max(25, kill * 7),
            hostile=max(2, kill // 6),
            signals=max(3, kill // 3),
            # the short run interrupts 60-migration runs (every kind of migration is among them);
            # the campaign proper interrupts 200-migration runs
            migrations=200 if kill >= 20 else 60,
        )


def record(outcomes: list[Outcome]) -> None:
    """Append the outcomes to the results file, if the campaign asked for one."""
    target = os.environ.get(RESULTS_ENV)
    if not target:
        return
    with Path(target).open("a", encoding="utf-8") as handle:
        for outcome in outcomes:
            handle.write(json.dumps(outcome.to_dict(), default=str) + "\n")
