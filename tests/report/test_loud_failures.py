"""A broken step or a broken hook fails the run and shows as failed/broken in the report.

Stock allure-behave shows a failing before_scenario as *skipped*, drops every
scenario of a feature whose before_feature failed, writes nothing for a failing
before_all and drops scenarios under ``Rule:``. These tests run behave on a
small project in a temp folder that uses the real hooks (environment.py, with
deliberate breakage added around them), the real formatter and a real embedded
PostgreSQL, then read the results and the built report.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.report.conftest import REPO, build_report, read_results, run_behave

PYPROJECT = """\
[tool.behave]
paths = ["features"]
default_tags = ["not @pending"]
format = ["pgship.testing.spec.allure_formatter:PgshipAllureFormatter"]
outfiles = ["results"]
default_format = "plain"
show_skipped = false
"""

ENVIRONMENT = f"""\
import runpy

from pgship.testing.spec.runinfo import loud_hook

_real = runpy.run_path({str(REPO / "environment.py")!r})
before_all = _real["before_all"]
after_scenario = _real["after_scenario"]
after_all = _real["after_all"]


@loud_hook
def before_feature(context, feature):
    if "broken_before_feature" in feature.tags:
        raise RuntimeError("deliberately broken before_feature hook")


@loud_hook
def before_scenario(context, scenario):
    if "broken_before_scenario" in scenario.tags:
        raise RuntimeError("deliberately broken before_scenario hook")
    _real["before_scenario"](context, scenario)
"""

STEPS = """\
from behave import given, then


@given("the scenario has its own database")
def own_database(context):
    assert context.world.query("SELECT 1 AS one") == [{"one": 1}]


@given("these rows")
def rows(context):
    assert len(context.table.rows) == 2


@then("all is well")
def all_is_well(context):
    pass


@then("a deliberately broken expectation fails")
def broken(context):
    assert 1 == 2, f"deliberately broken step (database {context.world.database_url})"
"""

FEATURE_A = """\
Feature: Probe A
  As the harness's author
  I want failures to be loud
  So that a broken run is never mistaken for a green one

  Scenario: A passing scenario
    Given the scenario has its own database
    Then all is well

  Scenario: A broken step
    Given the scenario has its own database
    Then a deliberately broken expectation fails

  @broken_before_scenario
  Scenario: A scenario whose hook breaks
    Given the scenario has its own database
    Then all is well

  @pending
  Scenario: A pending scenario
    Then all is well

  Rule: Scenarios under a rule are reported

    Scenario: A rule scenario with a table
      Given these rows
        | version | name   |
        | 001     | first  |
        | 002     | second |
      Then all is well
"""

FEATURE_B = """\
@broken_before_feature
Feature: Probe B

  Scenario: First scenario of a feature whose hook breaks
    Then all is well

  Scenario: Second scenario of a feature whose hook breaks
    Then all is well
"""


def make_project(root: Path, features: dict[str, str]) -> Path:
    (root / "features").mkdir(parents=True)
    (root / "steps").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "environment.py").write_text(ENVIRONMENT)
    (root / "steps" / "probe.py").write_text(STEPS)
    for name, text in features.items():
        (root / "features" / name).write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = make_project(tmp_path_factory.mktemp("loud"), {"a.feature": FEATURE_A, "b.feature": FEATURE_B})
    completed = run_behave(root, env={"PGSHIP_TEST_DB": "embedded"})
    results = read_results(root / "results")
    index = build_report(root / "results", root / "report")
    summary = json.loads((index.parent / "summary.json").read_text())
    return {"completed": completed, "results": results, "summary": summary, "root": root}


def test_the_run_fails(broken_run: dict[str, Any]) -> None:
    assert broken_run["completed"].returncode != 0


def test_a_broken_step_is_failed(broken_run: dict[str, Any]) -> None:
    result = broken_run["results"]["A broken step"]
    assert result["status"] == "failed"
    assert "deliberately broken step" in result["statusDetails"]["message"]


def test_a_broken_before_scenario_is_broken_not_skipped(broken_run: dict[str, Any]) -> None:
    result = broken_run["results"]["A scenario whose hook breaks"]
    assert result["status"] == "broken"
    assert "deliberately broken before_scenario hook" in result["statusDetails"]["message"]


def test_a_broken_before_feature_shows_its_scenarios_as_broken(broken_run: dict[str, Any]) -> None:
    for name in (
        "First scenario of a feature whose hook breaks",
        "Second scenario of a feature whose hook breaks",
    ):
        result = broken_run["results"][name]
        assert result["status"] == "broken"
        assert "deliberately broken before_feature hook" in result["statusDetails"]["message"]


def test_scenarios_under_a_rule_are_reported_with_the_narrative(broken_run: dict[str, Any]) -> None:
    result = broken_run["results"]["A rule scenario with a table"]
    assert result["status"] == "passed"
    assert result["description"].startswith("As the harness's author")
    assert "**Rule: Scenarios under a rule are reported**" in result["description"]
    labels = {(label["name"], label["value"]) for label in result["labels"]}
    assert ("story", "Scenarios under a rule are reported") in labels


def test_healthy_scenarios_still_pass_and_pending_ones_are_absent(broken_run: dict[str, Any]) -> None:
    assert broken_run["results"]["A passing scenario"]["status"] == "passed"
    assert "A pending scenario" not in broken_run["results"]


def test_the_report_counts_them(broken_run: dict[str, Any]) -> None:
    stats = broken_run["summary"]["stats"]
    assert (stats.get("passed"), stats.get("failed"), stats.get("broken")) == (2, 1, 3)
    assert broken_run["summary"]["status"] == "failed"


def test_no_password_reaches_the_results(broken_run: dict[str, Any]) -> None:
    # the broken step's message holds the scenario's URL; the scrubber must have masked its password
    message = broken_run["results"]["A broken step"]["statusDetails"]["message"]
    assert "postgresql://postgres:********@127.0.0.1" in message


def test_a_broken_before_all_is_a_broken_result_and_fails_the_run(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"a.feature": FEATURE_A})
    unreachable = "postgresql://postgres:not-a-real-secret@127.0.0.1:9/postgres"
    completed = run_behave(root, "-D", "db=url", env={"DATABASE_URL": unreachable})
    assert completed.returncode != 0
    results = read_results(root / "results")
    harness = [result for name, result in results.items() if name.startswith("Harness: before_all failed")]
    assert len(harness) == 1 and harness[0]["status"] == "broken"
    assert "127.0.0.1" in harness[0]["statusDetails"]["message"]
    for path in (root / "results").iterdir():
        assert "not-a-real-secret" not in path.read_text(errors="replace"), f"password in {path.name}"
