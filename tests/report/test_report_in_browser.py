"""The report as a stakeholder sees it: every scenario run, visible and counted, in a real browser.

Runs the whole specification (embedded backend) into a private results folder,
builds the single-file report the way `make spec` does, opens it from file://
in Debian's headless Chromium, and compares what is on screen with what behave
says it ran. The screenshot is kept at reports/report-in-browser.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.report.conftest import REPO, behave_scenarios, build_report, open_in_chromium, run_behave


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("spec-run")
    behave_json = work / "behave.json"
    completed = run_behave(
        REPO,
        "-D", "db=embedded",
        "-D", f"pgship.results_dir={work / 'results'}",
        "-f", "json", "-o", str(behave_json),
    )  # fmt: skip
    assert completed.returncode == 0, f"the specification failed:\n{completed.stdout[-4000:]}"
    index = build_report(work / "results", work / "report")
    assert index.stat().st_size > 0
    page = open_in_chromium(index, REPO / "reports" / "report-in-browser.png")
    return {"scenarios": behave_scenarios(behave_json), "page": page}


def test_every_feature_is_listed(seen: dict[str, Any]) -> None:
    features = {feature for feature, _, _ in seen["scenarios"]}
    assert features, "behave ran no scenario"
    for feature in features:
        assert feature in seen["page"]["sections"], f"feature {feature!r} is not in the report's tree"


def test_every_scenario_is_shown_passed(seen: dict[str, Any]) -> None:
    shown = {leaf["title"].strip(): leaf["status"] for leaf in seen["page"]["leaves"]}
    for _, name, status in seen["scenarios"]:
        scenario = name.strip()  # behave ends an outline row's title with a space; the page trims it
        assert status == "passed"
        assert shown.get(scenario) == "passed", f"scenario {scenario!r} shows as {shown.get(scenario)!r}"


def test_passed_count_equals_scenarios_run(seen: dict[str, Any]) -> None:
    page = seen["page"]
    assert page["passed"] == len(seen["scenarios"]) == page["total"]
    assert page["failed"] == page["broken"] == 0


def test_report_states_what_it_ran_on(seen: dict[str, Any]) -> None:
    metadata = seen["page"]["metadata"]
    assert metadata["Backend"].startswith("embedded")  # "embedded (PostgreSQL 16 with contrib)"
    assert metadata["PostgreSQL"][:2].isdigit()
    assert {"pgship", "Python"} <= metadata.keys()


def test_report_works_offline(seen: dict[str, Any]) -> None:
    assert seen["page"]["blockedRequests"] == [], "the single-file report tried to reach the network"
    assert seen["page"]["consoleErrors"] == []


def test_screenshot_is_saved(seen: dict[str, Any]) -> None:
    shot = Path(REPO / "reports" / "report-in-browser.png")
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
