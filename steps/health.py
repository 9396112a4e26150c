"""Steps about the health endpoint (`pgship serve`: /health/live, /health, /health/database).

The endpoint runs as a real `pgship serve` subprocess (stopped after the
scenario) with the scenario's release files, and is asked over HTTP. It
reaches the database through the scenario's database link, so a step can take
the database away (refuse connections) or make it hang (freeze them) without
touching the server other scenarios use.
"""

from __future__ import annotations

import re
import secrets
import socket
from typing import Any
from urllib.parse import quote, urlsplit

from behave import given, register_type, then, when
from parse import with_pattern

from pgship.testing.spec import attachments
from pgship.testing.spec.background import Watched
from pgship.testing.spec.database_link import scenario_link, through_link
from pgship.testing.spec.health_endpoint import (
    CHECK_BOUND_S,
    MARGIN_S,
    HealthAnswer,
    HealthEndpoint,
    free_port,
)
from pgship.testing.spec.release_scripts import release_id
from pgship.testing.spec.secrets import password_of
from pgship.testing.spec.workspace import SAMPLE_APP
from steps.support import version_list

MEDIA_TYPE = "application/health+json"


@with_pattern(r"/health(?:/live|/database)?")
def _endpoint(text: str) -> str:
    return text


@with_pattern(r"pass|warn|fail")
def _health_status(text: str) -> str:
    return text


register_type(Endpoint=_endpoint, HealthStatus=_health_status)


# -- the running endpoint --------------------------------------------------------------
def start_health_endpoint(
    context: Any, number: int, *, token: str | None = None, url: str | None = None
) -> HealthEndpoint:
    """`pgship serve` of release ``number`` on a free port, through the link (or ``url``), answering."""
    world = context.world
    if world.facts.get("shipped_release") != number:
        world.workspace.ship_release(number)
        world.facts["shipped_release"] = number
    env = {"PGSHIP_HEALTH_TOKEN": token} if token else {}
    cli = through_link(world, **env)
    if url is not None:
        cli.database_url = url
    for attempt in range(1, 4):
        endpoint = HealthEndpoint(free_port(), token)
        serve = Watched.start(
            cli, "serve", "--port", str(endpoint.port), "--cache-ttl", "0", "--release-id", release_id(number)
        )
        try:
            serve.until(endpoint.is_live, timeout=30, what="serving")
            break
        except AssertionError:
            # the specification runs in 4 processes: another one may bind the free port between
            # free_port() and pgship binding it; a new port then, and any other failure is the failure
            taken = serve.proc.poll() is not None and "address already in use" in serve.output
            if attempt == 3 or not taken:
                raise
    world.facts.setdefault("health_servers", []).append(serve)
    world.facts.setdefault("health_endpoints", []).append(endpoint)
    return endpoint


def health_endpoint(context: Any) -> HealthEndpoint:
    endpoints = context.world.facts.get("health_endpoints")
    assert endpoints, "no health endpoint runs in this scenario"
    return endpoints[0]


def details(context: Any) -> dict[str, Any]:
    """A fresh ``/health/database`` document: its migrations check, with the top-level fields."""
    answer = health_endpoint(context).ask("/health/database")
    document = answer.document()
    assert "checks" in document, (
        f"/health/database answered {answer.status_code} without details:\n{answer.text}"
    )
    migrations = dict(document["checks"]["database:migrations"][0])
    migrations["_document"] = document
    return migrations


def check_answer(answer: HealthAnswer, code: int, status: str) -> dict[str, Any]:
    """The answer has the HTTP code, the health media type and the status; returns its document."""
    document = answer.document()
    assert answer.status_code == code, (
        f"GET {answer.path}: HTTP {answer.status_code}, expected {code}:\n{answer.text}"
    )
    assert answer.content_type.startswith(MEDIA_TYPE), (
        f"GET {answer.path}: content type {answer.content_type!r}"
    )
    assert document.get("status") == status, (
        f"GET {answer.path}: status {document.get('status')!r}, expected {status!r}"
    )
    return document


@given("the health endpoint of release {number:d} is running")
def endpoint_running(context: Any, number: int) -> None:
    start_health_endpoint(context, number)


@given("the health endpoint of release {number:d} is running with a bearer token for the details")
def endpoint_running_with_token(context: Any, number: int) -> None:
    token = secrets.token_urlsafe(24)
    attachments.scrubber().add(token)  # the report shows no token either
    context.world.facts["health_token"] = token
    start_health_endpoint(context, number, token=token)


@given("the shipped file of migration {version} no longer matches what the database applied")
def shipped_file_edited(context: Any, version: str) -> None:
    path = context.world.workspace.path_of(SAMPLE_APP.by_version(version))
    path.write_text(path.read_text(encoding="utf-8") + "-- reworded after it was applied\n", encoding="utf-8")
    attachments.attach_sql(path, name=f"{path.name} (edited)")


