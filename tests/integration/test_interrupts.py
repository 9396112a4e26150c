"""An interrupted deploy reports exactly what was committed: randomised signals against real processes.

Each trial starts ``pgship migrate`` on a fresh database, sends SIGTERM or SIGINT after a random
delay (before, during or after the migrations), and holds the report against the database: exit
130, the versions the report says are applied are exactly those recorded, and the migration it
names as rolled back (or committed) is absent (or present).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal

from tests.conftest import MigrationsDir, spawn_cli
from tests.integration.helpers import applied_versions, query

TRIALS = int(os.environ.get("PGSHIP_SIGNAL_TRIALS", "20"))
MIGRATIONS = 24


def write_workload(migrations: MigrationsDir) -> None:
    migrations.write("001_log.sql", "CREATE TABLE log (version text NOT NULL);\n")
    for i in range(2, MIGRATIONS + 1):
        migrations.write(
            f"{i:03d}_step_{i}.sql",
            f"CREATE TABLE step_{i} (id int);\nINSERT INTO log VALUES ('{i:03d}');\n"
            f"SELECT pg_sleep({0.3 if i % 6 == 0 else 0.03});\n",
        )


def test_randomised_signals_are_reported_as_what_the_database_holds(pg_server, tmp_path):
    rng = random.Random(int(os.environ.get("PGSHIP_SIGNAL_SEED", "12")))
    migrations = MigrationsDir(tmp_path / "migrations")
    write_workload(migrations)
    outcomes = {
        "before any migration": 0,
        "in flight, rolled back": 0,
        "in flight, committed": 0,
        "between": 0,
        "exited before the signal": 0,
    }
    signalled = 0
    for trial in range(TRIALS):
        as_json = trial % 2 == 0
        sig = rng.choice([signal.SIGTERM, signal.SIGINT])
        delay = rng.uniform(0.5, 2.2)
        with pg_server.fresh_database() as url:
            args = ["-d", url, "-m", str(migrations), *(["--json"] if as_json else []), "migrate"]
            runner = spawn_cli(*args)
            try:
                runner.wait(delay)
                finished_first = True
            except Exception:
                finished_first = False
                runner.send_signal(sig)
            code = runner.wait(60)
            out, err = runner.communicate()
            recorded = applied_versions(url)
            logged = sorted(row[0] for row in query(url, "SELECT version FROM log")) if recorded else []
            context = (trial, sig.name, delay, code, out, err, recorded)
            # the database itself is consistent: a recorded migration ran once, nothing unrecorded ran
            assert logged == [v for v in recorded if v != "001"], context
            if not finished_first and code == 0:  # exited between the wait and the signal (a zombie)
                assert len(recorded) == MIGRATIONS, context
                outcomes["exited before the signal"] += 1
                continue
            if finished_first:
                assert code == 0, context
                continue
            signalled += 1
            assert code == 130, context
            if as_json:
                document = json.loads(out)
                assert document["status"] == "interrupted", context
                message = document["error"]["message"]
                # interrupted before the run began (connecting, reading files): no run report at all
                claimed = [a["version"] for a in document.get("applied", [])]
                assert claimed == recorded, context  # exactly what is committed, no more, no less
            else:
                message = err
                claimed_files = re.findall(r"applied by this run: ([^\n]*)", err)
                claimed = re.findall(r"(\d{3})_", claimed_files[0].split(";")[0]) if claimed_files else []
                assert claimed == recorded, context
            rolled_back = re.search(r"while applying (\d{3})_\S+; it was rolled back", message)
            committed = re.search(r"just after (\d{3})_\S+ was committed", message)
            if rolled_back:
                assert rolled_back[1] not in recorded, context
                outcomes["in flight, rolled back"] += 1
            elif committed:
                assert committed[1] in recorded and committed[1] == recorded[-1], context
                outcomes["in flight, committed"] += 1
            elif recorded:
                assert "no migration in flight" in message, context
                outcomes["between"] += 1
            else:
                outcomes["before any migration"] += 1
    print(f"\n{signalled} signalled trials of {TRIALS}: {outcomes}")
    assert signalled >= TRIALS // 2  # the delays land mostly inside the run
