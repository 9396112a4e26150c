"""The design's house rules, checked on the source: no private name crosses a module, and a long
module says why it stays one file (docs/ARCHITECTURE.md, "Checks that hold the design")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "pgship"
LONG = 400
REASON = "One file although over 400 lines"
#: what counts as saying why: REASON, or a sentence naming the limit ("longer than ~400 lines")
STATED = re.compile(r"(?:over|longer than)\s+~?400\s+lines", re.I)


def modules() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if "__pycache__" not in p.parts)


def private_imports(path: Path) -> list[str]:
    """``from pgship.x import _name`` and ``pgship.x._name`` in one module's imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pgship"):
            module = node.module or ""
            if any(part.startswith("_") and part != "__main__" for part in module.split(".")):
                found.append(f"line {node.lineno}: from {module} import ...")
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"line {node.lineno}: from {module} import {alias.name}")
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_no_private_name_is_imported_across_modules(path):
    assert private_imports(path) == [], f"{path.relative_to(SOURCE)} imports private names"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_a_module_over_400_lines_says_why_it_stays_one_file(path):
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n")
    if lines <= LONG:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert STATED.search(docstring), (
        f"{path.relative_to(SOURCE)} has {lines} lines: split it, or say at the top of its docstring "
        f"'{REASON}: ...' and why"
    )


def test_the_checks_see_a_private_import(tmp_path):
    # the check itself would fail if it stopped seeing the thing it forbids
    sample = tmp_path / "sample.py"
    sample.write_text("from pgship.cli.entry import _secret\nfrom pgship.runner import Runner\n")
    assert private_imports(sample) == ["line 1: from pgship.cli.entry import _secret"]
