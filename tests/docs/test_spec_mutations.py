"""tools/spec_mutations.py breaks pgship by replacing texts of its source: every text must still be there,
or the mutation check silently stops checking anything (it went stale that way once)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mutations() -> dict[str, list[tuple[str, str, str]]]:
    spec = importlib.util.spec_from_file_location("spec_mutations", ROOT / "tools" / "spec_mutations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.MUTATIONS)


@pytest.mark.parametrize("name", sorted(mutations()))
def test_every_mutation_still_finds_its_text_exactly_once(name: str):
    for path, old, new in mutations()[name]:
        text = (ROOT / path).read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{name}: {old!r} occurs {text.count(old)} times in {path}"
        assert old != new
