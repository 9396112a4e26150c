"""pgship as real processes: concurrent deploys, kills, signals, lock waits and unreachable databases."""

from __future__ import annotations

import signal
import time

import psycopg

from tests.integration.helpers import applied_versions, scalar, table_exists, tracking_rows
from tests.toolkit import pgship_backends, spawn_cli, wait_until

SLOW = "CREATE TABLE slow_one (id int);\nSELECT pg_sleep(30);\nCREATE TABLE slow_two (id int);\n"


def sleeping_backend(url: str) -> bool:
    return bool(pgship_backends(url, query_like="SELECT pg_sleep%", state="active"))


def test_two_runners_at_once_apply_each_migration_exactly_once(database_url, migrations):
    for i in range(1, 31):
        migrations.write(f"{i:03d}_t{i}.sql", f"CREATE TABLE t{i} (id int);\nSELECT pg_sleep(0.01);\n")
    runners = [spawn_cli("-d", database_url, "-m", str(migrations), "migrate") for _ in range(2)]
    results = [(r.wait(60), *r.communicate()) for r in runners]
    assert [code for code, _, _ in results] == [0, 0], results
    assert applied_versions(database_url) == [f"{i:03d}" for i in range(1, 31)]
    applied_lines = sum(out.count("  applied  ") for _, out, _ in results)
    assert applied_lines == 30  # together they applied each one once


def test_a_runner_killed_mid_migration_leaves_nothing_and_a_rerun_completes(database_url, migrations):
    migrations.write("001_first.sql", "CREATE TABLE first_table (id int);")
    migrations.write("002_slow.sql", SLOW)
    runner = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    wait_until(lambda: sleeping_backend(database_url))
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    wait_until(lambda: not sleeping_backend(database_url))  # the server noticed and rolled back
    assert applied_versions(database_url) == ["001"]
    assert not table_exists(database_url, "slow_one")
    migrations.write("002_slow.sql", SLOW.replace("pg_sleep(30)", "pg_sleep(0)"))
    rerun = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    assert rerun.wait(30) == 0, rerun.communicate()
    assert applied_versions(database_url) == ["001", "002"] and table_exists(database_url, "slow_two")


def test_ctrl_c_rolls_back_the_migration_in_flight(database_url, migrations):
    migrations.write("001_slow.sql", SLOW)
    runner = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    wait_until(lambda: sleeping_backend(database_url))
    runner.send_signal(signal.SIGINT)
    code = runner.wait(20)
    _, stderr = runner.communicate()
    assert code == 130 and "rolled back" in stderr
    assert not table_exists(database_url, "slow_one") and applied_versions(database_url) == []


def test_sigterm_stops_cleanly_like_ctrl_c(database_url, migrations):
    migrations.write("001_slow.sql", SLOW)
    runner = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    wait_until(lambda: sleeping_backend(database_url))
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(20) == 130
    assert not table_exists(database_url, "slow_one")


def test_a_migration_blocked_by_a_long_transaction_gives_up_after_its_retries(database_url, migrations):
    migrations.write("001_accounts.sql", "CREATE TABLE accounts (id int);")
    migrations.write("002_alter.sql", "ALTER TABLE accounts ADD COLUMN note text;")
    assert spawn_cli("-d", database_url, "-m", str(migrations), "migrate", "--target", "1").wait(30) == 0
    with psycopg.connect(database_url) as holder:  # a long transaction reading the table
        holder.execute("SELECT * FROM accounts")
        runner = spawn_cli(
            "-d",
            database_url,
            "-m",
            str(migrations),
            "migrate",
            "--lock-timeout",
            "0.2",
            "--lock-retries",
            "2",
        )
        code = runner.wait(30)
        _, stderr = runner.communicate()
        # the production session was never blocked: it can still use the table
        holder.execute("SELECT count(*) FROM accounts")
    assert code == 1
    assert "002_alter.sql:1" in stderr and "55P03" in stderr and "after 3 attempts" in stderr
    assert "long transaction" in stderr
    assert applied_versions(database_url) == ["001"]
    assert not scalar(
        database_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'"
    )


def test_a_lock_released_during_the_retries_lets_the_migration_through(database_url, migrations):
    migrations.write("001_accounts.sql", "CREATE TABLE accounts (id int);")
    migrations.write("002_alter.sql", "ALTER TABLE accounts ADD COLUMN note text;")
    assert spawn_cli("-d", database_url, "-m", str(migrations), "migrate", "--target", "1").wait(30) == 0
    holder = psycopg.connect(database_url)
    holder.execute("SELECT * FROM accounts")
    runner = spawn_cli(
        "-d", database_url, "-m", str(migrations), "migrate", "--lock-timeout", "0.3", "--lock-retries", "5"
    )
    first_lines = []
    while not any("retrying" in line for line in first_lines):  # the first attempt timed out
        line = runner.stderr.readline()
        assert line, "runner ended without retrying"
        first_lines.append(line)
    holder.rollback()
    holder.close()
    code = runner.wait(30)
    _, rest = runner.communicate()
    assert code == 0, "".join(first_lines) + rest
    assert applied_versions(database_url) == ["001", "002"]


def test_another_runner_holding_the_lock_makes_a_short_wait_exit_4(database_url, migrations):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    from pgship.history import TrackingTable

    with psycopg.connect(database_url, autocommit=True, application_name="pgship") as other:
        other.execute(
            "SELECT pg_advisory_lock(%s)", (TrackingTable.parse("public.schema_migrations").lock_key,)
        )
        runner = spawn_cli("-d", database_url, "-m", str(migrations), "migrate", "--lock-wait", "0.5")
        code = runner.wait(30)
        _, stderr = runner.communicate()
    assert code == 4 and "held the lock" in stderr and "pid" in stderr
    assert applied_versions(database_url) == []


def test_an_unreachable_database_exits_3_without_showing_the_password(migrations, pg_server):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    url = "postgresql://deploy:Sup3r-Secret-Pw@127.0.0.1:9/app"
    runner = spawn_cli("-d", url, "-m", str(migrations), "migrate", "--wait", "1")
    code = runner.wait(30)
    out, err = runner.communicate()
    assert code == 3
    assert "after waiting" in err and "Connection refused" in err and "deploy@127.0.0.1:9/app" in err
    assert "Sup3r-Secret-Pw" not in out + err


def test_a_wrong_password_fails_at_once_and_is_not_printed(migrations, pg_server):
    migrations.write("001_users.sql", "CREATE TABLE users (id int);")
    url = pg_server.admin_url.replace(pg_server.password, "Wr0ng-Pw-Value")
    started = time.monotonic()
    runner = spawn_cli("-d", url, "-m", str(migrations), "--json", "migrate", "--wait", "30")
    code = runner.wait(30)
    out, err = runner.communicate()
    assert code == 6 and time.monotonic() - started < 25  # no pointless waiting; exit 6: do not retry
    assert "password authentication failed" in out and "waiting will not help" in out
    assert "Wr0ng-Pw-Value" not in out + err and pg_server.password not in out + err


def test_applied_rows_survive_a_runner_killed_between_migrations(database_url, migrations):
    migrations.write("001_a.sql", "CREATE TABLE a (id int);")
    migrations.write("002_slow.sql", SLOW)
    runner = spawn_cli("-d", database_url, "-m", str(migrations), "migrate")
    wait_until(lambda: sleeping_backend(database_url))
    runner.kill()
    runner.wait(10)
    rows = tracking_rows(database_url)
    assert [r[0] for r in rows] == ["001"] and rows[0][2]
