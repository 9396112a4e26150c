"""Reading other tools' tracking tables (pure): what each counts as applied, and what is refused."""

from __future__ import annotations

from datetime import datetime

from pgship import adopt
from pgship.migrations import Version

V = Version.parse
T = datetime(2024, 1, 1, 12, 0)


def versions(foreign: adopt.ForeignHistory, files: list[str] = ()) -> list[str]:
    return [r.version.text for r in adopt.applied_rows(foreign, [(V(f), f"m{f}") for f in files])]


def test_each_tool_is_recognised_by_its_columns_and_pgships_own_table_is_not():
    assert adopt.shape(["version", "dirty"]) == adopt.GOLANG_MIGRATE
    assert adopt.shape(["version"]) == adopt.DBMATE
    assert adopt.shape(["id", "version_id", "is_applied", "tstamp"]) == adopt.GOOSE
    flyway = ["installed_rank", "version", "description", "type", "script", "checksum", "installed_by"]
    assert adopt.shape([*flyway, "installed_on", "execution_time", "success"]) == adopt.FLYWAY
    assert adopt.shape(["version", "name", "applied_at"]) is None  # the old shell runner's: legacy path
    assert adopt.shape(["version", "name", "applied_at", "checksum", "execution_ms", "applied_by"]) is None


def test_golang_migrate_one_row_means_every_file_up_to_it_in_the_files_spelling():
    foreign = adopt.golang_migrate(None, "schema_migrations", [(3, False)])
    assert foreign.refusal is None and foreign.through == V("3")
    assert versions(foreign, ["000001", "000002", "000003", "000004"]) == ["000001", "000002", "000003"]
    named = adopt.applied_rows(foreign, [(V("000003"), "index")])
    assert [(r.version.text, r.name) for r in named] == [("000003", "index")]


def test_golang_migrate_recorded_version_without_a_file_stays_applied():
    foreign = adopt.golang_migrate(None, "schema_migrations", [(7, False)])
    assert versions(foreign, ["1", "2"]) == ["1", "2", "7"]


def test_golang_migrate_an_empty_table_has_nothing_applied():
    foreign = adopt.golang_migrate(None, "schema_migrations", [])
    assert foreign.refusal is None and versions(foreign, ["1", "2"]) == []


def test_golang_migrate_dirty_is_refused_and_a_baseline_drops_the_dirty_version():
    foreign = adopt.golang_migrate(None, "schema_migrations", [(20240102000000, True)])
    assert foreign.refusal is not None and foreign.refusal.versions == ["20240102000000"]
    assert "dirty at version 20240102000000" in foreign.refusal.message
    assert "migrate force 20240102000000" in foreign.refusal.hint
    assert "pgship baseline 20240102000000" in foreign.refusal.hint
    overridden = foreign.baselined()
    assert overridden.refusal is None and versions(overridden, ["20240101000000", "20240102000000"]) == []


def test_golang_migrate_more_than_one_row_is_refused():
    foreign = adopt.golang_migrate(None, "schema_migrations", [(2, False), (3, False)])
    assert foreign.refusal is not None and "holds 2 rows" in foreign.refusal.message


def test_dbmate_every_row_is_an_applied_version_and_others_are_unreadable():
    foreign = adopt.dbmate(None, "schema_migrations", ["20240101120000", "20240101130000", "v1"])
    assert versions(foreign) == ["20240101120000", "20240101130000"]
    assert foreign.unreadable == ("v1",)


def test_goose_latest_row_decides_and_the_bootstrap_row_is_not_a_migration():
    rows = [
        (1, 0, True, T),
        (2, 1, True, T),
        (3, 2, True, T),
        (4, 3, True, T),
        (5, 3, False, T),
        (6, 2, False, T),
    ]
    foreign = adopt.goose(None, "goose_db_version", rows)
    assert foreign.refusal is None and versions(foreign) == ["1"]
    reapplied = adopt.goose(None, "goose_db_version", [*rows, (7, 2, True, T)])
    assert versions(reapplied) == ["1", "2"]


