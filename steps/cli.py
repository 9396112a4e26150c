"""Steps where the command a person types is the point: run it, read its exit code and output."""

from __future__ import annotations

import re
import shlex
from typing import Any

from behave import then, when

from steps.support import version_list


@when("I run `pgship {arguments}`")
def run_pgship(context: Any, arguments: str) -> None:
    context.world.cli.run(*shlex.split(arguments))


@then("the command exits with code {code:d}")
def exits_with(context: Any, code: int) -> None:
    result = context.world.last
    assert result.exit_code == code, f"expected exit code {code}, got {result.exit_code}:\n{result.output}"


@then("the output lists migrations {versions} as pending")
def lists_pending(context: Any, versions: str) -> None:
    output = context.world.last.stdout
    for version in version_list(versions):
        assert re.search(rf"^\s*{re.escape(version)}\s+pending\b", output, re.M), (
            f"migration {version} is not listed as pending:\n{output}"
        )


@then("the output says {text}")
def output_says(context: Any, text: str) -> None:
    expected = text.strip('"')
    assert expected in context.world.last.output, f"{expected!r} not in:\n{context.world.last.output}"
