"""One release, many databases: ``pgship migrate --fleet`` against a shell loop, side by side.

Every variant brings D fresh databases (default 200) to the same M migrations (default 20, the
peer benchmark's workload) on one embedded PostgreSQL, in one run:

* a shell loop of ``pgship migrate``, one process per database (what teams do today);
* a shell loop of ``dbmate up`` (dbmate is the peer bench/ already installs; skipped without npm);
* ``pgship migrate --fleet-query ... --parallel N`` for N in 1, 2, 4, 8;

then the no-op: the same fleet command again on the migrated fleet. Peak RSS (GNU time) of the fleet
command at several fleet sizes shows whether memory stays flat as the fleet grows. Figures are
wall times and ratios to the pgship shell loop of the same run; no assertion, just the table.

    .venv/bin/python bench/fleet.py [--databases 200] [--migrations 20] [--parallel 1,2,4,8]
    .venv/bin/python bench/fleet.py --quick        # 20 databases: a smoke test of the harness
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from peerbench.measure import Measurement, ensure_gnu_time, run_measured
from peerbench.tools import ensure_dbmate
from peerbench.workload import write_workload
from psycopg import sql

from pgship.testing import EmbeddedPostgres

RESULTS = Path(__file__).resolve().parent / "results"
PGSHIP = Path(sys.executable).with_name("pgship")


@dataclass
class Row:
    variant: str
    databases: int
    seconds: float
    peak_rss_mib: float
    ok: bool
    note: str = ""


class Fleet:
    """D databases cloned from an empty template, named <prefix>_<i>, dropped afterwards."""

    def __init__(self, server: EmbeddedPostgres, count: int) -> None:
        self.server = server
        self.count = count
        self.prefix = f"fleet_{secrets.token_hex(3)}"
        self.names = [f"{self.prefix}_{i:05d}" for i in range(count)]

    def __enter__(self) -> Fleet:
        with psycopg.connect(self.server.admin_url, autocommit=True) as conn:
            for name in self.names:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE template0 STRATEGY FILE_COPY").format(
                        sql.Identifier(name)
                    )
                )
        return self

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(self.server.admin_url, autocommit=True) as conn:
            for name in self.names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @property
    def query(self) -> str:
        return f"SELECT datname FROM pg_database WHERE datname LIKE '{self.prefix}\\_%' ORDER BY 1"

    def check(self, expected: int) -> bool:
        """Every database has exactly ``expected`` tracking rows (pgship's table or dbmate's)."""
        for name in self.names:
            with psycopg.connect(self.server.url_for(name), autocommit=True) as conn:
                table = "schema_migrations"
                count = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                ).fetchone()[0]
                if count != expected:
                    return False
        return True


def environment(server: EmbeddedPostgres) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PGSHIP_")) and k != "DATABASE_URL"}
    env["PGPASSWORD"] = server.password
    return env


def shell_loop(fleet: Fleet, command: str, workdir: Path) -> list[str]:
    """A bash loop over the fleet's databases, as a deploy script would have it."""
    script = workdir / f"loop-{fleet.prefix}.sh"
    urls = "\n".join(fleet.server.url_for(name) for name in fleet.names)
    (workdir / f"urls-{fleet.prefix}.txt").write_text(urls + "\n")
    script.write_text(
        "set -u\nfailed=0\n"
        f"while read -r url; do {command} || failed=$((failed + 1)); "
        f'done < "{workdir}/urls-{fleet.prefix}.txt"\n'
        'exit "$failed"\n'
    )
    return ["bash", str(script)]


def fleet_command(server: EmbeddedPostgres, fleet: Fleet, migrations: Path, parallel: int) -> list[str]:
    return [
        str(PGSHIP),
        "-d",
        server.admin_url,
        "-m",
        str(migrations),
        "migrate",
        "--fleet-query",
        fleet.query,
        "--parallel",
        str(parallel),
    ]


