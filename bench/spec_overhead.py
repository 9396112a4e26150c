#!/usr/bin/env python3
"""What the specification's isolation costs, beside the alternatives.

    .venv/bin/python bench/spec_overhead.py [--rounds 50] [--suite-runs 3] [--containers 3]

Measures, in one run on this machine:

* per-scenario isolation as scenarios experience it: the time the real suite
  spends in before_scenario + after_scenario (clone, workspace, cleanup, drop),
  with the harness's background prefetch (default) and without it; goal:
  median <= 50 ms;
* the synchronous cost of one clone + drop (FILE_COPY and WAL_LOG), which is
  what a scenario would wait for without prefetch;
* the same clone + drop on the container backend, when Docker is available;
* the alternatives it avoids: a fresh embedded server per scenario, and a fresh
  container per scenario (testcontainers), when Docker is available;
* the whole suite's wall time on the embedded backend (``behave -f null``), with
  the run's one-off start-up (server, template, first clone) shown separately.

Prints medians (and p90) in milliseconds. Shared machines are noisy: compare
the ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from pgship.testing.server import PostgresServer  # noqa: E402
from pgship.testing.spec.backends import BackendChoice, create_server  # noqa: E402
from pgship.testing.spec.databases import ScenarioDatabases  # noqa: E402

GOAL_MS = 50.0


def timed(action: Callable[[], object], rounds: int, warmup: int = 2) -> list[float]:
    """Milliseconds per call of ``action``, after a few unmeasured warm-up calls."""
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "n": len(ordered)}


def clone_and_drop(server: PostgresServer, strategy: str | None, rounds: int) -> dict[str, float]:
    databases = ScenarioDatabases(server, strategy=strategy)
    databases.prepare_template()
    try:
        return summary(timed(lambda: databases.drop(databases.create()), rounds))
    finally:
        databases.close()


def server_per_scenario(choice: BackendChoice, rounds: int) -> dict[str, float]:
    def cycle() -> None:
        server = create_server(choice)
        with server:
            server.server_version()  # ready for a scenario: it answers a query

    return summary(timed(cycle, rounds, warmup=1 if choice.name == "container" else 0))


@dataclass
class SuiteRuns:
    wall: dict[str, float]
    isolation: dict[str, float]
    startup: dict[str, float]
    scenarios: int


def run_suite(runs: int, *, prefetch: bool) -> SuiteRuns:
    """``behave -f null`` on embedded, ``runs`` times: wall time, hook-side isolation waits, start-up."""
    walls: list[float] = []
    waits: list[float] = []
    startups: list[float] = []
    scenarios = 0
    for _ in range(runs):
        scratch = Path(tempfile.mkdtemp(prefix="pgship-bench-"))
        command = [
            sys.executable, "-m", "behave", "-f", "null", "-D", "db=embedded",
            "-D", f"prefetch={str(prefetch).lower()}",
            "-D", f"pgship.results_dir={scratch / 'results'}",
            "-D", f"pgship.timings={scratch / 'timings.json'}",
        ]  # fmt: skip
        started = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        walls.append((time.perf_counter() - started) * 1000)
        if completed.returncode != 0:
            raise SystemExit(
                f"the specification failed; fix it before timing it:\n{completed.stdout[-3000:]}"
            )
        timings = json.loads((scratch / "timings.json").read_text())
        waits += timings["isolation_ms"]
        startups.append(timings["startup_ms"])
        scenarios = len(list((scratch / "results").glob("*-result.json")))
        shutil.rmtree(scratch, ignore_errors=True)
    return SuiteRuns(summary(walls), summary(waits), summary(startups), scenarios)


def docker_available() -> str | None:
    """None when the container backend can run here, else why not."""
    if shutil.which("docker") is None:
        return "no docker command on this machine"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"the Docker engine is not running ({probe.stderr.strip().splitlines()[-1:]})"
    try:
        import pgship.testing.container  # noqa: F401
    except ImportError:
        return "pgship.testing.container is not in this checkout"
    return None


def container_image() -> str:
    if os.environ.get("PGSHIP_TEST_IMAGE"):
        return os.environ["PGSHIP_TEST_IMAGE"]
    picker = ROOT / "scripts" / "pick-postgres-image.sh"
    if picker.exists():
        return subprocess.run(
            ["bash", str(picker)], capture_output=True, text=True, check=True
        ).stdout.strip()
    return "postgres:16"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="clone/drop cycles per measurement")
    parser.add_argument("--suite-runs", type=int, default=3, help="whole-suite runs")
    parser.add_argument("--containers", type=int, default=3, help="fresh containers to time")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    rows: list[tuple[str, dict[str, float] | None, str]] = []
    embedded = BackendChoice("embedded")

    prefetched = run_suite(args.suite_runs, prefetch=True)
    synchronous = run_suite(args.suite_runs, prefetch=False)
    scenarios = prefetched.scenarios
    rows.append(("embedded: isolation wait per scenario, prefetch on (default)", prefetched.isolation, ""))
    rows.append(("embedded: isolation wait per scenario, prefetch off", synchronous.isolation, ""))

    with create_server(embedded) as server:
        rows.append(
            (
                "embedded: one clone + drop, FILE_COPY (default)",
                clone_and_drop(server, "file_copy", args.rounds),
                "",
            )
        )
        rows.append(
            ("embedded: one clone + drop, WAL_LOG", clone_and_drop(server, "wal_log", args.rounds), "")
        )
    rows.append(("embedded: run start-up (server, template, first clone)", prefetched.startup, ""))
    rows.append(("alternative: fresh embedded server per scenario", server_per_scenario(embedded, 3), ""))

    why_not = docker_available()
    if why_not is None:
        image = container_image()
        container = BackendChoice("container", image=image)
        with create_server(container) as server:
            rows.append(
                (
                    f"container: one clone + drop, FILE_COPY ({image})",
                    clone_and_drop(server, "file_copy", args.rounds),
                    "",
                )
            )
            rows.append(
                (
                    f"container: one clone + drop, WAL_LOG ({image})",
                    clone_and_drop(server, "wal_log", args.rounds),
                    "",
                )
            )
        rows.append(
            (
                f"alternative: fresh container per scenario ({image})",
                server_per_scenario(container, args.containers),
                "",
            )
        )
    else:
        rows.append(("container figures", None, f"not measured: {why_not}"))

    rows.append((f"whole suite on embedded, {scenarios} scenarios, prefetch on", prefetched.wall, ""))
    rows.append((f"whole suite on embedded, {scenarios} scenarios, prefetch off", synchronous.wall, ""))

    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement':<{width}}  {'median ms':>10}  {'p90 ms':>9}  {'n':>3}")
    for name, figures, note in rows:
        if figures is None:
            print(f"{name:<{width}}  {note}")
            continue
        median, p90, count = figures["median_ms"], figures["p90_ms"], int(figures["n"])
        print(f"{name:<{width}}  {median:>10.1f}  {p90:>9.1f}  {count:>3}")

    cycle = prefetched.isolation
    fresh = next(f for n, f, _ in rows if n.startswith("alternative: fresh embedded"))
    assert fresh is not None
    verdict = "meets" if cycle["median_ms"] <= GOAL_MS else "MISSES"
    print()
    print(
        f"isolation per scenario: {cycle['median_ms']:.1f} ms median ({verdict} the {GOAL_MS:.0f} ms goal); "
        f"without prefetch {synchronous.isolation['median_ms']:.1f} ms; "
        f"a fresh embedded server per scenario would cost {fresh['median_ms']:.0f} ms"
    )
    for name, figures, _ in rows:
        if figures is not None and name.startswith("alternative: fresh container"):
            per_container = figures["median_ms"]
            extra_s = scenarios * (per_container - cycle["median_ms"]) / 1000
            print(f"a fresh container per scenario: {per_container:.0f} ms each (+{extra_s:.1f} s here)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({name: figures or note for name, figures, note in rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