def test_goose_an_older_version_applied_after_a_newer_one_is_refused():
    rows = [(1, 0, True, T), (2, 1, True, T), (3, 3, True, T), (4, 2, True, T)]
    foreign = adopt.goose(None, "goose_db_version", rows)
    assert foreign.refusal is not None and foreign.refusal.versions == ["2"]
    assert "2 after 3" in foreign.refusal.message and "pgship baseline 3" in foreign.refusal.hint


def test_flyway_baseline_counts_for_every_file_up_to_it_and_repeatables_only_warn():
    rows = [
        (1, "0", "<< Flyway Schema Creation >>", "SCHEMA", True, T),
        (2, "2", "<< Flyway Baseline >>", "BASELINE", True, T),
        (3, "3", "add index", "SQL", True, T),
        (4, None, "views", "SQL", True, T),
    ]
    foreign = adopt.flyway(None, "flyway_schema_history", rows)
    assert foreign.refusal is None and foreign.through == V("2")
    assert versions(foreign, ["1", "2", "3", "4"]) == ["1", "2", "3"]
    assert foreign.warnings and "repeatable" in foreign.warnings[0]


def test_flyway_a_failed_row_is_refused_unless_retried_successfully():
    failed = [(1, "1", "users", "SQL", True, T), (2, "1.1", "orders", "SQL", False, T)]
    foreign = adopt.flyway(None, "flyway_schema_history", failed)
    assert foreign.refusal is not None and foreign.refusal.versions == ["1.1"]
    assert "flyway repair" in foreign.refusal.hint
    retried = adopt.flyway(None, "flyway_schema_history", [*failed, (3, "1.1", "orders", "SQL", True, T)])
    assert retried.refusal is None and versions(retried) == ["1", "1.1"]


def test_flyway_a_version_deleted_by_repair_is_not_applied():
    rows = [
        (1, "1", "users", "SQL", True, T),
        (2, "2", "orders", "SQL", True, T),
        (3, "2", "orders", "DELETE", True, T),
    ]
    assert versions(adopt.flyway(None, "flyway_schema_history", rows)) == ["1"]


def test_the_health_checks_one_query_reading_of_golang_migrates_table_counts_every_version_up_to_it():
    from pathlib import Path

    from pgship.history import from_json_rows
    from pgship.migrations import Discovery, MigrationFile
    from pgship.planner import State, make_plan

    files = [
        MigrationFile(V(f"00000{n}"), f"m{n}", Path("."), f"00000{n}_m{n}.sql", "", "x") for n in (1, 2, 3, 4)
    ]
    plan = make_plan(Discovery(Path("."), files), from_json_rows([{"version": 3, "dirty": False}]))
    assert [e.state for e in plan.entries] == [State.NO_CHECKSUM] * 3 + [State.PENDING]
    assert not plan.refusals
    dirty = make_plan(Discovery(Path("."), files), from_json_rows([{"version": 3, "dirty": True}]))
    assert [r.kind for r in dirty.refusals] == ["foreign"]


def test_a_file_with_another_tools_down_section_is_a_problem_at_that_line_and_its_up_marker_is_not():
    from pgship.sqlscript import analyse

    goose = analyse("-- +goose Up\nCREATE TABLE a (id int);\n\n-- +goose Down\nDROP TABLE a;\n")
    assert [(p.line, "goose" in p.message) for p in goose.problems] == [(4, True)]
    dbmate = analyse("-- migrate:up\ncreate table b (id int);\n-- migrate:down\ndrop table b;\n")
    assert [(p.line, "dbmate" in p.message) for p in dbmate.problems] == [(3, True)]
    assert not analyse("-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (id int);\n").problems
    assert not analyse("-- migrate:downtime is planned for Sunday\nCREATE TABLE a (id int);\n").problems
