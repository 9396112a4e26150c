"""The feature files as documentation: every scenario is labelled for the report and links to a real section.

A scenario's ``@allure.link.docs:<anchor>`` must name a heading of
docs/DEPLOYMENT.md (GitHub's anchor for it), or the report's link leads
nowhere. Each scenario also needs an epic, a story and a severity, and each
feature a narrative, so the report groups and explains it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from behave.model import ScenarioOutline
from behave.parser import parse_file

ROOT = Path(__file__).resolve().parents[2]
FEATURES = sorted((ROOT / "features").glob("*.feature"))
SEVERITIES = {"blocker", "critical", "normal", "minor", "trivial"}


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def guide_anchors() -> set[str]:
    text = (ROOT / "docs" / "DEPLOYMENT.md").read_text(encoding="utf-8")
    return {github_anchor(line.lstrip("#")) for line in text.splitlines() if re.match(r"^#{1,6} ", line)}


def scenarios():
    for path in FEATURES:
        feature = parse_file(str(path))
        for scenario in feature.walk_scenarios():
            if isinstance(scenario, ScenarioOutline):
                continue
            yield pytest.param(feature, scenario, id=f"{path.name}:{scenario.line}")


def test_github_anchors_follow_githubs_rules() -> None:
    assert github_anchor("A migration was applied by hand") == "a-migration-was-applied-by-hand"
    assert github_anchor("Expand and contract") == "expand-and-contract"


@pytest.mark.parametrize(("feature", "scenario"), list(scenarios()))
def test_each_scenario_is_labelled_and_links_to_a_section_of_the_guide(feature, scenario) -> None:
    tags = list(dict.fromkeys([*feature.tags, *scenario.tags]))  # an outline's examples repeat its tags
    links = [tag.split(":", 1)[1] for tag in tags if tag.startswith("allure.link.docs:")]
    assert len(links) == 1, f"{scenario.name}: needs exactly one docs link, has {links}"
    assert links[0] in guide_anchors(), f"{scenario.name}: #{links[0]} is not a heading of docs/DEPLOYMENT.md"
    assert any(tag.startswith("allure.label.epic:") for tag in tags), f"{scenario.name}: no epic"
    assert any(tag.startswith("allure.label.story:") for tag in tags), f"{scenario.name}: no story"
    assert SEVERITIES & set(tags), f"{scenario.name}: no severity tag"


@pytest.mark.parametrize("path", FEATURES, ids=lambda path: path.name)
def test_each_feature_has_a_narrative(path: Path) -> None:
    description = [line.strip().lower() for line in parse_file(str(path)).description]
    # the report's formatter recognises the narrative by these openings (allure_formatter._NARRATIVE_STARTS)
    assert description[0].startswith(("as a ", "as an ", "as the ")), (
        f"{path.name}: starts {description[0]!r}"
    )
    assert description[1].startswith("i want "), f"{path.name}: second line {description[1]!r}"
    assert description[2].startswith("so that "), f"{path.name}: third line {description[2]!r}"
