"""Steps about migration files and releases: what is shipped, what pgship applies, what it records.

"Release N" is the sample shop's first N migrations (versions 001, 002, 003,
005, 010: numbering may skip). "Deployed" here means `pgship migrate` against
the scenario's database with that release's files; the full deploy pipeline
(`pgship deploy`) has its own steps in deploy.py.
"""

from __future__ import annotations

from typing import Any

from behave import given, then, when

from pgship.testing.spec import attachments
from pgship.testing.spec.workspace import SAMPLE_APP, sha256_of_migration_text
from steps.support import applied_versions, schema_snapshot, version_key, version_list


@given("release {number:d} is shipped")
def release_is_shipped(context: Any, number: int) -> None:
    context.world.workspace.ship_release(number)
    context.world.facts["shipped_release"] = number


@given("release {number:d}, in which migration {version} fails")
def release_with_failing_migration(context: Any, number: int, version: str) -> None:
    context.world.workspace.ship_release(number, broken=(version,))
    context.world.facts["shipped_release"] = number


@when("release {number:d} is deployed")
@when("release {number:d} is deployed again")
def release_is_deployed(context: Any, number: int) -> None:
    world = context.world
    if world.facts.get("shipped_release") != number:
        world.workspace.ship_release(number)
        world.facts["shipped_release"] = number
    world.facts["rows_before"] = world.tracking_rows()
    world.facts["schema_before"] = schema_snapshot(context)
    applied = set(applied_versions(context))
    for path in sorted(world.workspace.migrations_dir.glob("*.sql")):
        if path.name.partition("_")[0] not in applied:
            attachments.attach_sql(path)
    world.facts["deploy"] = world.cli.run("migrate", json_output=True)


@then("the deploy succeeds")
def deploy_succeeds(context: Any) -> None:
    result = context.world.facts["deploy"]
    assert result.exit_code == 0, f"pgship migrate exited {result.exit_code}:\n{result.output}"
    assert result.json()["status"] in ("ok", "up_to_date"), result.stdout


@then("the deploy fails with exit code {code:d}")
def deploy_fails(context: Any, code: int) -> None:
    result = context.world.facts["deploy"]
    assert result.exit_code == code, f"expected exit code {code}, got {result.exit_code}:\n{result.output}"
    assert result.json()["status"] == "failed", result.stdout


@then("migrations {versions} are applied, in that order")
def applied_in_order(context: Any, versions: str) -> None:
    expected = version_list(versions)
    reported = [item["version"] for item in context.world.facts["deploy"].json()["applied"]]
    assert reported == expected, f"pgship reports applying {reported}, expected {expected}"
    before = {row["version"] for row in context.world.facts["rows_before"]}
    new_rows = [row for row in context.world.tracking_rows() if row["version"] not in before]
    recorded = [row["version"] for row in sorted(new_rows, key=lambda row: row["applied_at"])]
    assert recorded == expected, (
        f"the tracking table shows {recorded} applied in that order, expected {expected}"
    )


@then("the tracking table has one row for each of migrations {versions}")
def one_row_each(context: Any, versions: str) -> None:
    expected = sorted(version_list(versions), key=version_key)
    found = sorted(applied_versions(context), key=version_key)
    assert found == expected, f"tracking table rows: {found}, expected {expected}"
    attachments.attach_json("tracking table", context.world.tracking_rows())


@then(
    "each row records the migration's name, the checksum of its file, "
    "how long it took and the database user who applied it"
)
def rows_record_everything(context: Any) -> None:
    user = context.world.query("SELECT current_user AS name")[0]["name"]
    for row in context.world.tracking_rows():
        migration = SAMPLE_APP.by_version(row["version"])
        file_text = context.world.workspace.path_of(migration).read_text(encoding="utf-8")
        where = f"row {row['version']}"
        assert row["name"] == migration.name, f"{where}: name {row['name']!r}, expected {migration.name!r}"
        assert row["checksum"] == sha256_of_migration_text(file_text), f"{where}: checksum is not the file's"
        assert isinstance(row["execution_ms"], int) and row["execution_ms"] >= 0, (
            f"{where}: execution_ms {row['execution_ms']!r}"
        )
        assert row["applied_at"] is not None, f"{where}: no applied_at"
        assert row["applied_by"] and str(row["applied_by"]).split()[0] == user, (
            f"{where}: applied_by {row['applied_by']!r} does not name the database user {user!r}"
        )


@then("no migration is applied")
def nothing_applied(context: Any) -> None:
    assert context.world.facts["deploy"].json()["applied"] == [], context.world.facts["deploy"].stdout
    assert context.world.tracking_rows() == context.world.facts["rows_before"], "the tracking table changed"
    assert schema_snapshot(context) == context.world.facts["schema_before"], "the schema changed"


@then("pgship reports that the database is up to date")
def reports_up_to_date(context: Any) -> None:
    assert context.world.facts["deploy"].json()["status"] == "up_to_date", context.world.facts[
        "deploy"
    ].stdout


@then("migration {version} was not applied")
def migration_not_applied(context: Any, version: str) -> None:
    assert version not in applied_versions(context), f"migration {version} was applied"


@then("the error names migration {version}, the line that failed and the database's message")
def error_names_everything(context: Any, version: str) -> None:
    from pgship.testing.spec.workspace import EXPECTED_FAILURES

    expected = EXPECTED_FAILURES[version]
    error = context.world.facts["deploy"].json()["error"]
    assert error["version"] == version, f"error names version {error['version']!r}"
    assert error["file"] == SAMPLE_APP.broken_variant(version).filename, f"error names file {error['file']!r}"
    assert error["line"] == expected.line, f"error names line {error['line']}, expected {expected.line}"
    assert error["sqlstate"] == expected.sqlstate, f"SQLSTATE {error['sqlstate']}"
    assert error["server_message"] == expected.message, f"server message {error['server_message']!r}"
