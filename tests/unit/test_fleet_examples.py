"""The fleet examples the guide links to: the GitHub Actions matrix and the Kubernetes Indexed Job.

actionlint checks the workflow's syntax (tests/test_workflows.py); these tests check that both
examples keep the promises of docs/DEPLOYMENT.md, "Thousands of tenants": N jobs, shard K/N each,
covering the fleet exactly once, the canary first, no secret in the file.
"""

from __future__ import annotations

import re
import shlex

import yaml

from pgship.cli import build_parser
from tests.conftest import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "fleet.yml"
MANIFEST = ROOT / "docs" / "kubernetes" / "pgship-fleet-job.yaml"


def test_the_workflow_runs_the_canary_then_one_job_per_shard():
    config = yaml.safe_load(WORKFLOW.read_text())
    jobs = config["jobs"]
    canary_runs = " ".join(step.get("run", "") for step in jobs["canary"]["steps"])
    assert "pgship migrate --fleet" in canary_runs and "--shard" not in canary_runs
    shards = jobs["shards"]
    assert shards["needs"] == "canary"
    assert shards["strategy"]["fail-fast"] is False
    matrix = shards["strategy"]["matrix"]["shard"]
    runs = " ".join(step.get("run", "") for step in shards["steps"])
    count = int(re.search(r'--shard "\$SHARD/(\d+)"', runs)[1])
    assert matrix == list(range(1, count + 1)), "the matrix must list every shard 1..N once"
    assert config["concurrency"]["cancel-in-progress"] is False


def test_the_indexed_job_runs_every_shard_once():
    job = yaml.safe_load(MANIFEST.read_text())
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    command = " ".join(container["args"])
    count = int(re.search(r'--shard "\$\(\(JOB_COMPLETION_INDEX \+ 1\)\)/(\d+)"', command)[1])
    assert spec["completions"] == count  # index 0..N-1 -> shard 1..N
    assert container["env"][0]["valueFrom"]["secretKeyRef"]  # the URL comes from a Secret
    argv = shlex.split(command.replace('"$((JOB_COMPLETION_INDEX + 1))/20"', "1/20"))[
        2:
    ]  # after "exec pgship"
    args = build_parser().parse_args(argv)  # the options exist and parse
    assert args.fleet == "fleet/tenants.toml" and args.shard == "1/20" and args.parallel == 8


def test_no_database_url_or_password_in_the_examples():
    for path in (WORKFLOW, MANIFEST):
        text = path.read_text()
        assert not re.search(r"postgres(ql)?://", text), path
        assert not re.search(r"(?i)password\s*[:=]", text), path
