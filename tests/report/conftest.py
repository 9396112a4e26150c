"""Helpers to run behave, build the Allure report and look at it in Chromium, from tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pgship.testing.spec import report

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "tests" / "report" / "report_probe.mjs"


def run_behave(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """behave as a person runs it from ``cwd`` (which holds the pyproject.toml it reads)."""
    return subprocess.run(
        [sys.executable, "-m", "behave", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def read_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    """The Allure results of a run, by test name."""
    found: dict[str, dict[str, Any]] = {}
    for path in results_dir.glob("*-result.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[data["name"]] = data
    return found


def build_report(results_dir: Path, output_dir: Path) -> Path:
    """The single-file report, built as `make spec` builds it, but without touching the local history."""
    if not (REPO / "node_modules" / ".bin" / "allure").exists():
        pytest.fail("Allure 3 is not installed: run `npm ci` (or `make spec`) first")
    return report.generate(results_dir, output_dir, project_root=REPO, keep_history=False)


def open_in_chromium(index_html: Path, screenshot: Path) -> dict[str, Any]:
    """What a reader sees: tree groups, scenario titles and statuses, counters (see report_probe.mjs)."""
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not chromium:
        pytest.fail("Debian's chromium is not installed: run scripts/install-chromium.sh (or `make browser`)")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        ["node", str(PROBE), str(index_html), str(screenshot)],
        cwd=REPO,
        env={**os.environ, "CHROMIUM": chromium},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, f"report probe failed:\n{completed.stdout}\n{completed.stderr}"
    return json.loads(completed.stdout)


def behave_scenarios(behave_json: Path) -> list[tuple[str, str, str]]:
    """(feature, scenario, status) for every scenario behave ran, from its json formatter."""
    rows: list[tuple[str, str, str]] = []

    def walk(feature: str, elements: list[dict[str, Any]]) -> None:
        for element in elements:
            if element.get("type") == "scenario" or element.get("keyword") in ("Scenario", "Example"):
                rows.append((feature, element["name"], element.get("status", "")))
            walk(feature, element.get("elements", []) + element.get("scenarios", []))

    for feature in json.loads(behave_json.read_text(encoding="utf-8")):
        walk(feature["name"], feature.get("elements", []))
    return rows
