"""A fleet run killed at random moments: no target ever holds a migration applied but unrecorded,
and running the same command again completes every target.

Ten trials, real processes: ``pgship migrate --fleet-query ... --parallel 3`` on six databases of
ten migrations each (each migration creates a table and sleeps a little, so kills land inside
migrations as well as between them, before the first connection and during the report). Even
trials send SIGKILL (no chance to clean up: PostgreSQL rolls back what was in flight), odd trials
SIGTERM (pgship stops: nothing new starts, migrations in flight finish). The seed is printed, so a
failing trial can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import time

import psycopg
import pytest
from psycopg import sql

from tests.conftest import MigrationsDir
from tests.integration.helpers import query
from tests.toolkit import spawn_cli

DATABASES = 6
MIGRATIONS = 10
TRIALS = 10


@pytest.fixture
def release(migrations: MigrationsDir) -> MigrationsDir:
    for i in range(1, MIGRATIONS + 1):
        # 6 x 10 x 0.15 s over 3 workers: a run lasts at least 3 s on any machine, longer than the
        # longest delay before a signal (2.5 s), so the signals land mid-run however fast the machine
        migrations.write(f"{i:03d}_t{i}.sql", f"CREATE TABLE t{i} (id int);\nSELECT pg_sleep(0.15);\n")
    return migrations


def committed_state(url: str) -> tuple[list[int], list[int]]:
    """(versions recorded, tables t<N> that exist) in one database, read in one snapshot."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        tables = sorted(
            int(row[0][1:])
            for row in conn.execute(
                "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname ~ '^t[0-9]+$'"
            ).fetchall()
        )
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
            return [], tables
        recorded = sorted(int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations"))
    return recorded, tables


def wait_for_backends_to_end(admin_url: str, prefix: str) -> None:
    """A killed client's backend may still be finishing a pipelined migration (and commit it)."""
    deadline = time.monotonic() + 30
    while query(admin_url, "SELECT 1 FROM pg_stat_activity WHERE datname LIKE %s", (prefix + "%",)):
        assert time.monotonic() < deadline, "backends of the killed run did not end"
        time.sleep(0.05)


def test_a_fleet_run_killed_at_random_moments_never_leaves_a_migration_unrecorded(pg_server, release):
    seed = int(os.environ.get("PGSHIP_FAULT_SEED", secrets.randbits(32)))
    rng = random.Random(seed)
    print(f"fleet fault trials, seed {seed} (PGSHIP_FAULT_SEED={seed} replays them)")
    killed_mid_run = 0
    stopped_gracefully = 0
    for trial in range(TRIALS):
        prefix = f"fleetfault_{secrets.token_hex(3)}"
        names = [f"{prefix}_{i}" for i in range(DATABASES)]
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            fleet = [
                "-d",
                pg_server.admin_url,
                "-m",
                str(release),
                "migrate",
                "--parallel",
                "3",
                "--json",
                "--fleet-query",
                f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}\\_%'",
            ]
            proc = spawn_cli(*fleet)
            delay = rng.uniform(0.2, 2.5)
            time.sleep(delay)
            sig = signal.SIGKILL if trial % 2 == 0 else signal.SIGTERM
            still_running = proc.poll() is None
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
            killed_mid_run += still_running
            context = f"trial {trial} (seed {seed}): {sig.name} after {delay:.2f} s, exit {proc.returncode}"
            if sig == signal.SIGTERM and still_running:
                # 130: stopped as asked; 0: it had just finished; -15: the signal came before pgship's
                # handler was installed (start-up) or after it was removed (interpreter shutdown);
                # -2: it came after the report, as the process was leaving main() (the handler's
                # KeyboardInterrupt then ends the process): only with the complete report printed
                finished_then_hit = proc.returncode == -2 and out.strip().endswith("}")
                assert proc.returncode in (130, 0, -15) or finished_then_hit, f"{context}\n{out}\n{err}"
                if proc.returncode == 130 and out.strip():
                    assert json.loads(out)["status"] == "interrupted", context
                    stopped_gracefully += 1
                elif proc.returncode == 130:  # stopped during start-up, before the fleet run began
                    wait_for_backends_to_end(pg_server.admin_url, prefix)
                    assert all(committed_state(pg_server.url_for(n)) == ([], []) for n in names), context
            wait_for_backends_to_end(pg_server.admin_url, prefix)
            for name in names:
                recorded, tables = committed_state(pg_server.url_for(name))
                assert recorded == tables, f"{context}: {name} has tables {tables} but records {recorded}"
                assert recorded == list(range(1, len(recorded) + 1)), f"{context}: {name} skipped one"
            rerun = spawn_cli(*fleet)
            out, err = rerun.communicate(timeout=120)
            assert rerun.returncode == 0, f"{context}: the rerun failed\n{out}\n{err}"
            assert json.loads(out)["status"] == "ok"
            for name in names:
                recorded, tables = committed_state(pg_server.url_for(name))
                assert recorded == tables == list(range(1, MIGRATIONS + 1)), f"{context}: {name} incomplete"
                counts = query(
                    pg_server.url_for(name), "SELECT count(*), count(DISTINCT version) FROM schema_migrations"
                )
                assert counts == [(MIGRATIONS, MIGRATIONS)], f"{context}: {name} recorded one twice"
        finally:
            with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
                for name in names:
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                    )
    print(
        f"{killed_mid_run} of {TRIALS} signals landed mid-run; "
        f"{stopped_gracefully} SIGTERMs stopped it with 130"
    )
    assert killed_mid_run >= TRIALS // 2, "most kills must land while the fleet run is still going"
