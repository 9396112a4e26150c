#!/usr/bin/env python3
"""How long the everyday loop takes on a fresh clone: `make test`, its parts, and the specification alone.

    python3 bench/loop.py [--source .] [--keep] [--spec-workers 1,4] [--pytest-workers 4]

Clones the repository (its committed HEAD) into a new directory under /tmp and, in that clone, times:

* ``make venv``: the virtual environment and the editable install (the first step of a fresh clone);
* ``make lint``, ``make pytest``, ``make spec-dry-run``, ``make spec-embedded``: the parts of
  ``make test``, one after the other as ``make test`` runs them;
* ``make test`` as a whole, again (venv now present: what a second run costs);
* the embedded specification alone with each ``--spec-workers`` count (``SPEC_WORKERS=N``).

Prints a table (seconds, exit status) and the machine's cores and load averages before and after: this
machine is shared, so a number means little without its load. Exit status: 1 if any step failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Step:
    name: str
    seconds: float
    code: int


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


def timed(name: str, command: list[str], cwd: Path, env: dict[str, str], log: Path) -> Step:
    print(f"-- {name}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as stream:
        stream.write(f"\n==== {name}: {' '.join(command)}\n")
        stream.flush()
        code = subprocess.call(command, cwd=cwd, env=env, stdout=stream, stderr=subprocess.STDOUT)
    step = Step(name, time.monotonic() - started, code)
    print(f"   {step.seconds:7.1f} s  exit {code}  (load {load()})", flush=True)
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=ROOT, help="repository to clone (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    parser.add_argument("--spec-workers", default="1,4", help="SPEC_WORKERS counts for the spec alone")
    parser.add_argument("--pytest-workers", default="4", help="PYTEST_WORKERS for make pytest")
    parser.add_argument("--skip-whole", action="store_true", help="do not time `make test` again as a whole")
    args = parser.parse_args(argv)

    clone = Path(tempfile.mkdtemp(prefix="pgship-loop-")) / "pgship"
    subprocess.run(["git", "clone", "--quiet", str(args.source.resolve()), str(clone)], check=True)
    head = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout.strip()
    env = {**os.environ, "PYTEST_WORKERS": args.pytest_workers}
    env.pop("VIRTUAL_ENV", None)
    handle, log_name = tempfile.mkstemp(prefix="pgship-loop-", suffix=".log")
    os.close(handle)
    log = Path(log_name)  # outlives the clone
    print(f"clone of {args.source.resolve()} at {head} in {clone}; log {log}", flush=True)
    print(f"{os.cpu_count()} cores, load {load()}", flush=True)

    steps: list[Step] = []
    make = ["make", "--no-print-directory"]
    for target in ("venv", "lint", "pytest", "spec-dry-run", "spec-embedded"):
        steps.append(timed(f"make {target}", [*make, target], clone, env, log))
    fresh = sum(step.seconds for step in steps)
    if not args.skip_whole:
        steps.append(timed("make test (venv present)", [*make, "test"], clone, env, log))
    for workers in [w.strip() for w in args.spec_workers.split(",") if w.strip()]:
        steps.append(
            timed(
                f"spec alone, {workers} behave process(es)",
                [*make, "spec-embedded", f"SPEC_WORKERS={workers}"],
                clone,
                env,
                log,
            )
        )

    width = max(len(step.name) for step in steps)
    print(f"\n{'step':<{width}}  {'seconds':>8}  exit")
    for step in steps:
        print(f"{step.name:<{width}}  {step.seconds:8.1f}  {step.code}")
    print(f"{'make test on a fresh clone (sum of the first five)':<{width}}  {fresh:8.1f}")
    print(f"\n{os.cpu_count()} cores, load {load()} at the end; {head}")
    if args.keep:
        print(f"clone kept: {clone}")
    else:
        shutil.rmtree(clone.parent, ignore_errors=True)
    return 1 if any(step.code for step in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
