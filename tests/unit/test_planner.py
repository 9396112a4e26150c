"""Planner decisions: files x history -> states, refusals and the list to apply."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pgship.history import AppliedMigration, History
from pgship.migrations import Discovery, MigrationFile, Version, checksum_of
from pgship.planner import State, make_plan


def files(*specs: str) -> Discovery:
    migrations = []
    for spec in specs:
        version, _, name = spec.partition("_")
        text = f"-- {spec}\nSELECT 1;\n"
        migrations.append(
            MigrationFile(Version.parse(version), name, Path("."), f"{spec}.sql", text, checksum_of(text))
        )
    return Discovery(Path("."), sorted(migrations, key=lambda m: m.version))


def history(
    discovery: Discovery,
    *versions: str,
    checksum: dict[str, str | None] | None = None,
    extra: tuple[str, ...] = (),
) -> History:
    by_version = {str(m.version): m for m in discovery.migrations}
    rows = []
    for v in (*versions, *extra):
        m = by_version.get(v)
        sums = checksum or {}
        rows.append(
            AppliedMigration(
                Version.parse(v),
                m.name if m else "gone",
                datetime.now(UTC),
                sums.get(v, m.checksum if m else "x"),
                5,
                "test",
            )
        )
    return History(exists=True, rows=rows)


def states(plan):
    return {str(e.version): e.state for e in plan.entries}


def test_pending_migrations_are_planned_in_version_order():
    d = files("001_a", "011_b", "002_c")
    plan = make_plan(d, history(d, "001"))
    assert [str(m.version) for m in plan.to_apply] == ["002", "011"]
    assert not plan.refusals and not plan.in_sync


def test_everything_applied_is_in_sync():
    d = files("001_a", "002_b")
    plan = make_plan(d, history(d, "001", "002"))
    assert plan.in_sync and plan.to_apply == [] and plan.applied_count == 2


def test_an_edited_applied_migration_is_drift_and_refused():
    d = files("001_a", "002_b", "003_c")
    plan = make_plan(d, history(d, "001", "002", checksum={"002": "0" * 64}))
    assert states(plan)["002"] == State.DRIFTED
    [refusal] = plan.refusals
    assert refusal.kind == "drifted" and refusal.versions == ["002"] and "repair" in refusal.hint


def test_a_legacy_row_without_checksum_is_adopted_not_refused():
    d = files("001_a", "002_b")
    plan = make_plan(d, history(d, "001", checksum={"001": None}))
    assert states(plan)["001"] == State.NO_CHECKSUM
    assert [m.filename for m in plan.to_adopt] == ["001_a.sql"]
    assert not plan.refusals


def test_a_deleted_applied_file_in_the_middle_is_missing_and_refused():
    d = files("001_a", "003_c")
    plan = make_plan(d, history(d, "001", "003", extra=("002",)))
    assert states(plan)["002"] == State.MISSING
    assert plan.refusals[0].kind == "missing"
    assert not make_plan(d, history(d, "001", "003", extra=("002",)), allow_missing=True).refusals


def test_versions_newer_than_the_release_are_ahead_a_warning_only():
    d = files("001_a", "002_b")
    plan = make_plan(d, history(d, "001", "002", extra=("003",)))
    assert states(plan)["003"] == State.AHEAD
    assert not plan.refusals and plan.warnings and not plan.in_sync


def test_a_pending_file_older_than_the_newest_applied_is_out_of_order():
    d = files("001_a", "002_b", "003_c")
    plan = make_plan(d, history(d, "001", "003"))
    assert states(plan)["002"] == State.OUT_OF_ORDER
    assert plan.refusals[0].kind == "out_of_order" and plan.to_apply == []
    allowed = make_plan(d, history(d, "001", "003"), allow_out_of_order=True)
    assert [str(m.version) for m in allowed.to_apply] == ["002"] and not allowed.refusals


def test_target_limits_what_is_applied():
    d = files("001_a", "002_b", "003_c")
    plan = make_plan(d, History(), target=Version.parse("2"))
    assert [str(m.version) for m in plan.to_apply] == ["001", "002"]
