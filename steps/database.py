"""Steps about the scenario's database: what is in it, before and after pgship acts on it.

Every scenario starts with its own empty database (see environment.py); these
steps read it directly, never through pgship, so they check pgship's work
rather than repeat it.
"""

from __future__ import annotations

from typing import Any

from behave import given, then

from pgship.testing.spec import attachments
from pgship.testing.spec.workspace import SAMPLE_APP, sha256_of_migration_text
from pgship.testing.spec.world import TRACKING_TABLE
from steps.support import (
    applied_versions,
    ensure_release_applied,
    file_of_version,
    rows_for_version,
    schema_snapshot,
    version_key,
    version_list,
)


@given("a fresh database")
def fresh_database(context: Any) -> None:
    snapshot = schema_snapshot(context)
    assert snapshot == [], f"a fresh database should be empty, found {snapshot}"
    assert not context.world.table_exists(TRACKING_TABLE), "a fresh database has no tracking table"


@given("a database at release {number:d}")
def database_at_release(context: Any, number: int) -> None:
    ensure_release_applied(context, number)


@given("the shop already has customers")
def shop_has_customers(context: Any) -> None:
    context.world.query(
        "INSERT INTO customers (name, email) "
        "VALUES ('Ada', 'ada@example.com'), ('Grace', 'grace@example.com')"
    )
    context.world.facts["customers"] = context.world.query("SELECT * FROM customers ORDER BY id")


@then("the shop's customers are still there")
def customers_still_there(context: Any) -> None:
    now = context.world.query("SELECT * FROM customers ORDER BY id")
    assert now == context.world.facts["customers"], (
        f"customers before: {context.world.facts['customers']}, now {now}"
    )


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
    assert not rows_for_version(context, version), f"migration {version} is recorded as applied"
    before = context.world.facts["schema_before"]
    after = schema_snapshot(context)
    attachments.attach_json("schema after the failed deploy", after)
    added = [item for item in after if item not in before]
    removed = [item for item in before if item not in after]
    assert not added and not removed, f"the schema changed: added {added}, removed {removed}"


@then("the database has no tracking table")
def no_tracking_table(context: Any) -> None:
    assert not context.world.table_exists(TRACKING_TABLE)


@then("the database is still empty: no tracking table, no schema objects")
def database_still_empty(context: Any) -> None:
    assert not context.world.table_exists(TRACKING_TABLE), "pgship created the tracking table"
    snapshot = schema_snapshot(context)
    assert snapshot == [], f"the database is no longer empty: {snapshot}"


@then("the schema and the tracking table are exactly as they were")
def schema_and_rows_unchanged(context: Any) -> None:
    facts = context.world.facts
    after = schema_snapshot(context)
    attachments.attach_json("schema fingerprint", after)
    assert after == facts["schema_before"], "the schema changed"
    rows = context.world.tracking_rows()
    assert rows == facts["rows_before"], f"the tracking table changed:\n{facts['rows_before']}\n->\n{rows}"


@then("each migration's changes and its tracking row were committed together, in a transaction of their own")
def one_transaction_per_migration(context: Any) -> None:
    # xmin is the id of the transaction that wrote a row: the tracking row and the catalog
    # rows of the objects a migration created share it only if one transaction made both.
    world = context.world
    rows = world.query(f"SELECT version::text AS version, xmin::text AS xid FROM {TRACKING_TABLE}")
    evidence = []
    for row in rows:
        objects = world.query(
            "SELECT c.relname::text AS object FROM pg_class AS c JOIN pg_namespace AS n "
            "ON n.oid = c.relnamespace AND n.nspname = 'public' WHERE c.xmin::text = %(xid)s "
            "UNION SELECT c.relname || '.' || a.attname FROM pg_attribute AS a "
            "JOIN pg_class AS c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'v', 'm') "
            "JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = 'public' "
            "WHERE a.xmin::text = %(xid)s AND a.attnum > 0 ORDER BY 1",
            {"xid": row["xid"]},
        )
        evidence.append({**row, "objects committed with it": [item["object"] for item in objects]})
    attachments.attach_json("transaction of each migration", evidence)
    assert rows, "nothing is recorded"
    for item in evidence:
        assert item["objects committed with it"], (
            f"migration {item['version']}'s tracking row was committed without any of its changes: {evidence}"
        )
    transactions = [item["xid"] for item in evidence]
    assert len(set(transactions)) == len(transactions), f"migrations shared a transaction: {evidence}"


