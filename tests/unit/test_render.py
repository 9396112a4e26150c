"""The CLI's rendering, without a database: the status table, the plan, a migrate result (text and JSON).

Pure functions of results: each test builds a plan or a result and reads exactly what a person
(or a script parsing --json) would get.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

from pgship.cli.render import (
    STATUS_LIST_LIMIT,
    migrate_payload,
    plan_payload,
    render_findings,
    render_migrate,
    render_plan,
    render_status,
)
from pgship.history import AppliedMigration, History
from pgship.lint import Finding
from pgship.migrations import Discovery, MigrationFile, Version, checksum_of
from pgship.output import Output
from pgship.planner import make_plan
from pgship.runner import AppliedRecord, MigrateResult

APPLIED_AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def files(*specs: str, edited: tuple[str, ...] = ()) -> Discovery:
    migrations = []
    for spec in specs:
        version, _, name = spec.partition("_")
        text = f"-- {spec}\nSELECT 1;\n" + ("-- edited\n" if version in edited else "")
        migrations.append(
            MigrationFile(Version.parse(version), name, Path("."), f"{spec}.sql", text, checksum_of(text))
        )
    return Discovery(Path("."), sorted(migrations, key=lambda m: m.version))


def history(*specs: str) -> History:
    rows = []
    for spec in specs:
        version, _, name = spec.partition("_")
        text = f"-- {spec}\nSELECT 1;\n"
        rows.append(AppliedMigration(Version.parse(version), name, APPLIED_AT, checksum_of(text), 12, "ci"))
    return History(exists=True, rows=rows)


def text_output() -> tuple[Output, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    return Output(stdout=stdout, stderr=stderr), stdout, stderr


def test_the_status_table_lists_every_migration_with_its_state_and_a_summary():
    plan = make_plan(files("001_accounts", "002_orders"), history("001_accounts"))
    out, stdout, _ = text_output()
    render_status(out, plan)
    assert stdout.getvalue().splitlines() == [
        "  VERSION  STATE    APPLIED AT           MS  NAME",
        "  001      applied  2026-03-04 05:06:07  12  accounts",
        "  002      pending                           orders",
        "",
        "1 applied, 1 pending.",
        "Run `pgship migrate` to apply 1 pending migration(s).",
    ]


def test_the_status_table_says_when_in_sync_and_flags_an_edited_migration():
    in_sync = make_plan(files("001_a"), history("001_a"))
    out, stdout, _ = text_output()
    render_status(out, in_sync)
    assert stdout.getvalue().endswith("1 applied.\nThe database is in sync with the migration files.\n")

    drifted = make_plan(files("001_a", edited=("001",)), history("001_a"))
    out, stdout, _ = text_output()
    render_status(out, drifted)
    assert "  001      EDITED after apply" in stdout.getvalue()
    assert "1 edited after apply." in stdout.getvalue()
    assert "migrate would refuse:" in stdout.getvalue()


def test_a_long_status_lists_only_what_needs_attention_unless_all_is_asked():
    count = STATUS_LIST_LIMIT + 5
    specs = [f"{n:03d}_m{n}" for n in range(1, count + 1)]
    plan = make_plan(files(*specs), history(*specs[:-1]))
    out, stdout, _ = text_output()
    render_status(out, plan)
    rows = [line.split() for line in stdout.getvalue().splitlines() if line.startswith("  0")]
    assert rows == [[f"{count:03d}", "pending", f"m{count}"]]  # the applied ones are counted, not listed
    assert f"({count - 1} applied migrations not listed, up to {count - 1:03d};" in stdout.getvalue()

    out, stdout, _ = text_output()
    render_status(out, plan, listing="all")
    assert sum(line.startswith("  0") for line in stdout.getvalue().splitlines()) == count


def test_status_pending_listing_with_nothing_pending_says_so():
    plan = make_plan(files("001_a"), history("001_a"))
    out, stdout, _ = text_output()
    render_status(out, plan, listing="pending")
    assert stdout.getvalue().startswith("No pending migrations.\n")
    assert "VERSION" not in stdout.getvalue()


def test_the_plan_payload_is_the_stable_json_shape():
    plan = make_plan(files("001_accounts", "002_orders"), history("001_accounts"))
    payload = plan_payload(plan)
    assert payload["in_sync"] is False
    assert payload["summary"]["applied"] == 1 and payload["summary"]["pending"] == 1
    assert payload["latest_applied"] == "001" and payload["pending"] == ["002"]
    first, second = payload["migrations"]
    assert first == {
        "version": "001",
        "name": "accounts",
        "file": "001_accounts.sql",
        "state": "applied",
        "applied_at": APPLIED_AT.isoformat(),
        "execution_ms": 12,
        "applied_by": "ci",
        "checksum": checksum_of("-- 001_accounts\nSELECT 1;\n"),
        "recorded_checksum": checksum_of("-- 001_accounts\nSELECT 1;\n"),
    }
    assert second["state"] == "pending" and second["applied_at"] is None
    json.dumps(payload)  # serialisable as it is


def test_the_plan_lists_what_migrate_would_apply_in_order_or_says_nothing_to_do():
    plan = make_plan(files("001_a", "003_c", "002_b"), history())
    out, stdout, _ = text_output()
    render_plan(out, plan, [], [], None)
    assert stdout.getvalue().splitlines() == [
        "migrate would apply 3 migration(s), in this order:",
        "  001_a.sql",
        "  002_b.sql",
        "  003_c.sql",
    ]
    out, stdout, _ = text_output()
    render_plan(out, make_plan(files("001_a"), history("001_a")), [], [], None)
    assert stdout.getvalue() == "Nothing to apply: the database is up to date.\n"


def test_the_plan_shows_refusals_and_lint_findings():
    refused = make_plan(files("001_a", "002_b"), history("002_b"))  # 001 is out of order
    out, stdout, stderr = text_output()
    findings = [Finding("001_a.sql", 1, 2, "ban-drop-table", "Dropping a table", "Do not.")]
    render_plan(out, refused, [], findings, "squawk is slow")
    text = stdout.getvalue()
    assert text.startswith("migrate would refuse: ")
    assert "lint: 001_a.sql:1:2: Dropping a table [ban-drop-table]\n      Do not.\n" in text
    assert stderr.getvalue() == "warning: lint skipped: squawk is slow\n"


def test_a_finding_repeated_in_many_files_is_one_line():
    findings = [Finding(f"{n:03d}_a.sql", n, 0, "rule", "message", None) for n in range(1, 7)]
    out, stdout, _ = text_output()
    render_findings(out, findings, None)
    assert stdout.getvalue() == (
        "lint: message [rule] in 6 files: 001_a.sql:1, 002_a.sql:2, 003_a.sql:3, and 3 more "
        "(`--json` lists every one)\n"
    )


def result(*applied: str, already: int = 0) -> MigrateResult:
    records = [AppliedRecord(v, f"m{v}", f"{v}_m{v}.sql", 7) for v in applied]
    return MigrateResult(
        applied=records, already_applied=already, duration_ms=1250, tracking_table="public.t"
    )


def test_a_migrate_result_in_text():
    out, stdout, _ = text_output()
    render_migrate(out, result("002", "003", already=1))
    assert stdout.getvalue() == (
        "Applied 2 migrations in 1.25 s (1 already applied). Database is at version 003.\n"
    )
    out, stdout, _ = text_output()
    render_migrate(out, result("002", already=3), latest="004")  # 002 applied out of order
    assert (
        stdout.getvalue()
        == "Applied 1 migration in 1.25 s (3 already applied). Database is at version 004.\n"
    )
    out, stdout, _ = text_output()
    render_migrate(out, result(already=2), newest_file=Version.parse("002"))
    assert stdout.getvalue() == (
        "Nothing to apply: the database is up to date at version 002 (2 migrations applied).\n"
    )


def test_a_migrate_result_in_json():
    payload = migrate_payload(result("002", already=1), "ok")
    assert payload == {
        "status": "ok",
        "applied": [
            {
                "version": "002",
                "name": "m002",
                "file": "002_m002.sql",
                "execution_ms": 7,
                "attempts": 1,
                "messages": [],
            }
        ],
        "already_applied": 1,
        "adopted": [],
        "table_changes": [],
        "tracking_table": "public.t",
        "warnings": [],
        "duration_ms": 1250,
    }
    assert migrate_payload(result(already=1), "ok")["status"] == "up_to_date"
    assert migrate_payload(result(already=1), "failed")["status"] == "failed"


def test_json_mode_renders_no_text():
    stdout = io.StringIO()
    out = Output(as_json=True, stdout=stdout, stderr=io.StringIO())
    render_status(out, make_plan(files("001_a"), history()))
    render_migrate(out, result("001"))
    assert stdout.getvalue() == ""
