"""The guide's Mermaid diagrams render with the real mermaid library, as GitHub shows them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

GUIDE = ROOT / "docs" / "DEPLOYMENT.md"
RENDERER = ROOT / "tests" / "docs" / "render_mermaid.mjs"


def diagrams() -> list[str]:
    return re.findall(r"^```mermaid\n(.*?)^```", GUIDE.read_text(encoding="utf-8"), flags=re.M | re.S)


def test_the_guide_has_a_deployment_flow_diagram():
    flows = [d for d in diagrams() if "Run migrations" in d and "Start services" in d]
    assert flows, "no Mermaid diagram of the deployment flow in the guide"


def test_every_diagram_renders():
    if not (ROOT / "node_modules" / "mermaid").is_dir() or not shutil.which("chromium"):
        pytest.fail("needs `npm ci` (mermaid) and Debian's chromium: run `make test`, which installs both")
    sources = diagrams()
    completed = subprocess.run(
        ["node", str(RENDERER)],
        input=json.dumps(sources),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    results = json.loads(completed.stdout)
    failed = [f"diagram {r['index'] + 1}: {r['error']}" for r in results if not r["ok"]]
    assert len(results) == len(sources) and not failed, "\n".join(failed)
