"""The order a fleet runs in (canary, waves, N at a time, stop or continue) and its combined report.

The work function here is a plain Python function that records what it was asked to do: the
orchestrator is pure scheduling, it never touches a database itself.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from pgship.fleet.orchestrate import SKIPPED, Control, Outcome, run_waves
from pgship.fleet.report import FleetReport
from pgship.fleet.targets import Target, plan_waves


def fleet(*groups: tuple[str, int]) -> list[Target]:
    return [Target(f"{group}-{i}", group=group) for group, count in groups for i in range(count)]


class Recorder:
    """A work function: succeeds unless the target is in ``failing``; records starts and overlap."""

    def __init__(self, failing: set[str] = frozenset(), delay: float = 0.01) -> None:
        self.failing = failing
        self.delay = delay
        self.started: list[str] = []
        self.running = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.running_groups: set[str] = set()
        self.mixed_groups = False

    def __call__(self, target: Target, control: Control) -> Outcome:
        with self.lock:
            self.started.append(target.name)
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.running_groups.add(target.group)
            self.mixed_groups |= len(self.running_groups) > 1
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
            if not self.running:
                self.running_groups.clear()
        if target.name in self.failing:
            return Outcome(
                target, "failed", 1, "001", "001", error={"kind": "migration_failed", "message": "boom"}
            )
        return Outcome(target, "ok", 0, "001", "003", ["002", "003"])


def test_a_failing_canary_starts_no_wave_even_with_on_error_continue():
    targets = fleet(("canary", 2), ("wave-1", 3), ("wave-2", 3))
    work = Recorder(failing={"canary-1"})
    run = run_waves(
        plan_waves(targets, ["wave-1", "wave-2"], "canary"), work, parallel=4, on_error="continue"
    )
    assert sorted(work.started) == ["canary-0", "canary-1"]
    assert [o.status for o in run.outcomes] == ["ok", "failed"] + [SKIPPED] * 6
    assert run.stopped == "the canary failed (canary-1)"


def test_waves_never_overlap_and_parallelism_is_bounded():
    targets = fleet(("canary", 1), ("wave-1", 6), ("wave-2", 6))
    work = Recorder(delay=0.02)
    run = run_waves(plan_waves(targets, ["wave-1", "wave-2"], "canary"), work, parallel=3)
    assert [o.status for o in run.outcomes] == ["ok"] * 13
    assert work.peak <= 3
    assert not work.mixed_groups
    assert work.started[0] == "canary-0"
    assert set(work.started[1:7]) == {f"wave-1-{i}" for i in range(6)}


def test_on_error_stop_starts_nothing_new_after_a_failure():
    targets = fleet(("wave", 10))
    work = Recorder(failing={"wave-0"})
    run = run_waves(plan_waves(targets, [], None), work, parallel=1, on_error="stop")
    assert work.started == ["wave-0"]
    assert [o.target.name for o in run.failed] == ["wave-0"]
    assert len(run.skipped) == 9
    assert run.stopped == "wave-0 failed"


def test_on_error_continue_tries_every_target_and_names_each_failure():
    targets = fleet(("wave-1", 5), ("wave-2", 5))
    work = Recorder(failing={"wave-1-2", "wave-2-4"})
    run = run_waves(plan_waves(targets, ["wave-1", "wave-2"], None), work, parallel=2, on_error="continue")
    assert len(work.started) == 10
    assert [o.target.name for o in run.failed] == ["wave-1-2", "wave-2-4"]
    assert run.stopped is None


def test_targets_in_flight_are_told_to_stop_and_finish_on_their_own_terms():
    """With stop, a target already running sees Control.stopping and ends its run itself (the
    migration it is applying is finished, the next one is not started)."""
    targets = fleet(("wave", 2))
    seen: dict[str, bool] = {}
    failed, started = threading.Event(), threading.Event()

    def work(target: Target, control: Control) -> Outcome:
        if target.name == "wave-0":
            assert started.wait(5)
            failed.set()
            return Outcome(target, "failed", 1)
        started.set()
        failed.wait(5)
        deadline = time.monotonic() + 5
        while not control.stopping and time.monotonic() < deadline:
            time.sleep(0.005)
        seen[target.name] = control.stopping
        return Outcome(target, "stopped", 130)

    run = run_waves(plan_waves(targets, [], None), work, parallel=2, on_error="stop")
    assert seen == {"wave-1": True}
    assert [o.status for o in run.outcomes] == ["failed", "stopped"]
    assert [o.target.name for o in run.failed] == ["wave-0"]  # a stopped target is unfinished, not failed
    assert [o.target.name for o in run.skipped] == ["wave-1"]


def test_an_unexpected_exception_on_one_target_does_not_hide_the_others():
    targets = fleet(("wave", 3))

    def work(target: Target, control: Control) -> Outcome:
        if target.name == "wave-1":
            raise RuntimeError("surprise")
        return Outcome(target, "up_to_date")

    run = run_waves(plan_waves(targets, [], None), work, parallel=2, on_error="continue")
    assert [o.status for o in run.outcomes] == ["up_to_date", "failed", "up_to_date"]
    assert "surprise" in run.outcomes[1].error["message"]


@pytest.mark.parametrize(("parallel", "on_error"), [(0, "stop"), (1, "ignore")])
def test_bad_settings_are_refused(parallel, on_error):
    with pytest.raises(ValueError):
        run_waves([], lambda t, c: Outcome(t, "ok"), parallel=parallel, on_error=on_error)


# -- the report --------------------------------------------------------------------------
def report_of(
    command: str, *outcomes: Outcome, check: bool = False, interrupted: bool = False
) -> FleetReport:
    from pgship.fleet.orchestrate import FleetRun

    return FleetReport(
        command,
        FleetRun(list(outcomes), interrupted=interrupted),
        "pgship.fleet.toml",
        "003",
        4,
        "stop",
        check=check,
    )


def test_the_report_exit_code_follows_the_single_database_contract():
    a, b = Target("a"), Target("b")
    assert report_of("migrate", Outcome(a, "ok"), Outcome(b, "up_to_date")).exit_code() == 0
    assert report_of("migrate", Outcome(a, "ok"), Outcome(b, "failed", 1)).exit_code() == 1
    assert report_of("migrate", Outcome(a, "unreachable", 3), Outcome(b, "unreachable", 3)).exit_code() == 3
    assert report_of("migrate", Outcome(a, "unreachable", 3), Outcome(b, "failed", 1)).exit_code() == 1
    assert report_of("migrate", Outcome(a, "ok"), Outcome(b, SKIPPED)).exit_code() == 1
    assert report_of("migrate", Outcome(a, "ok"), Outcome(b, SKIPPED), interrupted=True).exit_code() == 130
    assert report_of("plan", Outcome(a, "refused", 2), Outcome(b, "ok")).exit_code() == 2
    assert report_of("status", Outcome(a, "at_release"), Outcome(b, "behind", 5)).exit_code() == 0
    assert report_of("status", Outcome(a, "at_release"), Outcome(b, "behind", 5), check=True).exit_code() == 5
    assert report_of("status", Outcome(a, "unreachable", 3), Outcome(b, "behind", 5)).exit_code() == 3


def test_the_status_report_counts_every_health_state_for_monitoring():
    targets = [Target(n) for n in "abcdef"]
    report = report_of(
        "status",
        Outcome(targets[0], "at_release"),
        Outcome(targets[1], "at_release"),
        Outcome(targets[2], "behind", 5),
        Outcome(targets[3], "drifted", 5),
        Outcome(targets[4], "unreachable", 3),
        Outcome(targets[5], "ahead", 5),
    )
    document = report.to_dict()
    assert document["summary"] == {
        "at_release": 2,
        "behind": 1,
        "drifted": 1,
        "ahead": 1,
        "unreachable": 1,
        "error": 0,
    }
    assert document["in_sync"] is False
    assert document["failed"] == ["c", "d", "e", "f"]
    json.dumps(document)  # serialisable as is


def test_the_table_json_and_markdown_say_the_same_thing():
    a, b, c = Target("tenant_a", group="canary"), Target("tenant_b"), Target("tenant|c")
    report = report_of(
        "migrate",
        Outcome(a, "ok", 0, "001", "003", ["002", "003"], 120),
        Outcome(
            b, "failed", 1, "001", "002", ["002"], 80, error={"message": "003_x.sql:4: boom [SQLSTATE 42P01]"}
        ),
        Outcome(c, SKIPPED, error={"message": "not started: tenant_b failed"}),
    )
    text = "\n".join(report.text())
    assert "tenant_a  canary   ok" in text and "001 -> 003" in text
    assert "003_x.sql:4: boom" in text
    assert "Failed: tenant_b." in text
    document = report.to_dict()
    assert document["status"] == "failed"
    assert [t["applied"] for t in document["targets"]] == [["002", "003"], ["002"], []]
    assert (
        document["targets"][1]["version_before"] == "001" and document["targets"][1]["version_after"] == "002"
    )
    markdown = report.markdown()
    assert markdown.startswith("### ❌ pgship migrate --fleet")
    assert "| tenant_b | default | failed | 001 -> 002 | 1 |" in markdown
    assert "tenant\\|c" in markdown  # a pipe in a name does not break the table


def test_an_interrupt_starts_nothing_new_and_waits_for_the_targets_in_flight():
    import signal

    targets = fleet(("wave", 6))
    finished: list[str] = []
    second: list[bool] = []
    main = threading.main_thread().ident
    assert main is not None

    def work(target: Target, control: Control) -> Outcome:
        if target.name == "wave-0":
            time.sleep(0.6)  # in flight throughout
        if target.name == "wave-1":
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, delivered to the main thread
            deadline = time.monotonic() + 5
            while not control.stopping and time.monotonic() < deadline:
                time.sleep(0.005)
            signal.pthread_kill(main, signal.SIGINT)  # and a second one while targets are in flight
            time.sleep(0.1)
        finished.append(target.name)
        return Outcome(target, "ok")

    control = Control(on_second_interrupt=lambda: second.append(True))
    run = run_waves(plan_waves(targets, [], None), work, parallel=2, control=control)
    assert run.interrupted and run.stopped == "interrupted"
    assert sorted(finished) == ["wave-0", "wave-1"]  # those in flight were waited for, not abandoned
    assert second == [True]
    assert [o.status for o in run.outcomes] == ["ok", "ok"] + [SKIPPED] * 4
