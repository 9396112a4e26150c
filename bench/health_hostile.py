"""Hostile clients against the health server: does /health/live keep answering, and at what memory?

Each scenario starts a server on loopback with the open-files soft limit of a default
container (1024; --fd-soft-limit), then, in order:

  quiet        probe /health/live (a new connection each, like a load balancer) with nothing else going on;
  huge header  one client sends a request whose header is 64 MiB (--huge-mib), a megabyte at a time,
               while the probe runs; the server's peak RSS (VmHWM) before and after, and how long
               the client waited for an answer;
  slow loris   N connections (--connections, default 1,100: more than the soft limit) each send a
               request head a line per second and never finish it; a connection the server closes
               is reopened, so N stay open for --hold seconds while the probe runs.

The probe gives up after 2 s: a probe that took longer counts as failed.

Scenarios:
  before: uvicorn + httptools     the server as `pgship serve` ran it before the guard (no limits)
  pgship serve                     the product: guarded protocol, fd soft limit raised to the hard one
  pgship serve, fd limit fixed     hard limit 1024 too (cannot be raised): the connection cap evicts

Servers get a database URL on a closed loopback port: /health/live never touches it.
Everything is bounded: about 25 s per scenario. Results: bench/results/health_hostile.json.

  .venv/bin/python bench/health_hostile.py [--connections 1100] [--hold 12] [--huge-mib 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEAD_DB = "postgresql://bench@127.0.0.1:9/bench"  # nothing listens there; /health/live never asks
PROBE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
PROBE_TIMEOUT_S = 2.0


# -- the "before" server ------------------------------------------------------------------
def serve_before(port: int, migrations: str) -> None:
    """`pgship serve` as it was before the guard: plain uvicorn with httptools, no limits."""
    import uvicorn

    from pgship.health import create_app

    app = create_app(database_url=DEAD_DB, migrations_dir=migrations)
    uvicorn.run(
        app, host="127.0.0.1", port=port, http="httptools", access_log=False, server_header=False,
        log_level="error", lifespan="on", timeout_graceful_shutdown=5,
    )  # fmt: skip


# -- measuring ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe_once(port: int) -> float | None:
    """Seconds for one /health/live on a new connection; None if it failed or took over 2 s."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) as sock:
            sock.settimeout(max(0.01, PROBE_TIMEOUT_S - (time.monotonic() - started)))
            sock.sendall(PROBE)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
    except OSError:
        return None
    elapsed = time.monotonic() - started
    return elapsed if answer.startswith(b"HTTP/1.1 200") and elapsed <= PROBE_TIMEOUT_S else None


