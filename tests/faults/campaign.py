"""Run the reliability campaign and print its table: ``python -m tests.faults.campaign``.

Runs ``pytest -m faults`` with ``PGSHIP_FAULT_TRIALS`` trials (60 SIGKILL
trials by default; the other faults scale from it), collects one JSON line
per trial, and prints a Markdown table: each fault, trials, held, violated,
what was observed or measured, and the command that reproduces it.
``--write docs/RELIABILITY.md`` replaces the table between the
``<!-- campaign:start -->`` and ``<!-- campaign:end -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.faults.results import FULL_KILL_TRIALS, RESULTS_ENV, TRIALS_ENV

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- campaign:start -->", "<!-- campaign:end -->"

# fault name as recorded -> (what it is, the pytest selection that reproduces it)
FAULTS: dict[str, tuple[str, str]] = {
    "sigkill": (
        "SIGKILL of the runner mid-run (200-migration runs; 60 in the short run)",
        "tests/faults/test_kill.py",
    ),
    "pg_terminate_backend": (
        "`pg_terminate_backend` of the runner's connection mid-run",
        "tests/faults/test_connection_loss.py -k terminate",
    ),
    "server crash-restart": (
        "`pg_ctl restart -m immediate` mid-run (fsync and synchronous commit on)",
        "tests/faults/test_connection_loss.py -k crash",
    ),
    "fault inside CREATE INDEX CONCURRENTLY": (
        "SIGKILL / terminate / cancel / crash-restart inside `CREATE INDEX CONCURRENTLY`",
        "tests/faults/test_interrupted_index.py",
    ),
    "8 runners at once (--lock-wait 120)": (
        "8 runners started at the same moment",
        "tests/faults/test_concurrency.py -k patient",
    ),
    "8 runners at once (--lock-wait 0.3)": (
        "8 runners at once, lock wait deliberately short (0.3 s)",
        "tests/faults/test_concurrency.py -k short",
    ),
    "long transaction holding a lock": (
        "a long transaction holds a lock on a table a migration alters",
        "tests/faults/test_lock_contention.py",
    ),
    "CREATE INDEX CONCURRENTLY while a runner waits": (
        "`CREATE INDEX CONCURRENTLY` while a second runner waits for the lock",
        "tests/faults/test_concurrency.py -k never_hangs",
    ),
    "control: a waiter inside a transaction": (
        "control: the same, with a naive waiter inside a transaction (must break)",
        "tests/faults/test_concurrency.py -k control",
    ),
    "two spellings of one tracking table racing": (
        "two runners at once, each spelling the tracking table differently (`schema_migrations`, "
        "`public.schema_migrations`, quoted)",
        "tests/faults/test_hostile_migrations.py -k spellings",
    ),
    "a migration releases the migration lock": (
        "a migration releases the run's advisory lock (`pg_advisory_unlock_all()`, "
        "`pg_advisory_unlock(key)`, `DISCARD ALL` in a no-transaction file) while a second runner waits",
        "tests/faults/test_hostile_migrations.py -k releasing",
    ),
    "a migration writes other versions' tracking rows": (
        "a migration inserts, deletes or updates other versions' tracking rows (and a legacy file "
        "recording itself, which must pass)",
        "tests/faults/test_hostile_migrations.py -k forge",
    ),
    "session state left by a migration": (
        "a migration leaves session state behind (three of: SET ROLE, SET SESSION AUTHORIZATION, temp "
        "table, prepared statement, WITH HOLD cursor, LISTEN, search_path, statement_timeout, read-only)",
        "tests/faults/test_hostile_migrations.py -k session_state",
    ),
    "a migration moves the default search_path": (
        "a migration runs `ALTER DATABASE/ROLE ... SET search_path`, or the search_path names a schema "
        "the first migration creates",
        "tests/faults/test_hostile_migrations.py -k search_path",
    ),
    "SIGTERM/SIGINT at a random instant": (
        "SIGTERM or SIGINT at a random instant of a 24-migration run; the report is held against "
        "the database",
        "tests/faults/test_hostile_migrations.py -k stop_signal",
    ),
    "SIGKILL through a transaction pooler": (
        "SIGKILL of the runner mid-run through PgBouncer in transaction mode (lease lock, `--lease-ttl 2`); "
        "the rerun through the pooler waits out the dead lease",
        "tests/faults/test_pooler.py -k sigkill",
    ),
    "4 runners at once through a transaction pooler": (
        "4 runners at once through PgBouncer in transaction mode",
        "tests/faults/test_pooler.py -k racing",
    ),
    "PgBouncer RECONNECT mid-run": (
        "PgBouncer admin `RECONNECT db` mid-run (server connections replaced as they come free)",
        "tests/faults/test_pooler.py -k RECONNECT",
    ),
    "PgBouncer KILL mid-run": (
        "PgBouncer admin `KILL db` mid-run (every client and server connection dropped), then `RESUME`",
        "tests/faults/test_pooler.py -k KILL",
    ),
    "hostile migration directories": (
        "hand-written hostile directories",
        "tests/faults/test_bad_input.py -k hostile",
    ),
    "fuzzed migration directories": (
        "fuzzed migration directories (hypothesis)",
        "tests/faults/test_bad_input.py -k fuzz",
    ),
    "password in output": (
        "distinctive password (and health token): every command, serve's endpoints and deploy, succeeding "
        "and failing; stdout, stderr, JSON, HTTP responses, files written, tracking table",
        "tests/faults/test_secrets.py",
    ),
}


#: faults whose trials are each one variant of an attack (the variant is the trial's ``where``)
HOSTILE_MIGRATIONS = (
    "two spellings of one tracking table racing",
    "a migration releases the migration lock",
    "a migration writes other versions' tracking rows",
    "session state left by a migration",
    "a migration moves the default search_path",
    "SIGTERM/SIGINT at a random instant",
)


def summarise(fault: str, outcomes: list[dict[str, Any]]) -> str:
    """What the trials observed or measured, in a few words."""
    metrics = [o["metrics"] for o in outcomes]
    if fault in ("sigkill", "pg_terminate_backend"):
        where = Counter(o["where"] for o in outcomes)
        ks = [o["applied_before_fault"] for o in outcomes if o["applied_before_fault"] is not None]
        partial = sum("statements of no-transaction" in o["detail"] for o in outcomes)
        text = "; ".join(f"{place}: {count}" for place, count in where.most_common())
        return (
            f"{text}; k = {min(ks, default=0)}..{max(ks, default=0)}; no-transaction prefix left: {partial}"
        )
    if fault == "server crash-restart":
        lost = sum("gone after the crash" in o["detail"] for o in outcomes)
        ks = [o["applied_before_fault"] or 0 for o in outcomes]
        return f"k = {min(ks, default=0)}..{max(ks, default=0)}; reported-applied migrations lost: {lost}"
    if fault == "fault inside CREATE INDEX CONCURRENTLY":
        invalid = sum(False in (m.get("after_fault") or {}).values() for m in metrics)
        faults = Counter(o["where"].split(" during")[0] for o in outcomes)
        listed = ", ".join(f"{fault}: {count}" for fault, count in faults.items())
        return f"{listed}; an INVALID index was left, then rebuilt by the rerun: {invalid}"
    if fault.startswith("8 runners"):
        codes = Counter(tuple(m["exit_codes"]) for m in metrics)
        return "exit codes " + "; ".join(f"{' '.join(map(str, c))} (x{n})" for c, n in codes.items())
    if fault == "long transaction holding a lock":
        worst = max(metrics, key=lambda m: m["worst_production_wait_s"], default=None)
        if worst is None:
            return ""
        overshoot = max(m["worst_production_wait_s"] - m["final_lock_timeout_s"] for m in metrics)
        return (
            f"worst production query wait {worst['worst_production_wait_s']:.2f} s (that trial's final "
            f"lock_timeout: {worst['final_lock_timeout_s']:.2f} s); no query waited longer than "
            f"its trial's final lock_timeout + {max(overshoot, 0) * 1000:.0f} ms"
        )
    if fault == "CREATE INDEX CONCURRENTLY while a runner waits":
        longest = max((m["seconds_after_second_runner_started"] for m in metrics), default=0)
        return f"both runners done at most {longest:.1f} s after the second started"
    if fault.startswith("control"):
        return outcomes[0]["detail"]
    if fault in HOSTILE_MIGRATIONS:
        where = Counter(o["where"] for o in outcomes)
        return "; ".join(f"{place}: {count}" for place, count in sorted(where.items()))
    if fault == "hostile migration directories":
        return f"{len(outcomes)} directories: tests/data/hostile, plus pipes, devices, odd names"
    if fault == "fuzzed migration directories":
        examples = sum(m.get("examples", 0) for m in metrics)
        return f"{examples} examples: {outcomes[-1]['where']}"
    if fault == "password in output":
        return f"{sum(m['runs'] for m in metrics)} runs scanned, {sum(m['hits'] for m in metrics)} hits"
    return ""


def table(results: list[dict[str, Any]], trials: int) -> str:
    by_fault: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for outcome in results:
        by_fault[outcome["fault"]].append(outcome)
    lines = [
        "| Fault | Trials | Held | Violated | Observed / measured | Reproduce |",
        "|---|---:|---:|---:|---|---|",
    ]
    for fault in [*FAULTS, *(f for f in by_fault if f not in FAULTS)]:
        outcomes = by_fault.get(fault, [])
        title, selection = FAULTS.get(fault, (fault, "tests/faults"))
        if fault == "fuzzed migration directories":
            count = sum(o["metrics"].get("examples", 0) for o in outcomes)
            held = (
                count if outcomes and all(o["held"] for o in outcomes) else sum(o["held"] for o in outcomes)
            )
        else:
            count, held = len(outcomes), sum(o["held"] for o in outcomes)
        violated = count - held if outcomes else 0
        command = f"`PGSHIP_FAULT_TRIALS={trials} .venv/bin/python -m pytest {selection}`"
        summary = summarise(fault, outcomes) if outcomes else "not run"
        lines.append(f"| {title} | {count} | {held} | {violated} | {summary} | {command} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=int(os.environ.get(TRIALS_ENV) or FULL_KILL_TRIALS))
    parser.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    parser.add_argument("--results", type=Path, default=ROOT / "reports" / "faults" / "results.jsonl")
    parser.add_argument(
        "--write", type=Path, help="replace the table in this Markdown file (docs/RELIABILITY.md)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="render the table from --results of an earlier run; run nothing",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. a single test file)")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args)

    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text("")
    env = {
        **os.environ,
        TRIALS_ENV: str(args.trials),
        RESULTS_ENV: str(args.results),
        "PGSHIP_FAULT_SEED": str(args.seed),
    }
    print(f"fault campaign: {args.trials} SIGKILL trials (others scale), seed {args.seed}", flush=True)
    started = time.monotonic()
    selection = args.pytest_args or ["tests/faults"]
    code = subprocess.call(
        [sys.executable, "-m", "pytest", "-m", "faults", "-p", "no:cacheprovider", "-q", *selection],
        cwd=ROOT,
        env=env,
    )
    run = {
        "seed": args.seed,
        "trials": args.trials,
        "minutes": (time.monotonic() - started) / 60,
        "exit": code,
    }
    args.results.with_suffix(".run.json").write_text(json.dumps(run))
    return render(args)


def render(args: argparse.Namespace) -> int:
    """Print the table of the results file (and write it where asked); returns the run's pytest exit."""
    results = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    run = json.loads(args.results.with_suffix(".run.json").read_text())
    rendered = table(results, run["trials"])
    footer = (
        f"\n{len(results)} trial records, seed {run['seed']}, {run['minutes']:.1f} min, pytest exit "
        f"{run['exit']}. Reproduce the whole campaign: `make faults` (or "
        f"`PGSHIP_FAULT_SEED={run['seed']} make faults`)."
    )
    print("\n" + rendered + "\n" + footer)
    (args.results.parent / "table.md").write_text(rendered + "\n" + footer + "\n")
    if args.write:
        document = args.write.read_text()
        head, _, rest = document.partition(START)
        _, _, tail = rest.partition(END)
        args.write.write_text(f"{head}{START}\n{rendered}\n{footer}\n{END}{tail}")
        print(f"wrote the table into {args.write}")
    return int(run["exit"])


if __name__ == "__main__":
    sys.exit(main())
