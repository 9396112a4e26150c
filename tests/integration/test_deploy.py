"""`pgship deploy` as a real process: stages, their order, exit codes, and what never runs after a failure."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from pgship.testing import EmbeddedPostgres
from tests.integration.helpers import applied_versions, scalar, table_exists
from tests.integration.serving import free_port, kill_session
from tests.integration.test_processes import sleeping_backend
from tests.toolkit import run_cli, spawn_cli, wait_until

PGSHIP = f"{shlex.quote(sys.executable)} -m pgship"
STAGES = ["wait", "verify", "build", "migrate", "start", "health"]


@pytest.fixture
def services() -> Iterator[list[int]]:
    """Process groups of services a deploy left running; stopped after the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        kill_session(pid)


@pytest.fixture
def release(database_url, migrations, tmp_path):
    """Release 1 is live; release 2 adds a migration."""
    migrations.write("001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);")
    assert run_cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    migrations.write("002_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY, user_id int);")
    return migrations


def deploy(url: str, migrations, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout=120):
    process = spawn_cli("-d", url, "-m", str(migrations), "deploy", *args, env=env, cwd=cwd)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def deploy_serving(url, migrations, services, *extra, cwd, serve_args="", path="/health", env=None):
    """Deploy with `pgship serve` as the start command and its health URL as the gate (JSON mode)."""
    port = free_port()
    code, out, err = deploy(
        url,
        migrations,
        "--json",
        "--start",
        f"{PGSHIP} serve --port {port} {serve_args}",
        "--start-grace",
        "1",
        "--health-url",
        f"http://127.0.0.1:{port}{path}",
        *extra,
        cwd=cwd,
        env=env,
    )
    document = json.loads(out)
    if document.get("service"):
        services.append(document["service"]["pid"])
    return code, document, out + err, port


def by_name(document: dict) -> dict[str, dict]:
    return {stage["name"]: stage for stage in document["stages"]}


def test_a_release_is_migrated_started_and_passes_the_health_gate(database_url, release, tmp_path, services):
    code, document, output, port = deploy_serving(
        database_url, release, services, "--release-id", "release-2", cwd=tmp_path
    )
    assert code == 0, output
    assert document["status"] == "ok" and document["failed_stage"] is None
    assert [s["name"] for s in document["stages"]] == STAGES
    stages = by_name(document)
    assert [stages[n]["status"] for n in STAGES] == ["ok", "ok", "skipped", "ok", "ok", "ok"]
    assert all(isinstance(s["duration_ms"], int) and s["duration_ms"] >= 0 for s in document["stages"])
    assert stages["verify"]["detail"] == "2 migration files valid; 1 to apply: 002"
    assert "running in the background" in stages["start"]["detail"]
    assert stages["health"]["detail"] == "HTTP 200, status pass, releaseId release-2"
    assert [a["version"] for a in document["migrate"]["applied"]] == ["002"]
    assert applied_versions(database_url) == ["001", "002"]
    # the deploy has exited; the service it started keeps serving the new release
    live = httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=5).json()
    assert live == {"status": "pass", "releaseId": "release-2"}
    assert (tmp_path / ".pgship" / "start.log").is_file()


def test_a_failing_migration_stops_the_deploy_before_the_start(database_url, release, tmp_path, services):
    release.write(
        "002_orders.sql", "CREATE TABLE orders (id int PRIMARY KEY);\nCREATE TABLE oops (id nosuchtype);\n"
    )
    marker = tmp_path / "started"
    port = free_port()
    code, out, err = deploy(
        database_url,
        release,
        "--start",
        f"touch {marker} && {PGSHIP} serve --port {port}",
        "--health-url",
        f"http://127.0.0.1:{port}/health",
        cwd=tmp_path,
    )
    assert code == 1, out + err
    assert not marker.exists()  # the start command never ran
    assert "==> migrate" in out and "FAILED in" in out
    assert "Deploy failed at the migrate stage" in out and "not run: start, health" in out
    assert "002_orders.sql:2" in err and "42704" in err and "rolled back" in err
    assert applied_versions(database_url) == ["001"] and not table_exists(database_url, "orders")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)


