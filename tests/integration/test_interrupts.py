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
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from tests.conftest import MigrationsDir
from tests.integration.helpers import applied_versions, query
from tests.toolkit import spawn_cli_loaded

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


def signal_trial(
    pg_server, migrations: MigrationsDir, rng: random.Random, *, as_json: bool
) -> tuple[str, list[str]]:
    """One randomised signal trial: (where it landed, problems found; none if the report was true)."""
    sig = rng.choice([signal.SIGTERM, signal.SIGINT])
    delay = rng.uniform(0.5, 2.2)
    with pg_server.fresh_database() as url:
        args = ["-d", url, "-m", str(migrations), *(["--json"] if as_json else []), "migrate"]
        # the random instant is measured from when pgship is loaded, not from the fork: on a loaded
        # machine the interpreter's start-up alone can outlast the delay (a signal there is Python's)
        gate = Path(tempfile.mkdtemp(prefix="pgship-signal-")) / "start"
        runner = spawn_cli_loaded(*args, gate=gate)
        gate.touch()
        try:
            runner.wait(delay)
            finished_first = True
        except subprocess.TimeoutExpired:
            finished_first = False
            runner.send_signal(sig)
        code = runner.wait(60)
        out, err = runner.communicate()
        shutil.rmtree(gate.parent, ignore_errors=True)
        recorded = applied_versions(url)
        logged = sorted(row[0] for row in query(url, "SELECT version FROM log")) if recorded else []
    context = f"{sig.name} after {delay:.2f} s: exit {code}, recorded {recorded}\n{out}\n{err}"
    problems = []
    # the database itself is consistent: a recorded migration ran once, nothing unrecorded ran
    if logged != [v for v in recorded if v != "001"]:
        problems.append(f"log {logged} does not match the tracking table: {context}")
    if finished_first or code == 0:  # done before the signal (or between the wait and the signal)
        if code != 0 or len(recorded) != MIGRATIONS:
            problems.append(f"an unsignalled run did not complete: {context}")
        return "exited before the signal", problems
    if code != 130:
        problems.append(f"exit code {code}, expected 130: {context}")
    if as_json:
        document = json.loads(out)
        if document.get("status") != "interrupted":
            problems.append(f"status {document.get('status')!r}: {context}")
        message = document.get("error", {}).get("message", "")
        # interrupted before the run began (connecting, reading files): no run report at all
        claimed = [a["version"] for a in document.get("applied", [])]
    else:
        message = err
        claimed_files = re.findall(r"applied by this run: ([^\n]*)", err)
        claimed = re.findall(r"(\d{3})_", claimed_files[0].split(";")[0]) if claimed_files else []
    if claimed != recorded:
        problems.append(f"reported applied {claimed}, the database recorded {recorded}: {context}")
    rolled_back = re.search(r"while applying (\d{3})_\S+; it was rolled back", message)
    committed = re.search(r"just after (\d{3})_\S+ was committed", message)
    if rolled_back:
        if rolled_back[1] in recorded:
            problems.append(f"reported {rolled_back[1]} rolled back, but it is recorded: {context}")
        return "in flight, rolled back", problems
    if committed:
        if not recorded or committed[1] != recorded[-1]:
            problems.append(f"reported {committed[1]} committed, the database has {recorded}: {context}")
        return "in flight, committed", problems
    if recorded:
        if "no migration in flight" not in message:
            problems.append(f"no claim about the migration in flight: {context}")
        return "between migrations", problems
    return "before any migration", problems


def test_randomised_signals_are_reported_as_what_the_database_holds(pg_server, tmp_path):
    rng = random.Random(int(os.environ.get("PGSHIP_SIGNAL_SEED", "12")))
    migrations = MigrationsDir(tmp_path / "migrations")
    write_workload(migrations)
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    for trial in range(TRIALS):
        where, found = signal_trial(pg_server, migrations, rng, as_json=trial % 2 == 0)
        outcomes[where] += 1
        problems += found
    print(f"\n{TRIALS} signal trials: {dict(outcomes)}")
    assert not problems, "\n\n".join(problems)
    assert outcomes["exited before the signal"] <= TRIALS // 2  # the delays land mostly inside the run
