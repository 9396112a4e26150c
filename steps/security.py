"""Steps about secrets: pgship must never show the database password, and neither may the report.

The commands' output is checked as pgship printed it (before the report's own
scrubber), so a leak is pgship's, not hidden by the harness; the report's
attachment files are then checked as written to disk.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from behave import then, when

from pgship.testing.spec.secrets import password_of

#: every command, as a person would run it against a database and a release
EVERY_COMMAND = (
    ("status",),
    ("status", "--check"),
    ("plan",),
    ("verify",),
    ("migrate",),
    ("repair",),
    ("baseline", "001"),
    ("diff",),
    ("wait", "--wait", "1"),
)

WRONG_PASSWORD = "Wr0ng-Pa55word-f0r-the-scan"


def _with_password(url: str, password: str, port: int | None = None) -> str:
    parts = urlsplit(url)
    host = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{port or parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secrets(context: Any) -> list[str]:
    password = password_of(context.world.database_url) or ""
    assert password, "the scenario's database URL has no password, so this scan would prove nothing"
    return [password, quote(password, safe=""), WRONG_PASSWORD]


@when("every pgship command is run against it, as text and as JSON")
def every_command(context: Any) -> None:
    world = context.world
    world.facts["scan_started"] = time.time()
    world.cli.env["PGSHIP_REPLAY_URL"] = world.server.admin_url  # a second URL with the password in it
    for command in EVERY_COMMAND:
        for as_json in (False, True):
            world.cli.run(*command, json_output=as_json)


@when("pgship is pointed at the server with a wrong password and at a server that is not there")
def wrong_password_and_no_server(context: Any) -> None:
    world = context.world
    password = password_of(world.database_url) or ""
    for url, code, meaning in (
        (_with_password(world.database_url, WRONG_PASSWORD), 6, "refused for good"),
        (_with_password(world.database_url, password, port=_closed_port()), 3, "unreachable"),
    ):
        for as_json in (False, True):
            result = world.cli.run("migrate", "-d", url, json_output=as_json)
            assert result.exit_code == code, f"expected exit code {code} ({meaning}):\n{result.output}"


@then("none of their output contains a password")
def no_password_in_output(context: Any) -> None:
    secrets = _secrets(context)
    results = context.world.cli.history
    assert len(results) >= 2 * len(EVERY_COMMAND), "the commands did not all run"

    for result in results:
        assert result.output.strip(), f"`{result.display()}` printed nothing, so there was nothing to check"
        if "--json" in result.argv:
            result.json()  # a JSON document, even for errors
        for secret in secrets:
            assert secret not in result.output, f"`{result.display()}` printed a password:\n{result.output}"


@then("no report attachment of this scenario contains a password")
def no_password_in_attachments(context: Any) -> None:
    folder = _results_dir(context)
    started = context.world.facts["scan_started"]
    written = [path for path in folder.glob("*-attachment*") if path.stat().st_mtime >= started - 1]
    assert len(written) >= len(context.world.cli.history), (
        f"expected an attachment per command in {folder}, found {len(written)}"
    )
    for path in written:
        text = path.read_text(encoding="utf-8", errors="replace")
        for secret in _secrets(context):
            assert secret not in text, f"the report attachment {path.name} contains a password"


def _results_dir(context: Any) -> Path:
    """Where this run's Allure formatter writes (it must be active: the scan proves nothing otherwise)."""
    for formatter in getattr(context._runner, "formatters", []):
        folder = getattr(formatter, "results_dir", None)
        if folder is not None:
            return Path(folder)
    raise AssertionError(
        "the Allure formatter is not active in this run, so there are no attachments to scan"
    )


def _malformed_urls(url: str) -> dict[str, str]:
    """The scenario's URL, written wrongly in each way people get it wrong."""
    parts = urlsplit(url)
    password = quote(password_of(url) or "", safe="")
    host = f"{parts.hostname}:{parts.port}{parts.path}"
    return {
        "a colon missing": f"postgresql//{parts.username}:{password}@{host}",
        "a slash missing": f"postgresql:/{parts.username}:{password}@{host}",
        "a space in the password": f"postgresql://{parts.username}:{password} x@{host}",
        "a # in the password": f"postgresql://{parts.username}:{password}#x@{host}",
        "a ? in the password": f"postgresql://{parts.username}:{password}?x@{host}",
        "an @ in the password": f"postgresql://{parts.username}:{password}@x@{host}",
        "a port that is not a number": f"postgresql://{parts.username}:{password}@{parts.hostname}:5x{parts.path}",
    }


@when("every pgship command is given the database URL written wrongly, in each way people get it wrong")
def every_command_malformed(context: Any) -> None:
    world = context.world
    world.facts["malformed"] = _malformed_urls(world.database_url)
    world.facts["malformed_from"] = len(world.cli.history)
    for url in world.facts["malformed"].values():
        for command in (*EVERY_COMMAND, ("deploy", "--wait", "1")):
            for as_json in (False, True):
                world.cli.run(*command, "-d", url, json_output=as_json)


@then("every command refuses it as not a valid postgresql:// URL, with exit code {code:d}")
def every_command_refused(context: Any, code: int) -> None:
    results = context.world.cli.history[context.world.facts["malformed_from"] :]
    expected = len(context.world.facts["malformed"]) * (len(EVERY_COMMAND) + 1) * 2
    assert len(results) == expected, f"{len(results)} commands ran, expected {expected}"
    for result in results:
        shown = f"`{result.display()}` exited {result.exit_code}:\n{result.output}"
        assert result.exit_code == code, shown
        assert "not a valid postgresql:// URL" in result.output, shown
        assert "bug in pgship" not in result.output, shown