def test_failed_stage_and_skipped_ones_in_json(database_url, release, tmp_path):
    release.write("002_orders.sql", "SELEC 1;")
    code, out, _ = deploy(database_url, release, "--json", "--start", "true", cwd=tmp_path)
    document = json.loads(out)
    stages = by_name(document)
    assert code == 2  # invalid SQL is found by verify, before anything is applied
    assert document["failed_stage"] == "verify" and document["status"] == "invalid"
    assert stages["verify"]["status"] == "failed"
    assert stages["migrate"] == {
        "name": "migrate",
        "status": "skipped",
        "duration_ms": 0,
        "detail": "not run: the verify stage failed",
    }
    assert stages["start"]["status"] == "skipped" and document["error"]["problems"][0]["line"] == 1


def test_an_edited_applied_migration_is_refused_with_exit_2(database_url, release, tmp_path):
    release.write("001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY);")
    code, out, err = deploy(database_url, release, "--start", "true", cwd=tmp_path)
    assert code == 2, out + err
    assert "Deploy failed at the verify stage" in out and "edited since it was applied" in err
    assert applied_versions(database_url) == ["001"]


def test_a_migration_lock_held_elsewhere_exits_4_and_starts_nothing(database_url, release, tmp_path):
    from pgship.history import TrackingTable

    marker = tmp_path / "started"
    with psycopg.connect(database_url, autocommit=True) as other_deploy:
        other_deploy.execute(
            "SELECT pg_advisory_lock(%s)", (TrackingTable.parse("public.schema_migrations").lock_key,)
        )
        code, out, err = deploy(
            database_url, release, "--lock-wait", "0.5", "--start", f"touch {marker}", cwd=tmp_path
        )
    assert code == 4, out + err
    assert "Deploy failed at the migrate stage" in out and "held the lock" in err
    assert not marker.exists() and applied_versions(database_url) == ["001"]


def test_a_failing_build_leaves_the_database_untouched(database_url, release, tmp_path):
    code, out, err = deploy(
        database_url, release, "--build", "echo compiling; exit 7", "--start", "true", cwd=tmp_path
    )
    assert code == 1, out + err
    assert "    | compiling" in out and "the build command exited with code 7" in err
    assert "Deploy failed at the build stage" in out
    assert applied_versions(database_url) == ["001"]  # 002 stays pending


def test_a_start_command_that_returns_is_judged_by_its_exit_code(database_url, release, tmp_path):
    log = tmp_path / "logs" / "start.log"
    ok = deploy(
        database_url,
        release,
        "--json",
        "--build",
        "echo built",
        "--start",
        "echo containers up",
        "--start-log",
        str(log),
        cwd=tmp_path,
    )
    stages = by_name(json.loads(ok[1]))
    assert ok[0] == 0 and stages["build"]["status"] == "ok" and stages["health"]["status"] == "skipped"
    assert stages["start"]["detail"].startswith("the start command finished (exit 0)")
    assert "containers up" in log.read_text()
    failing = deploy(database_url, release, "--start", "echo no space left >&2; exit 3", cwd=tmp_path)
    assert failing[0] == 1 and "the start command exited with code 3" in failing[2]
    assert "    | no space left" in failing[1]


def test_a_service_that_dies_fails_the_health_stage_at_once(database_url, release, tmp_path):
    port = free_port()
    code, out, err = deploy(
        database_url,
        release,
        "--start",
        "sleep 1; echo crashed; exit 4",
        "--start-grace",
        "0.2",
        "--health-url",
        f"http://127.0.0.1:{port}/health",
        "--health-timeout",
        "60",
        cwd=tmp_path,
    )
    assert code == 1, out + err
    # the stage ended on the service's exit, not by sitting out the 60 s health timeout
    assert "the service started by --start exited with code 4" in err and "    | crashed" in out


def test_the_gate_waits_for_the_expected_release(database_url, release, tmp_path, services):
    code, document, output, _ = deploy_serving(
        database_url,
        release,
        services,
        "--health-timeout",
        "3",
        "--release-id",
        "release-2",
        serve_args="--release-id previous",
        cwd=tmp_path,
    )
    assert code == 1, output
    assert document["failed_stage"] == "health"
    assert "releaseId previous, expected releaseId release-2" in document["error"]["message"]


def test_the_health_gate_sends_the_bearer_token(database_url, release, tmp_path, services):
    token = "Gate-T0ken-value"
    code, _, output, port = deploy_serving(
        database_url,
        release,
        services,
        path="/health/database",
        env={"PGSHIP_HEALTH_TOKEN": token},
        cwd=tmp_path,
    )
    assert code == 0, output
    assert token not in output
    assert httpx.get(f"http://127.0.0.1:{port}/health/database", timeout=5).status_code == 401