@then("migration {version} was applied exactly once")
def applied_exactly_once(context: Any, version: str) -> None:
    rows = rows_for_version(context, version)
    assert len(rows) == 1, f"expected one tracking row for migration {version}, found {rows}"
    extra = context.world.facts["extra_migrations"]
    if extra.proof_sql:
        found = context.world.query(extra.proof_sql)[0]["proof"]
        assert found == extra.proof, (
            f"migration {version} did not do its work once: {extra.proof_sql} -> {found}"
        )


@then("migrations {versions} keep their original tracking rows")
def original_rows_kept(context: Any, versions: str) -> None:
    before = {row["version"]: row for row in context.world.facts["rows_before"]}
    now = {row["version"]: row for row in context.world.tracking_rows()}
    for version in version_list(versions):
        assert now.get(version) == before.get(version), (
            f"migration {version}'s row changed: {before.get(version)} -> {now.get(version)}"
        )


@then("migration {version} stays recorded as applied")
def stays_recorded(context: Any, version: str) -> None:
    before = [row for row in context.world.facts["rows_before"] if row["version"] == version]
    now = rows_for_version(context, version)
    assert before and now == before, (
        f"migration {version}'s tracking row changed or disappeared: {before} -> {now}"
    )


@then("the {description} {name:w} no longer exists")
def object_gone(context: Any, description: str, name: str) -> None:
    assert not context.world.table_exists(name), f"the {description} {name} still exists"


@then("the index {name:w} exists and is valid")
def index_valid(context: Any, name: str) -> None:
    rows = context.world.query(
        "SELECT indisvalid, indisready, pg_get_indexdef(indexrelid) AS definition FROM pg_index "
        "WHERE indexrelid = to_regclass(%s)",
        (name,),
    )
    assert rows, f"there is no index {name}"
    attachments.attach_json(f"index {name}", rows[0])
    assert rows[0]["indisvalid"] and rows[0]["indisready"], f"index {name} is not valid: {rows[0]}"


@then("migration {version} is recorded with the checksum of its edited file")
def recorded_with_edited_checksum(context: Any, version: str) -> None:
    text = file_of_version(context, version).read_text(encoding="utf-8")
    [row] = rows_for_version(context, version)
    assert row["checksum"] == sha256_of_migration_text(text), (
        f"row {row} does not carry the edited file's checksum"
    )
    assert row["checksum"] != context.world.facts["checksum_before_edit"], "the checksum did not change"


@then(
    "migrations {versions} were adopted, keeping their original dates "
    "and gaining the checksums of their files"
)
def legacy_rows_adopted(context: Any, versions: str) -> None:
    before = {row["version"]: row for row in context.world.facts["rows_before"]}
    for version in version_list(versions):
        [row] = rows_for_version(context, version)
        assert row["applied_at"] == before[version]["applied_at"], (
            f"migration {version}'s date changed: {row}"
        )
        assert row["checksum"] == SAMPLE_APP.by_version(version).checksum, f"no checksum adopted: {row}"
    reported = context.world.facts["deploy"].json()
    assert sorted(reported["adopted"], key=version_key) == version_list(versions), reported
    attachments.attach_json("tracking table after the take-over", context.world.tracking_rows())


@then("migrations {versions} are recorded as applied by the baseline, without running them")
def recorded_by_baseline(context: Any, versions: str) -> None:
    rows = context.world.tracking_rows()
    attachments.attach_json("tracking table after the baseline", rows)
    assert sorted(row["version"] for row in rows) == version_list(versions), rows
    for row in rows:
        assert row["checksum"] == SAMPLE_APP.by_version(row["version"]).checksum, row
        assert row["execution_ms"] is None and str(row["applied_by"]).startswith("baseline by"), row
    assert schema_snapshot(context) == context.world.facts["schema_before"], "the baseline changed the schema"


@then("the table {name:w} that migration {version} creates belongs to the user that runs the deploy")
def table_owned_by_deployer(context: Any, name: str, version: str) -> None:
    [row] = context.world.query(
        "SELECT tableowner::text AS owner, current_user::text AS deployer FROM pg_tables "
        "WHERE schemaname = 'public' AND tablename = %s",
        (name,),
    )
    assert row["owner"] == row["deployer"], f"{name} belongs to {row['owner']}, not to {row['deployer']}"


@then("the database has no table {name:w}")
def no_such_table(context: Any, name: str) -> None:
    assert not context.world.table_exists(name), f"the table {name} exists"
