"""Steps where the command a person types is the point: run it, read its exit code and output."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from behave import given, then, when

from pgship.testing.spec import attachments
from steps.support import version_list

#: the project's own template for new migrations, as a developer's checkout has it
PROJECT_TEMPLATE = (
    Path(__file__).resolve().parent.parent / "docker" / "postgres" / "migrations" / "TEMPLATE.sql"
)


@given("pgship replays migrations in a scratch database on the database's own server")
def replay_on_own_server(context: Any) -> None:
    # PGSHIP_REPLAY_URL, as CI sets it for a service container of the production image: the replay
    # runs on the live server's version, in a database pgship creates and drops.
    context.world.cli.env["PGSHIP_REPLAY_URL"] = context.world.server.admin_url


@given("pgship replays migrations on its embedded PostgreSQL")
def replay_on_embedded(context: Any) -> None:
    # the default: no PGSHIP_REPLAY_URL (an empty value counts as unset, whatever the caller's environment)
    context.world.cli.env["PGSHIP_REPLAY_URL"] = ""


@given("the project's migration template is in the migrations folder")
def project_template(context: Any) -> None:
    text = PROJECT_TEMPLATE.read_text(encoding="utf-8")
    context.world.workspace.write("TEMPLATE.sql", text)
    context.world.facts["template"] = text


@given("a new migration created with `pgship new {name}`")
def created_with_new(context: Any, name: str) -> None:
    result = context.world.cli.run("new", name, json_output=True)
    assert result.exit_code == 0, f"pgship new failed:\n{result.output}"
    context.world.facts["new_file"] = Path(result.json()["file"])


@given("its change written into it")
def change_written(context: Any) -> None:
    path: Path = context.world.facts["new_file"]
    path.write_text(
        path.read_text(encoding="utf-8") + "ALTER TABLE orders ADD COLUMN notes text;\n", encoding="utf-8"
    )
    attachments.attach_sql(path)


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


@then("the output lists migration {version} as applied but missing its file")
def lists_missing(context: Any, version: str) -> None:
    output = context.world.last.stdout
    assert re.search(rf"^\s*{re.escape(version)}\s+applied, FILE MISSING\b", output, re.M), (
        f"migration {version} is not listed as missing:\n{output}"
    )


@then("the output says {text}")
def output_says(context: Any, text: str) -> None:
    expected = text.removeprefix('"').removesuffix('"')
    assert expected in context.world.last.output, f"{expected!r} not in:\n{context.world.last.output}"


@then("the output flags {file} at line {line:d} with the rule {rule}")
def output_flags(context: Any, file: str, line: int, rule: str) -> None:
    pattern = rf"^lint: {re.escape(file)}:{line}:\d+: .* \[{re.escape(rule)}\]$"
    assert re.search(pattern, context.world.last.stdout, re.M), (
        f"no lint finding {file}:{line} [{rule}] in:\n{context.world.last.output}"
    )


@then("the migrations folder has a new file {filename}")
def folder_has_file(context: Any, filename: str) -> None:
    path = context.world.workspace.migrations_dir / filename
    assert path.is_file(), f"{filename} was not created: {sorted(p.name for p in path.parent.iterdir())}"
    context.world.facts["new_file"] = path
    attachments.attach_sql(path)


@then("the new file is the project's template with its version and name filled in")
def new_file_from_template(context: Any) -> None:
    path: Path = context.world.facts["new_file"]
    version, _, rest = path.stem.partition("_")
    text = path.read_text(encoding="utf-8")
    template: str = context.world.facts["template"]
    assert "{{" not in text, f"placeholders left in the new file:\n{text}"
    assert text.startswith(f"-- {version}_{rest}:"), f"the first line does not name the migration:\n{text}"
    # every line of the template without a placeholder is there unchanged
    kept = [line for line in template.splitlines() if "{{" not in line]
    assert [line for line in text.splitlines() if line in kept] == kept, "the template's text was not kept"
