"""What `pgship verify --replay` and `pgship diff` cost, next to what the migrations themselves cost.

    .venv/bin/python bench/replay.py [--runs 5] [--migrations docker/postgres/migrations]

Prints medians (and min-max) in milliseconds for, in one run on one machine:
  migrate          the migrations applied to a fresh database on a running server (the floor)
  replay embedded  verify --replay's replay: start an embedded PostgreSQL, migrate, throw it away
  replay url       the replay in a scratch database on a running server (--replay-url)
  diff             live snapshot + embedded replay + replay snapshot + comparison
  cli wall         `pgship verify --replay --no-database` as a process (Python start included)
and writes the numbers to bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(runs: int, action: Callable[[], dict[str, float] | None]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        started = time.perf_counter()
        parts = action() or {}
        samples.setdefault("total", []).append((time.perf_counter() - started) * 1000)
        for name, value in parts.items():
            samples.setdefault(name, []).append(value)
    return samples


def describe(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"median": statistics.median(values), "min": min(values), "max": max(values)}
        for name, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--migrations", default=str(ROOT / "docker" / "postgres" / "migrations"))
    args = parser.parse_args()

    from pgship import schema
    from pgship.database import connect
    from pgship.history import TrackingTable
    from pgship.migrations import discover
    from pgship.replay import ReplayOptions, replay
    from pgship.runner import Runner
    from pgship.testing import EmbeddedPostgres

    discovery = discover(args.migrations)
    table = TrackingTable.parse("schema_migrations")
    results: dict[str, dict[str, dict[str, float]]] = {}

    with EmbeddedPostgres() as server:

        def migrate_fresh() -> None:
            with server.fresh_database() as url, connect(url) as conn:
                Runner(conn, table).migrate(discovery)

        def replay_embedded() -> dict[str, float]:
            result = replay(discovery, table)
            return {"server start": result.start_ms, "migrations": result.migrate_ms}

        def replay_url() -> dict[str, float]:
            result = replay(discovery, table, ReplayOptions(url=server.admin_url))
            return {"scratch database": result.start_ms, "migrations": result.migrate_ms}

        live = server.url_for(server.create_database())
        with connect(live) as conn:
            Runner(conn, table).migrate(discovery)

        def diff() -> dict[str, float]:
            result = schema.diff(live, discovery, table)
            assert result.equal, [d.message for d in result.differences]
            return {
                "live snapshot": result.timings_ms["live_snapshot"],
                "replay": result.timings_ms["replay"],
            }

        def cli_wall() -> None:
            command = [
                sys.executable,
                "-m",
                "pgship",
                "-m",
                args.migrations,
                "verify",
                "--replay",
                "--no-database",
            ]
            subprocess.run(command, check=True, capture_output=True)

        for name, action in (
            ("migrate", migrate_fresh),
            ("replay embedded", replay_embedded),
            ("replay url", replay_url),
            ("diff", diff),
            ("cli wall", cli_wall),
        ):
            results[name] = describe(measure(args.runs, action))

    print(
        f"{len(discovery.migrations)} migrations from {args.migrations}, {args.runs} runs each "
        "(ms: median [min-max])"
    )
    for name, parts in results.items():
        cells = ", ".join(
            f"{part} {value['median']:.0f} [{value['min']:.0f}-{value['max']:.0f}]"
            for part, value in parts.items()
        )
        print(f"  {name:16} {cells}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps({"runs": args.runs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
