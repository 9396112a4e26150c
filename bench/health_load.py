"""Load on /health/database: requests/s, p99, and how many database checks the load caused.

Run through bench/health_load.sh (it installs wrk). Each scenario starts a fresh
server process on loopback against an embedded PostgreSQL that logs every statement,
drives it with wrk for a fixed time, and counts the health checks PostgreSQL
received from the statement log (application ``pgship-health``): an exact count of
database round trips, not an estimate.

Scenarios:
  pgship serve            the product as shipped (cache 2 s): the numbers the goal is about
  unguarded uvicorn       the same app under plain uvicorn + httptools, without pgship's guard against
                          hostile clients (pgship.health.server): what the guard costs, as a ratio
  uncached, async pool    --cache-ttl 0: every check reaches the database (async psycopg_pool)
  uncached, thread pool   the alternative design: a sync psycopg_pool, each check in a worker thread
  pure-Python HTTP        uvicorn without httptools/uvloop (h11 + asyncio): why they are dependencies
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = ROOT / "docker" / "postgres" / "migrations"
RESULTS = ROOT / "bench" / "results"


# -- a variant server (the alternatives measured against pgship serve) -----------------
def serve_variant(args: argparse.Namespace) -> None:
    """Serve create_app() like `pgship serve` does, with another probe or HTTP stack."""
    import uvicorn

    from pgship.health import DatabaseProbe, create_app
    from pgship.history import TrackingTable
    from pgship.migrations import discover

    class ThreadPoolProbe(DatabaseProbe):
        """The alternative design: a sync psycopg_pool, each check run in a worker thread."""

        def __init__(self, *a: Any, **kw: Any) -> None:
            from psycopg_pool import ConnectionPool

            super().__init__(*a, **kw)
            self.sync_pool = ConnectionPool(
                self.url, kwargs=self._connect_kwargs(), min_size=1, max_size=2, open=True
            )

        async def _fetch(self) -> Any:
            return await asyncio.to_thread(self._fetch_in_thread)

        def _fetch_in_thread(self) -> Any:
            with self.sync_pool.connection(timeout=self.timeout_s) as conn:
                version = conn.info.parameter_status("server_version")
                cursor = conn.execute(self.statement)
                while cursor.description is None or cursor.description[0].name != "to_jsonb":
                    cursor.nextset()
                return version, [row[0] for row in cursor.fetchall()]

    probe = None
    if args.probe == "thread":
        probe = ThreadPoolProbe(
            args.url, TrackingTable.parse("schema_migrations"), discover(MIGRATIONS), timeout_s=2.0
        )
    app = create_app(
        database_url=args.url, migrations_dir=MIGRATIONS, cache_ttl_s=args.cache_ttl, probe=probe
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http=args.http,
        loop=args.loop,
        access_log=False,
        server_header=False,
        log_level="warning",
    )


# -- measuring -------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checks_in_log(log_file: Path, dbname: str) -> int:
    text = log_file.read_text(errors="replace")
    prefix = f"pgship-health:{dbname}:"
    return sum(1 for line in text.splitlines() if line.startswith(prefix) and "BEGIN READ ONLY" in line)


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    requests = re.search(r"(\d+) requests in ([\d.]+)(s|m)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50_ms": _ms(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": _ms(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "requests": int(requests.group(1)) if requests else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far: less sensitive to a busy machine than req/s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/database", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("the server did not become ready")


def run_scenario(
    name: str, command: list[str], *, env: dict[str, str], port: int, cache_ttl: float, args, log_file, dbname
) -> dict[str, Any]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, process)
        if cache_ttl > 0:
            time.sleep(cache_ttl)  # start the run on a cold cache period
        before = checks_in_log(log_file, dbname)
        cpu_before = cpu_seconds(process.pid)
        started = time.monotonic()
        wrk = subprocess.run(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--latency",
                f"http://127.0.0.1:{port}/health/database",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(process.pid) - cpu_before
        checks = checks_in_log(log_file, dbname) - before
    finally:
        process.terminate()
        process.wait(timeout=15)
    result = {"scenario": name, "cache_ttl_s": cache_ttl, **parse_wrk(wrk.stdout), "db_checks": checks}
    if result["requests"]:
        result["server_cpu_us_per_request"] = round(cpu / result["requests"] * 1e6, 2)
    if cache_ttl > 0:
        result["cache_periods"] = round(elapsed / cache_ttl, 2)
        result["periods_started"] = math.ceil(elapsed / cache_ttl)  # the last one may have just begun
    result["wrk"] = wrk.stdout
    return result


def guard_ab(args: argparse.Namespace, product, variant, url: str, dbname: str, server) -> None:
    """pgship serve vs the same app on unguarded uvicorn, alternately: the median ratio of N pairs."""
    import statistics

    if not 1 <= args.guard_ab <= 20:
        raise SystemExit("--guard-ab: 1 to 20 pairs")
    pairs = []
    for _ in range(args.guard_ab):
        guarded = product(args.cache_ttl)
        unguarded = variant("unguarded uvicorn", args.cache_ttl, "--http", "httptools")
        pairs.append((guarded, unguarded))
        print(
            f"pgship serve {guarded['requests_per_s']:6.0f} req/s p99 {guarded['p99_ms']:6.2f} ms "
            f"{guarded['server_cpu_us_per_request']:6.1f} us CPU/req | "
            f"unguarded {unguarded['requests_per_s']:6.0f} req/s p99 {unguarded['p99_ms']:6.2f} ms "
            f"{unguarded['server_cpu_us_per_request']:6.1f} us CPU/req | "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    server.drop_database(dbname)
    rps = statistics.median(g["requests_per_s"] / u["requests_per_s"] for g, u in pairs)
    p99 = statistics.median(g["p99_ms"] / u["p99_ms"] for g, u in pairs)
    cpu = statistics.median(g["server_cpu_us_per_request"] / u["server_cpu_us_per_request"] for g, u in pairs)
    print(
        f"\nguard's cost over {len(pairs)} alternating pairs (wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s on /health/database): median ratios, pgship serve / unguarded: "
        f"req/s x{rps:.2f}, p99 x{p99:.2f}, server CPU per request x{cpu:.2f}"
    )
    report = {
        "command": " ".join(["bench/health_load.sh", *sys.argv[1:]]),
        "pairs": [{"pgship_serve": g, "unguarded": u} for g, u in pairs],
        "median_requests_per_s_ratio": rps,
        "median_p99_ratio": p99,
        "median_server_cpu_per_request_ratio": cpu,
    }
    (RESULTS / "health_load_guard_ab.json").write_text(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario (default 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--cache-ttl", type=float, default=2.0)
    parser.add_argument("--only-product", action="store_true", help="skip the comparison scenarios")
    parser.add_argument(
        "--guard-ab",
        type=int,
        default=0,
        metavar="N",
        help="instead: pgship serve and unguarded uvicorn alternately, N times each (the guard's cost "
        "on a noisy machine: the median of N side-by-side ratios)",
    )
    sub = parser.add_subparsers(dest="mode")
    variant = sub.add_parser("serve-variant")
    variant.add_argument("--url", required=True)
    variant.add_argument("--port", type=int, required=True)
    variant.add_argument("--cache-ttl", type=float, default=0.0)
    variant.add_argument("--probe", choices=["async", "thread"], default="async")
    variant.add_argument("--http", default="auto")
    variant.add_argument("--loop", default="auto")
    args = parser.parse_args()
    if args.mode == "serve-variant":
        serve_variant(args)
        return

    from pgship.testing import EmbeddedPostgres

    RESULTS.mkdir(parents=True, exist_ok=True)
    settings = {"log_statement": "all", "log_line_prefix": "%a:%d:"}
    with EmbeddedPostgres(settings=settings) as server:
        dbname = server.create_database(prefix="bench_health")
        url = server.url_for(dbname)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("PGSHIP_HEALTH_TOKEN", None)
        subprocess.run(
            [sys.executable, "-m", "pgship", "-d", url, "-m", str(MIGRATIONS), "migrate"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        log_file = Path(server.log_file)
        common = {"env": env, "args": args, "log_file": log_file, "dbname": dbname}

        def product(ttl: float) -> dict[str, Any]:
            port = free_port()
            command = [
                sys.executable, "-m", "pgship", "-d", url, "-m", str(MIGRATIONS),
                "serve", "--port", str(port), "--cache-ttl", str(ttl),
            ]  # fmt: skip
            name = f"pgship serve (cache {ttl:g} s)"
            return run_scenario(name, command, port=port, cache_ttl=ttl, **common)

        def variant(name: str, ttl: float, *extra: str) -> dict[str, Any]:
            port = free_port()
            command = [
                sys.executable, __file__, "serve-variant", "--url", url, "--port", str(port),
                "--cache-ttl", str(ttl), *extra,
            ]  # fmt: skip
            return run_scenario(name, command, port=port, cache_ttl=ttl, **common)

        if args.guard_ab:
            guard_ab(args, product, variant, url, dbname, server)
            return
        results = [product(args.cache_ttl)]
        if not args.only_product:
            results += [
                variant(
                    f"unguarded uvicorn + httptools (cache {args.cache_ttl:g} s)",
                    args.cache_ttl,
                    "--http",
                    "httptools",
                ),
                variant("uncached, async pool (shipped)", 0.0, "--probe", "async"),
                variant("uncached, sync pool in threads", 0.0, "--probe", "thread"),
                variant(
                    f"pure-Python HTTP: h11 + asyncio (cache {args.cache_ttl:g} s)",
                    args.cache_ttl,
                    "--http",
                    "h11",
                    "--loop",
                    "asyncio",
                ),
            ]
        server.drop_database(dbname)

    report = {
        "command": " ".join(["bench/health_load.sh", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "load": {"threads": args.threads, "connections": args.connections, "duration_s": args.duration},
        "goal": {"requests_per_s": 1500, "p99_ms": 20, "checks_per_cache_period": 1},
        "results": results,
    }
    (RESULTS / "health_load.json").write_text(json.dumps(report, indent=2))
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s on /health/database "
        f"({os.cpu_count()} CPUs, loopback)\n"
    )
    print(f"{'scenario':50} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'db checks':>10}")
    for r in results:
        checks = f"{r['db_checks']}"
        if "cache_periods" in r:
            checks += f" / {r['cache_periods']:g}p"
        print(
            f"{r['scenario']:50} {r['requests_per_s']:9.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
            f"{r['non_2xx']:7d} {checks:>10}"
        )
    shipped = results[0]
    verdict = (
        shipped["requests_per_s"] >= 1500
        and shipped["p99_ms"] < 20
        and shipped["db_checks"] <= shipped["periods_started"]
        and shipped["non_2xx"] == 0
    )
    print(
        f"\ngoal (>= 1500 req/s, p99 < 20 ms, <= 1 check per cache period): {'met' if verdict else 'NOT met'}"
        f"  [{shipped['db_checks']} checks in {shipped['cache_periods']:g} periods of {args.cache_ttl:g} s]"
    )
    unguarded = next((r for r in results if r["scenario"].startswith("unguarded")), None)
    if unguarded is not None:
        print(
            f"guard's cost, pgship serve / unguarded uvicorn in this run: "
            f"req/s x{shipped['requests_per_s'] / unguarded['requests_per_s']:.2f}, "
            f"p99 x{shipped['p99_ms'] / unguarded['p99_ms']:.2f}"
        )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(f"details: {RESULTS / 'health_load.json'}")
    sys.exit(0 if verdict else 1)


if __name__ == "__main__":
    main()