def test_passwords_never_appear_not_even_in_the_echo_of_a_command(database_url, release, tmp_path, pg_server):
    code, out, err = deploy(
        database_url,
        release,
        "--build",
        f"echo building against {database_url}",
        "--start",
        f"echo {pg_server.password} > /dev/null",
        cwd=tmp_path,
    )
    assert code == 0, out + err
    assert "$ echo building against postgresql://postgres:***@" in out
    assert "$ echo *** > /dev/null" in out
    log = (tmp_path / ".pgship" / "start.log").read_text()
    for text in (out, err, log):
        assert pg_server.password not in text


def test_sigterm_during_a_migration_rolls_it_back_and_never_starts(database_url, release, tmp_path):
    release.write("002_orders.sql", "CREATE TABLE orders (id int);\nSELECT pg_sleep(30);\n")
    marker = tmp_path / "started"
    process = spawn_cli(
        "-d", database_url, "-m", str(release), "deploy", "--start", f"touch {marker}", cwd=tmp_path
    )
    wait_until(lambda: sleeping_backend(database_url))
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "rolled back" in err and "Deploy failed at the migrate stage" in out
    assert not marker.exists() and not table_exists(database_url, "orders")
    assert applied_versions(database_url) == ["001"]


def test_sigterm_during_a_build_stops_the_build_command_too(database_url, release, tmp_path):
    pidfile = tmp_path / "build.pid"
    process = spawn_cli(
        "-d", database_url, "-m", str(release), "deploy", "--build", f"echo $$ > {pidfile}; exec sleep 60",
        cwd=tmp_path,
    )  # fmt: skip
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "interrupted during the build stage" in err
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)
    assert applied_versions(database_url) == ["001"]


# -- a database that is late, or never there ---------------------------------------------
def test_a_database_that_comes_up_late_is_waited_for(migrations, tmp_path):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    port, password = free_port(), "Late-Db-Pw-42"
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    process = spawn_cli("-d", url, "-m", str(migrations), "deploy", "--wait", "90", cwd=tmp_path)
    first = process.stderr.readline()  # the deploy is waiting before the server even exists
    assert "database not ready" in first and password not in first
    with EmbeddedPostgres(port=port, password=password):
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, first + out + err
        assert scalar(url, "SELECT count(*) FROM schema_migrations") == 1
    assert "==> wait" in out and "accepting connections" in out and password not in out + err


def test_a_database_that_never_comes_up_exits_3(migrations, tmp_path):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    url = f"postgresql://deployer:Never-Pw-77@127.0.0.1:{free_port()}/app"
    process = spawn_cli(
        "-d", url, "-m", str(migrations), "--json", "deploy", "--wait", "1", "--start", "true", cwd=tmp_path
    )
    out, err = process.communicate(timeout=60)
    document = json.loads(out)
    assert process.returncode == 3
    assert document["status"] == "unreachable" and document["failed_stage"] == "wait"
    assert "cannot connect to deployer@127.0.0.1" in document["error"]["message"]
    assert "after waiting" in document["error"]["message"]
    assert [s["status"] for s in document["stages"]] == ["failed"] + ["skipped"] * 5
    assert "Never-Pw-77" not in out + err


def test_the_start_log_never_holds_the_password_and_only_its_owner_can_read_it(
    database_url, release, tmp_path, pg_server, services
):
    """A start command that prints its environment (as a crashing app's dump does), short or long-lived."""
    import stat
    from urllib.parse import quote

    env = {"PGPASSWORD": pg_server.password}
    echo = 'env; echo "url=$DATABASE_URL"; echo "raw=$PGPASSWORD"'
    code, out, err = deploy(database_url, release, "--start", echo, cwd=tmp_path, env=env)
    assert code == 0, out + err
    pgship_dir = tmp_path / ".pgship"
    log = pgship_dir / "start.log"
    text = log.read_text()
    assert "url=postgresql://postgres:***@" in text and "raw=***" in text, text
    # a service still running when the deploy exits keeps writing through the scrubber
    code, out, err = deploy(
        database_url, release, "--json", "--start", f"{echo}; sleep 0.5; echo later=$DATABASE_URL; sleep 60",
        "--start-grace", "0.2", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0, out + err
    services.append(json.loads(out)["service"]["pid"])
    wait_until(lambda: "\nlater=" in log.read_text(), timeout=30)  # a line of its own, not the command
    text = log.read_text()
    assert "later=postgresql://postgres:***@" in text, text
    for form in (pg_server.password, quote(pg_server.password, safe="")):
        assert form not in text and form not in out + err
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(pgship_dir.stat().st_mode) == 0o700
