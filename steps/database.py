"""Steps about the scenario's database: what is in it, before and after pgship acts on it.

Every scenario starts with its own empty database (see environment.py); these
steps read it directly, never through pgship, so they check pgship's work
rather than repeat it.
"""

from __future__ import annotations

from typing import Any

from behave import given, then

from pgship.testing.spec import attachments
from pgship.testing.spec.workspace import SAMPLE_APP
from steps.support import applied_versions, ensure_release_applied, schema_snapshot, version_key


@given("a fresh database")
def fresh_database(context: Any) -> None:
    snapshot = schema_snapshot(context)
    assert snapshot == [], f"a fresh database should be empty, found {snapshot}"


@given("a database at release {number:d}")
def database_at_release(context: Any, number: int) -> None:
    ensure_release_applied(context, number)


@then("the database is at release {number:d}")
@then("the database is still at release {number:d}")
def database_is_at_release(context: Any, number: int) -> None:
    expected = [migration.version for migration in SAMPLE_APP.release(number)]
    found = sorted(applied_versions(context), key=version_key)
    assert found == expected, f"release {number} means migrations {expected}; the database has {found}"
    rows = {row["version"]: row for row in context.world.tracking_rows()}
    for migration in SAMPLE_APP.release(number):
        assert rows[migration.version]["checksum"] == migration.checksum, (
            f"migration {migration.version} is recorded with a checksum that is not the release's file"
        )


@then("nothing of migration {version} remains in the database")
def nothing_of_migration_remains(context: Any, version: str) -> None:
    assert version not in applied_versions(context), f"migration {version} is recorded as applied"
    before = context.world.facts["schema_before"]
    after = schema_snapshot(context)
    attachments.attach_json("schema after the failed deploy", after)
    added = [item for item in after if item not in before]
    removed = [item for item in before if item not in after]
    assert not added and not removed, f"the schema changed: added {added}, removed {removed}"


@then("the database has no tracking table")
def no_tracking_table(context: Any) -> None:
    from pgship.testing.spec.world import TRACKING_TABLE

    assert not context.world.table_exists(TRACKING_TABLE)
