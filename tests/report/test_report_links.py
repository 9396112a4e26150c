"""The report as a reader meets it: scenario -> guide -> scenario by clicking, a trend, honest statuses.

A scenario's link to the guide section it proves must be clickable in a report opened from disk (Allure 3
draws a relative link as plain text), the guide's "Proved by" links must open the scenario in the report
(not a raw .feature file), the trend must survive from one build to the next, and a pending or undefined
step must never show as passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pgship.testing.spec import report
from pgship.testing.spec.allure_formatter import absolute_link_pattern, report_anchor
from tests.report.conftest import REPO, build_report, read_results, run_behave

SCENARIO = "`pgship new` creates the next-numbered file from the project's template"
FEATURE = "features/creating_migrations.feature"
PROBE = Path(__file__).with_name("link_probe.mjs")


@pytest.fixture(scope="module")
def spec_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One feature run the way `make spec` runs it locally, built into a private report."""
    work = tmp_path_factory.mktemp("links")
    completed = run_behave(
        REPO, FEATURE, "-D", "db=embedded", "-f", "null",
        "-D", f"pgship.results_dir={work / 'results'}",
        "-D", "AllureFormatter.link_pattern=guide.html#{}",  # as `make spec` runs it
        "-D", f"pgship.report_dir={work / 'report'}",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    index = build_report(work / "results", work / "report")
    return {"work": work, "results": work / "results", "index": index}


def test_a_scenario_keeps_its_id_from_run_to_run(spec_run: dict[str, Path], tmp_path: Path) -> None:
    again = run_behave(
        REPO, FEATURE, "-D", "db=embedded", "-f", "null", "-D", f"pgship.results_dir={tmp_path}"
    )
    assert again.returncode == 0, again.stdout[-3000:]
    first, second = read_results(spec_run["results"]), read_results(tmp_path)
    assert first.keys() == second.keys()
    assert {name: r["uuid"] for name, r in first.items()} == {name: r["uuid"] for name, r in second.items()}
    assert len({r["uuid"] for r in first.values()}) == len(first)


def test_the_overview_carries_no_harness_noise(spec_run: dict[str, Path]) -> None:
    results = spec_run["results"]
    for result in read_results(results).values():
        assert not {label["name"] for label in result["labels"]} & {"framework", "language"}
    properties = (results / "environment.properties").read_text()
    assert "Clone" not in properties and "Backend=embedded" in properties
    assert not (results / "executor.json").exists() or os.environ.get("CI")


def test_the_guide_page_links_each_proved_by_scenario_into_the_report(spec_run: dict[str, Path]) -> None:
    guide = (spec_run["index"].parent / report.GUIDE_PAGE).read_text()
    result = read_results(spec_run["results"])[SCENARIO]
    anchor = report_anchor(result["uuid"])
    assert f'href="index.html#{anchor}"' in guide
    assert 'id="creating-new-migrations"' in guide


def test_a_relative_link_pattern_becomes_a_file_url(tmp_path: Path) -> None:
    pattern = absolute_link_pattern("../../docs/DEPLOYMENT.md#{}", tmp_path)
    assert pattern == (tmp_path / "docs" / "DEPLOYMENT.md").as_uri() + "#{}"
    assert absolute_link_pattern("guide.html#{}", tmp_path, tmp_path / "r") == (
        (tmp_path / "r" / "guide.html").as_uri() + "#{}"
    )
    assert absolute_link_pattern("https://x.test/g#{}", tmp_path) == "https://x.test/g#{}"


def test_scenario_to_guide_and_back_by_clicking(spec_run: dict[str, Path]) -> None:
    """In Chromium: open the scenario, click its guide link, click the guide's link back to it."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium or not (REPO / "node_modules" / "playwright-core").is_dir():
        pytest.fail("needs Debian's chromium and `npm ci` (playwright-core): run `make test`")
    shots = REPO / "reports" / "report-links"
    shots.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        ["node", str(PROBE), str(spec_run["index"]), SCENARIO, str(shots)],
        cwd=REPO, env={**os.environ, "CHROMIUM": chromium}, capture_output=True, text=True, timeout=180,
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    seen: dict[str, Any] = json.loads(completed.stdout)
    assert seen["scenarioTitle"] == SCENARIO, seen
    assert seen["links"], f"the scenario's guide link is not a clickable link: {seen}"
    assert seen["guideUrl"].endswith("/guide.html#creating-new-migrations"), seen
    assert seen["guideHeading"] == "Creating new migrations", seen
    anchor = report_anchor(read_results(spec_run["results"])[SCENARIO]["uuid"])
    assert seen["backHref"].endswith(f"/index.html#{anchor}"), seen
    assert seen["backTitle"] == SCENARIO, seen
    for stop in ("scenario", "guide", "back"):
        assert Path(f"{shots}-{stop}.png").read_bytes()[:4] == b"\x89PNG"


def test_the_trend_survives_from_one_build_to_the_next(spec_run: dict[str, Path], tmp_path: Path) -> None:
    history = tmp_path / "history" / "history.jsonl"
    for build in ("first", "second"):
        report.generate(spec_run["results"], tmp_path / build, project_root=REPO, history_path=history)
    runs = [json.loads(line) for line in history.read_text().splitlines()]
    assert len(runs) == 2
    shown = (tmp_path / "second" / "index.html").read_text()
    assert runs[0]["uuid"] in shown, "the second report does not carry the first run in its history"


PENDING_PROJECT = {
    "pyproject.toml": """\
        [tool.behave]
        paths = ["features"]
        format = ["pgship.testing.spec.allure_formatter:PgshipAllureFormatter"]
        outfiles = ["results"]
        default_format = "plain"
        default_tags = ["not @pending"]
        show_skipped = false
        """,
    "features/steps/steps.py": """\
        from behave import given, when

        @given("a defined step")
        def defined(context):
            pass

        @when("a step that is still pending")
        def pending(context):
            raise NotImplementedError("STEP: pending")

        @when("the step finds it cannot run here")
        def skips(context):
            context.scenario.skip("needs a replica")
        """,
    "features/pending.feature": """\
        Feature: Steps not written yet
          Scenario: An undefined step
            Given a defined step
            When a step nobody has written

          Scenario: A pending step
            Given a defined step
            When a step that is still pending

          Scenario: Everything defined
            Given a defined step

          Scenario: A scenario that skips itself half-way
            Given a defined step
            When the step finds it cannot run here

          @pending
          Scenario: Agreed behaviour not built yet
            Given a defined step
        """,
}


def test_pending_and_undefined_steps_are_never_shown_as_passed(tmp_path: Path) -> None:
    for name, text in PENDING_PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    completed = run_behave(tmp_path)
    assert completed.returncode != 0
    results = read_results(tmp_path / "results")
    assert results["Everything defined"]["status"] == "passed"
    for name in ("An undefined step", "A pending step"):
        assert results[name]["status"] == "broken", results[name]
        assert [step["status"] for step in results[name]["steps"]] == ["passed", "broken"]
    skipped = results["A scenario that skips itself half-way"]
    assert skipped["status"] == "skipped" and "needs a replica" in skipped["statusDetails"]["message"]
    assert "Agreed behaviour not built yet" not in results  # excluded by tags: absent, as documented