class Prober:
    """Probes /health/live every 100 ms in a thread until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[float | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(probe_once(self.port))
            self._stop.wait(0.1)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def summary(samples: list[float | None]) -> dict[str, Any]:
    ok = sorted(s * 1000 for s in samples if s is not None)
    failed = sum(1 for s in samples if s is None)

    def pct(q: float) -> float | None:
        return round(ok[min(len(ok) - 1, int(q * len(ok)))], 2) if ok else None

    return {
        "probes": len(samples),
        "failed": failed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "max_ms": round(ok[-1], 2) if ok else None,
        "mean_ms": round(statistics.fmean(ok), 2) if ok else None,
    }


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":")
            fields[name] = int(value.split()[0])
    return fields


def open_files(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    return -1, -1


# -- the hostile clients --------------------------------------------------------------------
def huge_header(port: int, mib: int) -> dict[str, Any]:
    """Send a request with a `mib` MiB header; how long until the server answered, and with what."""
    piece = b"a" * (1 << 20)
    started = time.monotonic()
    status = "no answer"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: ")
            for _ in range(mib):
                sock.sendall(piece)
            sock.sendall(b"\r\n\r\n")
            answer = sock.recv(200)
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"
    except OSError as exc:
        status = f"{type(exc).__name__} ({exc.strerror or exc})"
    return {"answer": status, "seconds": round(time.monotonic() - started, 3)}


def slow_loris(port: int, count: int, hold_s: float) -> dict[str, Any]:
    """Keep `count` connections open, each sending a header line a second and never finishing."""
    conns: dict[int, socket.socket] = {}
    poller = select.poll()
    opened = closed_by_server = refused = 0

    def open_one() -> None:
        nonlocal opened, refused
        sock = socket.socket()
        sock.settimeout(1.0)
        try:
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            sock.send(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        except OSError:
            refused += 1
            sock.close()
            return
        opened += 1
        conns[sock.fileno()] = sock
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)

    def drop(fd: int) -> None:
        sock = conns.pop(fd)
        poller.unregister(fd)
        sock.close()

    started = time.monotonic()
    deadline = started + hold_s
    next_drip = started + 1.0
    open_samples = []
    while time.monotonic() < deadline:
        while len(conns) < count and time.monotonic() < deadline:
            open_one()
            if refused > count:  # the server cannot take them: stop trying
                break
        for fd, _ in poller.poll(100):
            if fd in conns:
                closed_by_server += 1
                drop(fd)
        if time.monotonic() >= next_drip:
            next_drip += 1.0
            open_samples.append(len(conns))
            for fd in list(conns):
                try:
                    conns[fd].send(b"X-Slow: 1\r\n")
                except OSError:
                    closed_by_server += 1
                    drop(fd)
    for fd in list(conns):
        drop(fd)
    return {
        "target": count,
        "held_s": round(time.monotonic() - started, 1),
        "opened": opened,
        "connect_failures": refused,
        "closed_by_server": closed_by_server,
        "open_min": min(open_samples, default=0),
        "open_max": max(open_samples, default=0),
    }


# -- one scenario ------------------------------------------------------------------------------
def run_scenario(name: str, command: list[str], port: int, args: argparse.Namespace, hard: int | None):
    soft_limit = args.fd_soft_limit

    def limit_files() -> None:
        _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit, hard or current_hard))

    with tempfile.TemporaryFile() as log:
        return measure(name, command, port, args, log, limit_files)


def measure(name: str, command: list[str], port: int, args: argparse.Namespace, log: Any, preexec: Any):
    process = subprocess.Popen(command, stdout=log, stderr=log, preexec_fn=preexec)
    try:
        deadline = time.monotonic() + 30
        while probe_once(port) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"{name}: the server did not start:\n{log.read().decode(errors='replace')}")
            time.sleep(0.1)
        result: dict[str, Any] = {"scenario": name, "open_files_limit": open_files(process.pid)}
        result["quiet"] = summary([probe_once(port) for _ in range(50)])

        before = memory_kib(process.pid)
        with Prober(port) as prober:
            result["huge_header"] = huge_header(port, args.huge_mib)
            time.sleep(0.5)
        after = memory_kib(process.pid)
        result["huge_header"].update(
            rss_before_mib=round(before["VmRSS"] / 1024, 1),
            peak_rss_growth_mib=round((after["VmHWM"] - before["VmHWM"]) / 1024, 1),
            rss_after_mib=round(after["VmRSS"] / 1024, 1),
            probe=summary(prober.samples),
        )
        with Prober(port) as prober:
            result["slow_loris"] = slow_loris(port, args.connections, args.hold)
        result["slow_loris"]["probe"] = summary(prober.samples)
        result["slow_loris"]["peak_rss_mib"] = round(memory_kib(process.pid)["VmHWM"] / 1024, 1)
        result["after"] = summary([probe_once(port) for _ in range(20)])
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=1100, help="slow-loris connections (default 1100)")
    parser.add_argument("--hold", type=float, default=12.0, help="seconds they are held (default 12)")
    parser.add_argument("--huge-mib", type=int, default=64, help="size of the huge header (default 64)")
    parser.add_argument("--fd-soft-limit", type=int, default=1024, help="servers' soft open-files limit")
    parser.add_argument(
        "--only-product", action="store_true", help="skip the before and fixed-limit scenarios"
    )
    sub = parser.add_subparsers(dest="mode")
    before = sub.add_parser("serve-before")
    before.add_argument("--port", type=int, required=True)
    before.add_argument("--migrations", required=True)
    args = parser.parse_args()
    if args.mode == "serve-before":
        serve_before(args.port, args.migrations)
        return
    if not 0 < args.connections <= 5000 or not 0 < args.hold <= 60 or not 0 < args.huge_mib <= 256:
        parser.error("bounded runs only: --connections 1..5000, --hold up to 60 s, --huge-mib up to 256")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # this process holds the connections
    if soft < args.connections + 200 and hard >= args.connections + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory() as migrations:
        Path(migrations, "001_users.sql").write_text("CREATE TABLE users (id int);\n")

        def product(name: str, hard_limit: int | None) -> dict[str, Any]:
            port = free_port()
            command = [
                sys.executable, "-m", "pgship", "-d", DEAD_DB, "-m", migrations, "serve", "--port", str(port),
            ]  # fmt: skip
            return run_scenario(name, command, port, args, hard_limit)

        if not args.only_product:
            port = free_port()
            command = [
                sys.executable,
                __file__,
                "serve-before",
                "--port",
                str(port),
                "--migrations",
                migrations,
            ]
            results.append(run_scenario("before: uvicorn + httptools", command, port, args, None))
        results.append(product("pgship serve", None))
        if not args.only_product:
            results.append(
                product(f"pgship serve, fd limit fixed at {args.fd_soft_limit}", args.fd_soft_limit)
            )
    load_after = os.getloadavg()

    report = {
        "command": " ".join(["bench/health_hostile.py", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "goal": {"live_under_loris_max_ms": 1000, "huge_header_answer": "431", "peak_rss_growth_mib": 1},
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "health_hostile.json").write_text(json.dumps(report, indent=2))

    print(
        f"/health/live probes (new connection each, 2 s timeout) on loopback; servers' open-files soft limit "
        f"{args.fd_soft_limit}; {os.cpu_count()} CPUs, load {load_before[0]:.1f} -> {load_after[0]:.1f}\n"
    )
    print(
        f"{'scenario':36} {'phase':12} {'probes':>6} {'failed':>6} {'p50 ms':>7} {'p99 ms':>8} {'max ms':>8}"
    )
    for r in results:
        for phase, probe in (
            ("quiet", r["quiet"]),
            ("huge header", r["huge_header"]["probe"]),
            ("slow loris", r["slow_loris"]["probe"]),
            ("after", r["after"]),
        ):
            print(
                f"{r['scenario']:36} {phase:12} {probe['probes']:6d} {probe['failed']:6d} "
                f"{probe['p50_ms'] or float('nan'):7.2f} {probe['p99_ms'] or float('nan'):8.2f} "
                f"{probe['max_ms'] or float('nan'):8.2f}"
            )
    print(f"\n{'scenario':36} {'huge header answer':44} {'s':>6} {'peak RSS +MiB':>14}")
    for r in results:
        h = r["huge_header"]
        print(
            f"{r['scenario']:36} {h['answer'][:44]:44} {h['seconds']:6.2f} {h['peak_rss_growth_mib']:14.1f}"
        )
    print(f"\n{'scenario':36} {'fd soft/hard':>13} {'held open':>11} {'closed by server':>17} {'refused':>7}")
    for r in results:
        s = r["slow_loris"]
        held = f"{s['open_min']}-{s['open_max']}"
        limit = "/".join(map(str, r["open_files_limit"]))
        closed, refused = s["closed_by_server"], s["connect_failures"]
        print(f"{r['scenario']:36} {limit:>13} {held:>11} {closed:17d} {refused:7d}")
    print(f"\ndetails: {RESULTS / 'health_hostile.json'}")


if __name__ == "__main__":
    main()
