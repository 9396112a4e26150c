"""The deploy's pure decisions: when a health answer passes the gate, and what the report says."""

from __future__ import annotations

import json

import pytest

from pgship.deploy import DeployReport, StageResult, display_url, health_verdict, summary
from pgship.errors import StageFailed


def answer(status: str, release: str | None = "abc", **extra: object) -> str:
    document: dict[str, object] = {"status": status, **extra}
    if release is not None:
        document["releaseId"] = release
    return json.dumps(document)


def test_pass_with_the_expected_release_opens_the_gate():
    assert health_verdict(200, answer("pass"), release_id="abc") == (
        True,
        "HTTP 200, status pass, releaseId abc",
    )


def test_pass_without_an_expected_release_opens_the_gate():
    assert health_verdict(200, answer("pass", release=None), release_id=None)[0]


def test_the_previous_release_answering_keeps_the_gate_closed():
    healthy, line = health_verdict(200, answer("pass", "old"), release_id="abc")
    assert not healthy and line.endswith("releaseId old, expected releaseId abc")


def test_fail_keeps_the_gate_closed_and_shows_why():
    healthy, line = health_verdict(503, answer("fail", output="1 pending migration: 008"), release_id="abc")
    assert not healthy and "status fail (1 pending migration: 008)" in line


@pytest.mark.parametrize(("accept_warn", "expected"), [(False, False), (True, True)])
def test_warn_passes_only_when_accepted(accept_warn: bool, expected: bool):
    assert health_verdict(200, answer("warn"), release_id="abc", accept_warn=accept_warn)[0] is expected


def test_an_answer_that_is_not_a_health_document_says_so():
    assert health_verdict(502, "<html>bad gateway</html>", release_id=None) == (
        False,
        "HTTP 502, not a health document",
    )
    assert "PGSHIP_HEALTH_TOKEN" in health_verdict(401, '{"error": "unauthorized"}', release_id=None)[1]


def test_urls_are_shown_without_credentials():
    assert display_url("https://user:s3cret@app.example.com/health") == "https://app.example.com/health"


def test_the_summary_names_the_failed_stage_and_what_did_not_run():
    report = DeployReport(
        stages=[
            StageResult("wait", "ok", 10),
            StageResult("verify", "ok", 20),
            StageResult("build", "skipped", 0, "no --build command"),
            StageResult("migrate", "failed", 30, "002_x.sql:1: boom"),
            StageResult("start", "skipped", 0, "not run: the migrate stage failed"),
            StageResult("health", "skipped", 0, "not run: the migrate stage failed"),
        ],
        error=StageFailed("boom"),
        duration_ms=1234,
    )
    assert report.failed_stage == "migrate"
    assert summary(report) == "Deploy failed at the migrate stage after 1.2 s; not run: start, health."


def test_the_summary_of_a_success_lists_the_stages_that_ran():
    report = DeployReport(
        stages=[
            StageResult("wait", "ok", 12),
            StageResult("build", "skipped"),
            StageResult("start", "ok", 3000),
        ],
        duration_ms=3100,
    )
    assert summary(report) == "Deployed in 3.1 s (wait 12 ms, start 3.0 s)."
