"""Steps about migration files and releases: what is shipped, what pgship applies, what it records.

"Release N" is the sample shop's first N migrations (versions 001, 002, 003,
005, 010: numbering may skip); "the next release" adds files from the
scenario-file catalogue (``pgship.testing.spec.scenario_files``). "Deployed"
here means `pgship migrate` against the scenario's database with the shipped
files; the full deploy pipeline (`pgship deploy`) has its own steps in deploy.py.
Deploys whose process behaviour matters (killed, cut off, two at once) run as
real subprocesses.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import time
from typing import Any

from behave import given, then, when

from pgship.testing.spec import attachments
from pgship.testing.spec.commands import SUBPROCESS
from pgship.testing.spec.scenario_files import DOWN_SCRIPTS, BadInput, ExtraMigrations
from pgship.testing.spec.workspace import EXPECTED_FAILURES, SAMPLE_APP, sha256_of_migration_text
from steps.support import (
    applied_versions,
    deploy,
    file_of_version,
    finish_subprocess_deploy,
    pgship_sessions,
    remember_state_before_deploy,
    rows_for_version,
    start_deploy,
    version_key,
    version_list,
    wait_for_migration_in_flight,
    wait_until,
)


# -- what is shipped -------------------------------------------------------------------
@given("release {number:d} is shipped")
def release_is_shipped(context: Any, number: int) -> None:
    context.world.workspace.ship_release(number)
    context.world.facts["shipped_release"] = number


def ensure_shipped(context: Any, number: int) -> None:
    """Ship release ``number`` unless it is what the folder holds (perhaps with a scenario's edits)."""
    if context.world.facts.get("shipped_release") != number:
        release_is_shipped(context, number)


@given("release {number:d}, in which migration {version} fails")
def release_with_failing_migration(context: Any, number: int, version: str) -> None:
    context.world.workspace.ship_release(number, broken=(version,))
    context.world.facts["shipped_release"] = number


@given("the next release adds {extra:ExtraMigrations}")
def next_release_adds(context: Any, extra: ExtraMigrations) -> None:
    extra.add_to(context.world.workspace)
    context.world.facts["extra_migrations"] = extra


@given("the release has {problem:BadInput}")
def release_has_problem(context: Any, problem: BadInput) -> None:
    problem.add_to(context.world.workspace)  # the deploy step attaches the pending files


@given("release {number:d} is shipped with a rollback folder of down scripts")
def shipped_with_down_scripts(context: Any, number: int) -> None:
    release_is_shipped(context, number)
    for path in DOWN_SCRIPTS.add_to(context.world.workspace):
        attachments.attach_sql(path, name=f"rollback/{path.name}")


@given("release {number:d} is shipped without the file of migration {version}")
@given("the file of applied migration {version} has been deleted")
def shipped_without(context: Any, version: str, number: int | None = None) -> None:
    if number is not None:
        release_is_shipped(context, number)
    file_of_version(context, version).unlink()


@given("migration {version} has been edited since it was applied")
def migration_edited(context: Any, version: str) -> None:
    path = file_of_version(context, version)
    context.world.facts["checksum_before_edit"] = rows_for_version(context, version)[0]["checksum"]
    path.write_text(path.read_text(encoding="utf-8") + "-- Reviewed: e-mail addresses compare case-blind.\n")
    attachments.attach_sql(path, name=f"{path.name} (edited)")


@given("a deploy of release {number:d} failed on migration {version}")
def failed_deploy(context: Any, number: int, version: str) -> None:
    release_with_failing_migration(context, number, version)
    result = deploy(context)
    assert result.exit_code == 1, f"the deploy was meant to fail:\n{result.output}"


@when("migration {version} is fixed")
def migration_fixed(context: Any, version: str) -> None:
    fixed = SAMPLE_APP.by_version(version)
    context.world.workspace.write(fixed.filename, fixed.sql)


# A migration that touches pgship's own state, and an ordinary one after it (011 and 012). The role
# a migration switches to is made for the scenario ({role}) and dropped with it.
HOSTILE_MIGRATIONS = {
    "releases pgship's migration lock": (
        "-- Someone's cleanup habit: release every advisory lock this session holds.\n"
        "CREATE TABLE lock_audit (id int);\n"
        "SELECT pg_advisory_unlock_all();\n"
    ),
    "records the migration after it as already applied": (
        "-- Marks the next release's migration as done, so it would never run.\n"
        "CREATE TABLE order_notes (id int);\n"
        "INSERT INTO schema_migrations (version, name) VALUES ('012', 'add_order_notes');\n"
    ),
    "switches to another role and leaves a temporary table and a prepared statement behind": (
        "-- Loads a batch as the reporting role, through a temporary table and a prepared statement.\n"
        "SET ROLE {role};\n"
        "CREATE TEMP TABLE batch (id int);\n"
        "PREPARE batch_rows AS SELECT id FROM batch;\n"
    ),
}
NEXT_MIGRATION = (
    "-- The same batch pattern, then a table of the shop's own.\n"
    "CREATE TEMP TABLE batch (id int);\n"
    "PREPARE batch_rows AS SELECT id FROM batch;\n"
    "CREATE TABLE order_notes (id int);\n"
)


def drop_role(world: Any, role: str) -> None:
    """Drop a scenario's role: its objects in the scenario's database first, if that still exists.

    A backend that served pgship can still be exiting after its client closed, dropping the
    temporary objects its session made (some owned by the role): wait until no session is left on
    the scenario's database, so that DROP OWNED sees everything the role still owns.
    """
    import psycopg

    with psycopg.connect(world.server.admin_url, autocommit=True) as conn:
        others = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        deadline = time.monotonic() + 30
        while conn.execute(others, (world.database_name,)).fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.02)
    with contextlib.suppress(psycopg.OperationalError):  # the database is dropped already
        world.query(f"DROP OWNED BY {role}")
    with psycopg.connect(world.server.admin_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")


@given("the next release has a migration that {behaviour}, and one after it")
def next_release_has_hostile_migration(context: Any, behaviour: str) -> None:
    world = context.world
    sql = HOSTILE_MIGRATIONS[behaviour]
    if "{role}" in sql:
        role = f"pgship_reporting_{secrets.token_hex(4)}"
        world.query(f"CREATE ROLE {role} NOLOGIN")
        world.query(f"GRANT USAGE ON SCHEMA public TO {role}")
        context.add_cleanup(drop_role, world, role)
        sql = sql.format(role=role)
    for path in (
        world.workspace.write("011_load_batch.sql", sql),
        world.workspace.write("012_add_order_notes.sql", NEXT_MIGRATION),
    ):
        attachments.attach_sql(path)


@given("the next release has two quick migrations and a slow one after them")
def next_release_has_a_slow_migration(context: Any) -> None:
    workspace = context.world.workspace
    workspace.write("011_add_order_notes.sql", "CREATE TABLE order_notes (id int);\n")
    workspace.write("012_add_order_tags.sql", "CREATE TABLE order_tags (id int);\n")
    workspace.write(
        "013_backfill_order_history.sql",
        "-- A long backfill.\nCREATE TABLE order_history (id int);\nSELECT pg_sleep(30);\n",
    )


# -- deploying -----------------------------------------------------------------------
@when("release {number:d} is deployed")
@when("release {number:d} is deployed again")
def release_is_deployed(context: Any, number: int) -> None:
    ensure_shipped(context, number)
    deploy(context)


@when("the release is deployed")
@when("the release is deployed again")
def shipped_release_is_deployed(context: Any) -> None:
    deploy(context)


@when("the release is deployed, allowing {seconds:g} seconds for each lock wait and {retries:d} retry")
@when("the release is deployed, allowing {seconds:g} seconds for each lock wait and {retries:d} retries")
def deployed_with_lock_timeout(context: Any, seconds: float, retries: int) -> None:
    started = time.monotonic()
    options = ("--lock-timeout", f"{seconds:g}", "--lock-retries", str(retries))
    # a subprocess, with a bound: a migration that waited for its lock forever would hang the scenario
    deploy(context, *options, mode=SUBPROCESS, timeout=60)
    context.world.facts["deploy_window"] = (started, time.monotonic())


@when("two deploys of release {number:d} start at the same moment")
def two_deploys_at_once(context: Any, number: int) -> None:
    # Both are real processes. Whichever takes the migration lock first is held at its first
    # migration by the shop's open write, so the other certainly arrives while it is mid-way:
    # it must be waiting for the migration lock, not applying migrations of its own.
    world = context.world
    ensure_shipped(context, number)
    remember_state_before_deploy(context)
    world.facts["runners"] = [world.cli.start("migrate", json_output=True) for _ in range(2)]

    def both_under_way() -> list[dict[str, Any]] | None:
        sessions = pgship_sessions(context)
        held = [s for s in sessions if s["wait_event_type"] == "Lock"]
        waiting = [s for s in sessions if s not in held and "advisory" in (s["query"] or "")]
        return sessions if len(sessions) == 2 and held and len(held) + len(waiting) == 2 else None

    sessions = wait_until(both_under_way, what="both deploys to be under way")
    attachments.attach_json("both deploys under way (pg_stat_activity)", sessions)


@when("the shop's transaction commits while both deploys are under way")
def shop_commits(context: Any) -> None:
    context.world.facts["shop_write"].commit()
    context.world.facts["deploys"] = [
        context.world.cli.finish(runner) for runner in context.world.facts["runners"]
    ]


@when("the deploy is killed while migration {version} is in flight")
def deploy_killed(context: Any, version: str) -> None:
    runner = start_deploy(context)
    context.world.facts["killed_session"] = wait_for_migration_in_flight(context, version, runner)
    runner.send_signal(signal.SIGKILL)
    result = finish_subprocess_deploy(context, runner)
    assert result.exit_code == -signal.SIGKILL, f"pgship was not killed: exit {result.exit_code}"


@when("the database drops the deploy's connection while migration {version} is in flight")
def connection_dropped(context: Any, version: str) -> None:
    # What a restart or fail-over does to every client, on every backend (even a shared server).
    runner = start_deploy(context)
    session = wait_for_migration_in_flight(context, version, runner)
    [ended] = context.world.query("SELECT pg_terminate_backend(%s) AS ended", (session["pid"],))
    assert ended["ended"], f"the server could not end pgship's session {session['pid']}"
    finish_subprocess_deploy(context, runner)


@when("the deploy is stopped with SIGTERM while migration {version} is in flight")
def deploy_stopped(context: Any, version: str) -> None:
    runner = start_deploy(context)
    wait_for_migration_in_flight(context, version, runner)
    runner.send_signal(signal.SIGTERM)  # what a CI job cancel or a Kubernetes pod shutdown sends
    finish_subprocess_deploy(context, runner)


# -- outcomes ------------------------------------------------------------------------
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


@then("the deploy is refused with exit code {code:d}")
def deploy_refused(context: Any, code: int) -> None:
    result = context.world.facts["deploy"]
    assert result.exit_code == code, f"expected exit code {code}, got {result.exit_code}:\n{result.output}"
    document = result.json()
    assert document["error"]["kind"] in ("refused", "invalid_migrations"), result.stdout
    assert not document.get("applied"), f"a refused deploy applied {document['applied']}"


@then("both deploys succeed")
def both_succeed(context: Any) -> None:
    for result in context.world.facts["deploys"]:
        assert result.exit_code == 0, f"a deploy exited {result.exit_code}:\n{result.output}"
        assert result.json()["status"] in ("ok", "up_to_date"), result.stdout


@then("together they applied each of migrations {versions} exactly once")
def applied_once_between_them(context: Any, versions: str) -> None:
    reported = [
        item["version"] for result in context.world.facts["deploys"] for item in result.json()["applied"]
    ]
    assert sorted(reported, key=version_key) == version_list(versions), f"the deploys applied {reported}"
    for version in version_list(versions):
        assert len(rows_for_version(context, version)) == 1, (
            f"migration {version} is not recorded exactly once"
        )


@then("migrations {versions} are applied, in that order")
@then("only migration {versions} is applied")
@then("migration {versions} is applied")
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
        path = file_of_version(context, row["version"])
        name = path.stem.partition("_")[2]
        where = f"row {row['version']}"
        assert row["name"] == name, f"{where}: name {row['name']!r}, expected {name!r}"
        assert row["checksum"] == sha256_of_migration_text(path.read_text(encoding="utf-8")), (
            f"{where}: checksum is not the file's"
        )
        assert isinstance(row["execution_ms"], int) and row["execution_ms"] >= 0, (
            f"{where}: execution_ms {row['execution_ms']!r}"
        )
        assert row["applied_at"] is not None, f"{where}: no applied_at"
        assert row["applied_by"] and str(row["applied_by"]).split()[0] == user, (
            f"{where}: applied_by {row['applied_by']!r} does not name the database user {user!r}"
        )


@then("pgship reports that the database is up to date")
def reports_up_to_date(context: Any) -> None:
    document = context.world.facts["deploy"].json()
    assert document["status"] == "up_to_date" and document["applied"] == [], context.world.facts[
        "deploy"
    ].stdout


@then("migration {version} was not applied")
def migration_not_applied(context: Any, version: str) -> None:
    assert not rows_for_version(context, version), f"migration {version} was applied"


@then("pgship warns that migrations {versions} are newer than this release")
def warns_newer(context: Any, versions: str) -> None:
    warnings = context.world.facts["deploy"].json()["warnings"]
    matching = [w for w in warnings if "newer than this release" in w]
    assert matching, f"no warning about newer migrations: {warnings}"
    for version in version_list(versions):
        assert version in matching[0], f"the warning does not name {version}: {matching[0]}"


@then("the deploy stops with exit code 130, saying migration {version} was rolled back")
def deploy_stopped_rolled_back(context: Any, version: str) -> None:
    result = context.world.facts["deploy"]
    assert result.exit_code == 130, f"expected exit code 130, got {result.exit_code}:\n{result.output}"
    document = result.json()
    assert document["status"] == "interrupted", result.stdout
    message = document["error"]["message"]
    assert f"while applying {file_of_version(context, version).name}; it was rolled back" in message, message


# -- what the error says --------------------------------------------------------------
def _error(context: Any) -> dict[str, Any]:
    return context.world.facts["deploy"].json()["error"]


@then("the error names migration {version}, the line that failed and the database's message")
def error_names_everything(context: Any, version: str) -> None:
    expected = EXPECTED_FAILURES[version]
    error = _error(context)
    filename = SAMPLE_APP.broken_variant(version).filename
    assert error["version"] == version, f"error names version {error['version']!r}"
    assert error["file"] == filename, f"error names file {error['file']!r}"
    assert error["line"] == expected.line, f"error names line {error['line']}, expected {expected.line}"
    assert error["sqlstate"] == expected.sqlstate, f"SQLSTATE {error['sqlstate']}"
    assert error["server_message"] == expected.message, f"server message {error['server_message']!r}"
    headline = f"{filename}:{expected.line}: {expected.message}"
    assert error["message"].startswith(headline), (
        f"the message {error['message']!r} does not start {headline!r}"
    )


@then('the error names migration {version} and the database\'s message "{message}"')
def error_names_message(context: Any, version: str, message: str) -> None:
    error = _error(context)
    assert error["version"] == version and error["file"] == file_of_version(context, version).name, error
    assert error["server_message"] == message, f"the database said {error['server_message']!r}"


@then("the error names migration {version} as edited since it was applied")
def error_names_edited(context: Any, version: str) -> None:
    error = _error(context)
    assert error["kind"] == "refused" and error["versions"] == [version], error
    assert file_of_version(context, version).name in error["message"] and "edited" in error["message"], error
    assert "pgship repair" in error["hint"], f"the hint does not mention `pgship repair`: {error['hint']}"


@then("the error names migration {version} as applied but missing from the release")
def error_names_missing(context: Any, version: str) -> None:
    error = _error(context)
    assert error["kind"] == "refused" and error["versions"] == [version], error
    assert version in error["message"] and "no longer in the migrations directory" in error["message"], error


@then("the error says migration {version} gave up waiting for a lock after {attempts:d} attempts")
def error_gave_up_on_lock(context: Any, version: str, attempts: int) -> None:
    error = _error(context)
    assert error["version"] == version and error["sqlstate"] == "55P03", error
    assert error["lock_attempts"] == attempts, f"{error.get('lock_attempts')} attempts"
    assert f"gave up waiting for a lock after {attempts} attempts" in error["message"], error["message"]
    assert "long transaction" in error["hint"], error["hint"]


@then("the error says the connection to the database was lost while applying migration {version}")
def error_connection_lost(context: Any, version: str) -> None:
    error = _error(context)
    assert error["version"] == version, error
    assert "connection to the database was lost" in error["message"], error["message"]
    assert "nothing of this migration was applied" in error["hint"], error["hint"]


@then('the error names {file} and says how to fix it: "{fix}"')
def error_names_file_and_fix(context: Any, file: str, fix: str) -> None:
    error = _error(context)
    problems = error.get("problems", [])
    matching = [p for p in problems if p["file"] == file or (p["file"] or "").endswith(f"/{file}")]
    assert matching, f"no problem names {file}: {problems}"
    assert any(fix in p["fix"] for p in matching), f"the fix does not say {fix!r}: {matching}"
    context.world.facts["problem"] = matching[0]


@then("the error points at line {line:d}")
def error_points_at_line(context: Any, line: int) -> None:
    problem = context.world.facts["problem"]
    assert problem["line"] == line, f"the problem is reported at line {problem['line']}, expected {line}"


@then("the error points at no particular line")
def error_points_nowhere(context: Any) -> None:
    problem = context.world.facts["problem"]
    assert problem["line"] is None, f"the problem is reported at line {problem['line']}"


@then("the error's advice is to run `pgship baseline {version}` if the migration was applied by hand")
def advice_is_baseline(context: Any, version: str) -> None:
    hint = _error(context)["hint"]
    assert f"pgship baseline {version}" in hint, f"the hint does not suggest baseline: {hint}"


# -- processes -----------------------------------------------------------------------
@then("the database has rolled back the killed deploy's transaction")
def killed_session_gone(context: Any) -> None:
    pid = context.world.facts["killed_session"]["pid"]
    wait_until(
        lambda: not [s for s in pgship_sessions(context) if s["pid"] == pid],
        what=f"the server to end the killed deploy's session (pid {pid})",
    )


@then("none of the down scripts ran")
def down_scripts_did_not_run(context: Any) -> None:
    for name in DOWN_SCRIPTS.would_drop:
        assert context.world.table_exists(name), f"{name} is gone: a down script ran"


@then("the error says migration {version} released the migration lock")
def error_says_lock_released(context: Any, version: str) -> None:
    error = _error(context)
    assert error["version"] == version and "released the migration lock" in error["message"], error
    assert "rolled back" in error["hint"], error


@then("the error says migration {version} changed the tracking table")
def error_says_tracking_changed(context: Any, version: str) -> None:
    error = _error(context)
    assert error["version"] == version and "changed the tracking table" in error["message"], error
    assert "rolled back" in error["hint"], error
