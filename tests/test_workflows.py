"""The GitHub workflows: actionlint accepts them, and they keep the promises the docs make."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / "scripts" / "actionlint.sh"


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps_of(job: dict) -> list[dict]:
    return job["steps"]


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ACTIONLINT), *map(str, files)], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_actionlint_accepts_every_workflow() -> None:
    result = run_actionlint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 workflow file(s) checked, 0 problem(s)" in result.stdout


def test_actionlint_really_lints(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    needs: nowhere\n"
        "    steps:\n"
        "      - run: echo '${{ github.event.pull_request.title }}'\n"
    )
    result = run_actionlint(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[job-needs]" in result.stdout
    assert "potentially untrusted" in result.stdout


@pytest.mark.parametrize("name", ["ci.yml", "deploy.yml", "pages.yml", "review.yml", "fleet.yml"])
def test_no_secret_is_written_in_a_workflow(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    assert not re.search(r"postgres(ql)?://", text), "a database URL in a workflow"
    assert not re.search(
        r"(?i)(password|token)\s*[:=]\s*['\"]?[A-Za-z0-9/+_-]{8,}", text.replace("${{", "")
    ), "a literal credential in a workflow"


def test_ci_runs_both_backends_and_uploads_the_single_file_report() -> None:
    job = workflow("ci.yml")["jobs"]["spec"]
    legs = {leg["backend"]: leg["image"] for leg in job["strategy"]["matrix"]["include"]}
    assert set(legs) == {"embedded", "versions", "container"}
    # the embedded builds need Debian 12's libraries; the container leg needs the host's Docker
    assert legs["embedded"] == legs["versions"] == "python:3.11-bookworm" and legs["container"] == ""
    assert job["container"] == "${{ matrix.image }}"
    commands = " ".join(step.get("run", "") for step in steps_of(job))
    assert "make test" in commands and "make spec-container" in commands
    assert "make spec-matrix" in commands
    upload = next(
        step for step in steps_of(job) if step.get("uses", "").startswith("actions/upload-artifact")
    )
    assert upload["with"]["path"] == "reports/allure-report/index.html"


def test_deploy_builds_then_deploys_then_gates_on_the_released_commit() -> None:
    config = workflow("deploy.yml")
    job = config["jobs"]["deploy"]
    names = [step.get("name", step.get("uses", "")) for step in steps_of(job)]
    build = names.index("Build the image")
    deploy = next(i for i, name in enumerate(names) if name.startswith("pgship deploy"))
    gate = names.index("Health gate on the released commit")
    assert build < deploy < gate
    deploy_step = steps_of(job)[deploy]
    assert deploy_step["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL }}"
    assert "RELEASE_SHA" in steps_of(job)[gate]["run"]
    assert config["concurrency"]["cancel-in-progress"] is False


def test_pages_publishes_the_report_with_its_history() -> None:
    jobs = workflow("pages.yml")["jobs"]
    build_runs = " ".join(step.get("run", "") for step in steps_of(jobs["build"]))
    assert "history" in build_runs and "make spec" in build_runs
    assert any(step.get("uses", "").startswith("actions/deploy-pages") for step in steps_of(jobs["deploy"]))


def test_review_posts_the_release_review_on_pull_requests_touching_the_migrations() -> None:
    config = workflow("review.yml")
    trigger = config[True]["pull_request"]  # PyYAML reads the key `on` as True
    assert trigger["paths"] == ["docker/postgres/migrations/**"]
    steps = steps_of(config["jobs"]["review"])
    review = next(step for step in steps if step.get("id") == "review")
    assert "pgship review --markdown --fail-on access-exclusive:1000000" in review["run"]
    assert '>> "$GITHUB_STEP_SUMMARY"' in review["run"]
    assert review["env"]["DATABASE_URL"] == "${{ secrets.REVIEW_DATABASE_URL }}"
    runs = [step.get("run", "") for step in steps]
    comment = next(i for i, run in enumerate(runs) if "gh pr comment" in run)
    gate = next(i for i, run in enumerate(runs) if "exit 1" in run)
    assert steps.index(review) < comment < gate, "the comment is posted even when the gate fails"
