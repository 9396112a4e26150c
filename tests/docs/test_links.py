"""Every relative link and anchor in the docs resolves, and every scenario's docs link points at a heading."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import ROOT
from tests.docs.guide import read

DOCUMENTS = [
    ROOT / "docs" / "DEPLOYMENT.md",
    ROOT / "README.md",
    ROOT / "docker" / "postgres" / "migrations" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
GUIDE = ROOT / "docs" / "DEPLOYMENT.md"
DOCS_TAG = re.compile(r"@allure\.link\.docs:(?P<anchor>[\w-]+)")


def _relative_links(path: Path):
    for line, text, target in read(path).links:
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        yield line, text, target


@pytest.mark.parametrize("path", sorted(set(DOCUMENTS)), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(path):
    broken = []
    for line, text, target in _relative_links(path):
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"{path.name}:{line}: [{text}]({target}): {file_part} does not exist")
            continue
        if anchor and destination.suffix == ".md" and anchor not in read(destination).anchors:
            broken.append(f"{path.name}:{line}: [{text}]({target}): no heading #{anchor} in {destination}")
    assert not broken, "\n".join(broken)


def test_every_scenario_docs_link_points_at_a_heading_of_the_guide():
    anchors = read(GUIDE).anchors
    broken = []
    for feature in sorted((ROOT / "features").glob("*.feature")):
        for number, line in enumerate(feature.read_text(encoding="utf-8").splitlines(), start=1):
            for match in DOCS_TAG.finditer(line):
                if match["anchor"] not in anchors:
                    broken.append(f"{feature.name}:{number}: #{match['anchor']} is no heading of the guide")
    assert not broken, "\n".join(broken)


CITED_DOCUMENT = re.compile(r"\b(?:[\w.-]+/)*[A-Z][A-Z_-]*\.md\b")
CODE_ROOTS = ["src", "steps", "tests", "bench", "tools", "environment.py", "Makefile", "make", ".ci"]


def _code_files():
    for name in CODE_ROOTS:
        root = ROOT / name
        paths = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in paths:
            if (
                path.is_file()
                and path.suffix in {".py", ".mk", ".sh", ".mjs", ""}
                and "__pycache__" not in str(path)
                and ".tools" not in path.parts  # bench/.tools: the peers the bench installs (git-ignored)
            ):
                yield path


def test_every_document_the_code_cites_is_in_the_repository():
    """A contributor who clones the project can open every document a docstring or comment names."""
    documents = {path.name for path in ROOT.rglob("*.md") if "node_modules" not in path.parts}
    documents |= {
        str(path.relative_to(ROOT)) for path in ROOT.rglob("*.md") if "node_modules" not in path.parts
    }
    missing = []
    for path in _code_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for cited in CITED_DOCUMENT.findall(line):
                if cited not in documents and cited.split("/")[-1] not in documents:
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {cited}")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)