# -- the database underneath --------------------------------------------------------------
@given("the database has gone down")
@when("the database goes down")
def database_goes_down(context: Any) -> None:
    scenario_link(context.world).refuse()


@when("the database stops answering")
def database_hangs(context: Any) -> None:
    scenario_link(context.world).freeze()


@when("the database comes back")
def database_comes_back(context: Any) -> None:
    scenario_link(context.world).forward()


# -- what the endpoints answer ---------------------------------------------------------------
@then('{endpoint:Endpoint} answers {code:d} with status "{status:HealthStatus}"')
def endpoint_answers(context: Any, endpoint: str, code: int, status: str) -> None:
    check_answer(health_endpoint(context).ask(endpoint), code, status)


@then('{endpoint:Endpoint} answers {code:d} with status "{status:HealthStatus}", saying "{text}"')
def endpoint_answers_saying(context: Any, endpoint: str, code: int, status: str, text: str) -> None:
    document = check_answer(health_endpoint(context).ask(endpoint), code, status)
    assert text in document.get("output", ""), f"{endpoint} does not say {text!r}: {document}"


@then("/health/database answers 503 within the check's bound, saying the database did not answer")
def details_bounded(context: Any) -> None:
    # The client gives up after the documented bound plus a generous margin: a probe that
    # hangs (the failure this guards against) fails the step; a slow machine does not.
    answer = health_endpoint(context).ask("/health/database", timeout=CHECK_BOUND_S + MARGIN_S)
    document = check_answer(answer, 503, "fail")
    assert "did not answer within" in document.get("output", ""), f"unexpected reason: {document}"


@then("/health/database without the token answers 401")
def details_refused(context: Any) -> None:
    answer = health_endpoint(context).ask("/health/database", with_token=False)
    assert answer.status_code == 401, f"HTTP {answer.status_code}, expected 401:\n{answer.text}"
    assert answer.headers.get("www-authenticate", "").startswith("Bearer"), answer.headers
    assert "checks" not in answer.text and "shippedCount" not in answer.text, (
        f"details leaked:\n{answer.text}"
    )


@then('/health/database with the token answers {code:d} with status "{status:HealthStatus}"')
def details_with_token(context: Any, code: int, status: str) -> None:
    check_answer(health_endpoint(context).ask("/health/database", with_token=True), code, status)


# -- what the details say ---------------------------------------------------------------------
@then(
    "the details show release {number:d}: {count:d} migrations shipped and applied, "
    "the latest {version}, none pending"
)
def details_in_sync(context: Any, number: int, count: int, version: str) -> None:
    found = details(context)
    expected = SAMPLE_APP.release(number)
    assert len(expected) == count and expected[-1].version == version, (
        "the example contradicts the sample app"
    )
    assert found["_document"].get("releaseId") == release_id(number), found["_document"]
    for key, value in (
        ("shippedCount", count), ("appliedCount", count), ("latestShipped", version),
        ("latestApplied", version), ("pending", []), ("checksumMismatches", []), ("appliedWithoutFile", []),
    ):  # fmt: skip
        assert found[key] == value, f"{key} is {found[key]!r}, expected {value!r}"


@then("the details show {count:d} migrations shipped, the latest {version}")
def details_shipped(context: Any, count: int, version: str) -> None:
    files = sorted(context.world.workspace.migrations_dir.glob("*.sql"))
    assert len(files) == count, f"the example expects {count} files, the release has {len(files)}"
    found = details(context)
    assert found["shippedCount"] == count, (
        f"shippedCount {found['shippedCount']}, the release has {count} files"
    )
    assert found["latestShipped"] == version, (
        f"latestShipped {found['latestShipped']!r}, expected {version!r}"
    )


@then("the details list migrations {versions} as pending")
def details_pending(context: Any, versions: str) -> None:
    expected = version_list(versions)
    found = details(context)
    assert found["pending"] == expected, f"pending {found['pending']}, expected {expected}"
    for version in expected:
        assert version in found.get("output", ""), (
            f"the output does not name {version}: {found.get('output')!r}"
        )


@then("the details name migration {version} as edited after it was applied")
def details_edited(context: Any, version: str) -> None:
    found = details(context)
    assert found["checksumMismatches"] == [version], f"checksumMismatches {found['checksumMismatches']}"
    assert version in found.get("output", ""), f"the output does not name {version}: {found.get('output')!r}"
    assert found["pending"] == [], f"pending {found['pending']}"


@then("the details list migrations {versions} as applied without a file in this release")
def details_without_file(context: Any, versions: str) -> None:
    expected = version_list(versions)
    found = details(context)
    assert found["appliedWithoutFile"] == expected, f"appliedWithoutFile {found['appliedWithoutFile']}"
    assert found["pending"] == [] and found["checksumMismatches"] == [], found


