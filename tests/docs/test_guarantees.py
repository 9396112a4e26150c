"""Every guarantee in the deployment guide names the scenarios that prove it, and the other way round.

A section that promises something (everything but the descriptive ones listed
below) ends with a ``**Proved by:**`` line linking to scenarios by name. Each
link must name a scenario that exists in that feature file, and every scenario
whose ``@allure.link.docs`` tag points at a section must be listed there: the
report links to the guide and the guide links to the report's scenarios.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from tests.conftest import ROOT
from tests.docs.guide import read

GUIDE = ROOT / "docs" / "DEPLOYMENT.md"
FEATURES = ROOT / "features"
#: Sections that describe or advise rather than promise: no scenario is owed.
DESCRIPTIVE = {
    "deploying-database-changes-with-pgship",
    "overview",
    "deployment-flow",
    "what-runs-where",
    "migration-system",
    "where-migrations-live",
    "automated-execution",
    "troubleshooting",
    "health-checks",
    "best-practices",
    "expand-and-contract",
    "references",
    "living-documentation",
}
_SCENARIO = re.compile(r"^\s*Scenario(?: Outline)?:\s*(?P<name>.+?)\s*$")
_DOCS_TAG = re.compile(r"@allure\.link\.docs:(?P<anchor>[\w-]+)")


def scenarios_by_file() -> dict[str, set[str]]:
    return {
        path.name: {m["name"] for line in path.read_text().splitlines() if (m := _SCENARIO.match(line))}
        for path in FEATURES.glob("*.feature")
    }


def scenarios_by_anchor() -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in FEATURES.glob("*.feature"):
        anchors: list[str] = []
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("@"):
                anchors += [m["anchor"] for m in _DOCS_TAG.finditer(stripped)]
                continue
            match = _SCENARIO.match(line)
            if match:
                for anchor in anchors:
                    found[anchor].add((path.name, match["name"]))
            if stripped and not stripped.startswith("#"):
                anchors = []
    return found


def proved_by(section: str) -> set[tuple[str, str]]:
    """The (feature file, scenario name) pairs a section's ``**Proved by:**`` line links to."""
    links = set()
    for line in section.splitlines():
        if line.startswith("**Proved by:**"):
            for text, target in re.findall(r"\[([^\]]+)\]\(([^)]+)\)", line):
                links.add((Path(target).name, text.replace("\\", "")))
    return links


def test_every_guarantee_section_names_the_scenarios_that_prove_it():
    document = read(GUIDE)
    missing = [
        heading.title
        for heading in document.headings
        if heading.anchor not in DESCRIPTIVE and not proved_by(document.section_text(heading.anchor))
    ]
    assert not missing, f"sections with no **Proved by:** scenario: {missing}"


def test_every_proved_by_link_names_an_existing_scenario():
    document = read(GUIDE)
    scenarios = scenarios_by_file()
    broken = [
        f"#{heading.anchor}: {feature} has no scenario {name!r}"
        for heading in document.headings
        for feature, name in proved_by(document.section_text(heading.anchor))
        if name not in scenarios.get(feature, set())
    ]
    assert not broken, "\n".join(broken)


def test_every_scenario_that_links_to_a_section_is_listed_there():
    document = read(GUIDE)
    unlisted = []
    for anchor, scenarios in scenarios_by_anchor().items():
        listed = proved_by(document.section_text(anchor)) if anchor in document.anchors else set()
        unlisted += [f"#{anchor}: {feature}: {name}" for feature, name in sorted(scenarios - listed)]
    assert not unlisted, "scenarios missing from their section's **Proved by:** line:\n" + "\n".join(unlisted)