def measure(label: str, fleet: Fleet, command: list[str], env: dict[str, str], expected: int) -> Row:
    result: Measurement = run_measured(command, env=env)
    ok = result.ok and fleet.check(expected)
    note = "" if ok else result.output[-300:].replace("\n", " | ")
    row = Row(label, fleet.count, round(result.seconds, 2), round(result.peak_rss_kib / 1024, 1), ok, note)
    print(
        f"  {label:<36} {row.seconds:>8.2f} s  peak RSS {row.peak_rss_mib:>6.1f} MiB  "
        + ("ok" if ok else "FAILED")
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--databases", type=int, default=200)
    parser.add_argument("--migrations", type=int, default=20)
    parser.add_argument("--parallel", default="1,2,4,8")
    parser.add_argument("--memory-sizes", default="50,200,400", help="fleet sizes for the peak-RSS series")
    parser.add_argument("--no-dbmate", action="store_true")
    parser.add_argument("--durable", action="store_true", help="fsync on (slower; every variant pays it)")
    parser.add_argument(
        "--quick", action="store_true", help="20 databases, parallel 1 and 4, no memory series"
    )
    parser.add_argument(
        "--no-loop", action="store_true", help="skip the shell loop of pgship (the slowest part)"
    )
    args = parser.parse_args()
    if args.quick:
        args.databases, args.parallel, args.memory_sizes = 20, "1,4", ""
    ensure_gnu_time(print)
    if not PGSHIP.exists():
        raise SystemExit(f"no pgship console script next to {sys.executable}: pip install -e .")
    dbmate = None
    if not args.no_dbmate:
        try:
            dbmate = ensure_dbmate(print)[0]
        except (SystemExit, Exception) as exc:  # no npm or no registry: the pgship figures still stand
            print(f"dbmate skipped: {exc}")
    workdir = Path(tempfile.mkdtemp(prefix="pgship-fleet-bench-"))
    files = write_workload(workdir / "workload", args.migrations)
    rows: list[Row] = []
    started = time.perf_counter()
    load = os.getloadavg()[0]
    with EmbeddedPostgres(durable=args.durable) as server:
        env = environment(server)
        print(
            f"{args.databases} databases x {args.migrations} migrations, PostgreSQL embedded "
            f"({'fsync on' if args.durable else 'fsync off'}), load {load:.1f} on {os.cpu_count()} CPUs"
        )
        if not args.no_loop:
            with Fleet(server, args.databases) as fleet:
                loop = shell_loop(
                    fleet, f'{PGSHIP} -d "$url" -m {files.numbered} migrate >/dev/null', workdir
                )
                rows.append(measure("shell loop of pgship migrate", fleet, loop, env, args.migrations))
        if dbmate is not None:
            with Fleet(server, args.databases) as fleet:
                loop = shell_loop(
                    fleet,
                    f'DATABASE_URL="$url?sslmode=disable" {dbmate} --no-dump-schema '
                    f"-d {files.dbmate} up >/dev/null",
                    workdir,
                )
                rows.append(measure("shell loop of dbmate up", fleet, loop, env, args.migrations))
        for parallel in [int(p) for p in args.parallel.split(",") if p]:
            with Fleet(server, args.databases) as fleet:
                command = fleet_command(server, fleet, files.numbered, parallel)
                rows.append(
                    measure(
                        f"pgship migrate --fleet --parallel {parallel}", fleet, command, env, args.migrations
                    )
                )
                rows.append(
                    measure(f"  no-op rerun, --parallel {parallel}", fleet, command, env, args.migrations)
                )
        for size in [int(s) for s in args.memory_sizes.split(",") if s]:
            with Fleet(server, size) as fleet:
                command = fleet_command(server, fleet, files.numbered, 4)
                rows.append(
                    measure(f"memory: {size} databases, --parallel 4", fleet, command, env, args.migrations)
                )
    shutil.rmtree(workdir, ignore_errors=True)
    loop_seconds = next((r.seconds for r in rows if r.variant == "shell loop of pgship migrate"), None)
    print()
    print(f"{'variant':<38} {'databases':>9} {'seconds':>9} {'vs loop':>8} {'peak RSS':>10}")
    for row in rows:
        ratio = f"{loop_seconds / row.seconds:.1f}x" if loop_seconds and row.seconds else ""
        print(
            f"{row.variant:<38} {row.databases:>9} {row.seconds:>9.2f} {ratio:>8} "
            f"{row.peak_rss_mib:>7.1f} MiB" + ("" if row.ok else "  FAILED " + row.note)
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"fleet-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "load_before": load,
                "seconds": time.perf_counter() - started,
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
        )
    )
    print(f"\nwritten to {out}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