@then("the details show the latest applied migration is {applied} while the release ships up to {shipped}")
def details_latest(context: Any, applied: str, shipped: str) -> None:
    found = details(context)
    assert (found["latestApplied"], found["latestShipped"]) == (applied, shipped), (
        f"latestApplied {found['latestApplied']!r}, latestShipped {found['latestShipped']!r}"
    )


# -- hostile clients -------------------------------------------------------------------------------
_UNFINISHED = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # no blank line: the head never ends


def _client_connection(context: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", health_endpoint(context).port), timeout=30)
    context.add_cleanup(sock.close)
    return sock


@when("a client holds {count:d} connections open, each with a request it never finishes")
def hold_connections(context: Any, count: int) -> None:
    for _ in range(count):
        _client_connection(context).sendall(_UNFINISHED)


@when("a client sends a request whose headers are {size:d} MiB")
def huge_headers(context: Any, size: int) -> None:
    sock = _client_connection(context)
    sock.sendall(_UNFINISHED + b"X-Huge: ")
    piece = b"a" * (1 << 20)
    for _ in range(size):
        sock.sendall(piece)
    sock.sendall(b"\r\n\r\n")
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    context.world.facts["huge_headers_answer"] = answer.split(b"\r\n", 1)[0].decode(errors="replace")


@then('that client is answered {code:d} "{reason}"')
def huge_headers_answered(context: Any, code: int, reason: str) -> None:
    answered = context.world.facts["huge_headers_answer"]
    assert answered == f"HTTP/1.1 {code} {reason}", f"the client was answered {answered!r}"


# -- secrets -------------------------------------------------------------------------------------
@when(
    "every health endpoint is asked while the database is behind, down, not answering, "
    "and refusing the password"
)
def ask_in_every_state(context: Any) -> None:
    world = context.world
    endpoint = health_endpoint(context)
    link = scenario_link(world)
    states: dict[str, list[HealthAnswer]] = {}

    def ask_all(state: str, target: HealthEndpoint) -> None:
        states[state] = [target.ask(path) for path in ("/health/live", "/health", "/health/database")]
        if target.token:
            states[state].append(target.ask("/health/database", with_token=False))

    ask_all("behind", endpoint)
    link.refuse()
    ask_all("down", endpoint)
    link.freeze()
    ask_all("not answering", endpoint)
    link.forward()
    wrong = _with_password(link.url, "Wr0ng-" + secrets.token_urlsafe(12))
    world.facts["wrong_password"] = password_of(wrong)
    attachments.scrubber().add(password_of(wrong))
    ask_all(
        "refusing the password", start_health_endpoint(context, world.facts["shipped_release"], url=wrong)
    )
    world.facts["answers_by_state"] = states


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


@then("every endpoint answered in each state")
def answered_in_each_state(context: Any) -> None:
    expected = {"behind": 503, "down": 503, "not answering": 503, "refusing the password": 503}
    for state, answers in context.world.facts["answers_by_state"].items():
        by_path = {(a.path, a.status_code) for a in answers}
        assert ("/health/live", 200) in by_path, f"{state}: /health/live did not answer 200: {by_path}"
        for path in ("/health", "/health/database"):
            assert (path, expected[state]) in by_path, (
                f"{state}: {path} did not answer {expected[state]}: {by_path}"
            )


@then("no health response contains the password, host, port, user or database name")
def no_secrets_in_answers(context: Any) -> None:
    world = context.world
    parts = urlsplit(world.database_url)
    link = scenario_link(world)
    forbidden = {
        "password": [password_of(world.database_url) or "", world.facts.get("wrong_password") or ""],
        "host": [parts.hostname or "", "localhost"],
        "port": [str(parts.port), str(link.port)],
        "user": [parts.username or ""],
        "database name": [world.database_name],
    }
    answers = [a for e in world.facts["health_endpoints"] for a in e.answers]
    assert len(answers) >= 15, f"only {len(answers)} answers were recorded"
    for answer in answers:
        text = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        for what, values in forbidden.items():
            for value in filter(None, values):
                assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", text), (
                    f"GET {answer.path} (HTTP {answer.status_code}) shows the database {what}:\n{text}"
                )


@then("the health endpoint's own log does not contain the password")
def no_password_in_serve_log(context: Any) -> None:
    world = context.world
    secrets_ = [password_of(world.database_url), world.facts.get("wrong_password")]
    for serve in world.facts["health_servers"]:
        result = serve.stop()
        for secret in filter(None, secrets_):
            for form in {secret, quote(secret, safe="")}:
                assert form not in result.output, f"`{result.display()}` logged a password:\n{result.output}"
