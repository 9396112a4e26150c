"""The specification in N behave processes at once, into one results folder and one report.

behave has no parallel mode. This runs ``behave`` once per worker, each on a share of the feature
files and with its own server (each worker's ``before_all`` starts one, exactly as a single run
does), and each writing Allure results into a folder of its own. When every worker has finished,
their results move into the run's results folder (file names are unique: results are named by
their stable uuid, attachments by a random one) and their ``environment.properties`` are merged,
so ``pgship.testing.spec.report`` builds one report, the same as after a single ``behave`` run.
The run fails if any worker failed. Whole feature files are shared out (their Background and
feature hooks run as they always do), longest first onto the least loaded worker, by the
durations of the results of the previous run when the results folder holds them, else by the
hint below.

    python -m pgship.testing.spec.parallel --workers 4 -D db=embedded -f progress [FEATURE ...]

(behave 1.3 accepts ``--jobs N`` but its runner ignores it: every scenario still runs in one process.)

Every argument the runner does not know is behave's, given to each worker. ``--workers 1`` (or
``--dry-run``) runs one plain behave. ``-D pgship.keep_results=1`` keeps the results already in
the folder (``make spec-matrix``) as it does for a single run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pgship.testing.spec.allure_formatter import read_environment, write_environment

RESULTS = Path("reports") / "allure-results"
FEATURES = Path("features")
#: behave options followed by a value (so that the value is not taken for a feature path)
_VALUED = {
    "-D", "--define", "-f", "--format", "-o", "--outfile", "-t", "--tags", "-i", "--include",
    "-e", "--exclude", "-n", "--name", "--lang", "--junit-directory", "--logging-level",
    "--logging-format", "--logging-datefmt", "--logging-filter", "-r", "--runner", "--stage",
    "-j", "--jobs", "--parallel",
}  # fmt: skip
#: seconds a feature took (embedded PostgreSQL 16, alone on 2 cores), for a first run with no results
DURATION_HINT = {
    "secrets_in_deploys_and_health": 17.0,
    "health_checks": 12.0,
    "deployment_flow": 11.0,
    "troubleshooting_deploys": 8.5,
    "failing_migrations": 5.0,
    "deploying_through_a_connection_pooler": 4.5,
    "deploying_to_many_databases": 4.0,
    "coming_from_another_tool": 3.5,
    "repeatable_deploys": 2.7,
}
_DEFAULT_SECONDS = 1.0


@dataclass
class Share:
    """One worker's feature files and their expected seconds."""

    features: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def share_out(durations: dict[Path, float], workers: int) -> list[Share]:
    """Longest first onto the least loaded worker; workers left without a feature are dropped."""
    shares = [Share() for _ in range(max(1, workers))]
    for path in sorted(durations, key=lambda p: (-durations[p], str(p))):
        lightest = min(shares, key=lambda share: share.seconds)
        lightest.features.append(path)
        lightest.seconds += durations[path]
    return [share for share in shares if share.features]


def feature_files(paths: Sequence[str]) -> list[Path]:
    """The feature files named, or under the folders named (default: ``features/``)."""
    found: list[Path] = []
    for raw in paths or [str(FEATURES)]:
        path = Path(raw)
        found.extend(sorted(path.rglob("*.feature")) if path.is_dir() else [path])
    return found


def feature_name(path: Path) -> str:
    """The name after ``Feature:`` (results carry it as their "feature" label)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        head, colon, rest = line.strip().partition(":")
        if colon and head == "Feature":
            return rest.strip()
    return path.stem


def previous_durations(results: Path) -> dict[str, float]:
    """Seconds per feature name in the results folder (an earlier run's, before it is emptied)."""
    seconds: dict[str, float] = {}
    for path in results.glob("*-result.json") if results.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            feature = next(label["value"] for label in data["labels"] if label["name"] == "feature")
            spent = (int(data["stop"]) - int(data["start"])) / 1000
        except (ValueError, KeyError, StopIteration, TypeError):
            continue
        seconds[feature] = seconds.get(feature, 0.0) + max(spent, 0.0)
    return seconds


def expected_durations(features: Iterable[Path], results: Path) -> dict[Path, float]:
    earlier = previous_durations(results)
    return {
        path: earlier.get(feature_name(path)) or DURATION_HINT.get(path.stem, _DEFAULT_SECONDS)
        for path in features
    }


@dataclass
class Arguments:
    """behave's arguments, taken apart: what every worker gets, the feature paths, the results."""

    options: list[str]
    paths: list[str]
    keep: bool
    results: Path | None


def split_arguments(arguments: Sequence[str]) -> Arguments:
    """behave's options without the results settings (the runner's), and the feature paths."""
    options: list[str] = []
    paths: list[str] = []
    keep = False
    results: Path | None = None
    items = list(arguments)
    index = 0
    while index < len(items):
        item = items[index]
        if item in ("-D", "--define") and index + 1 < len(items):
            value = items[index + 1]
            index += 2
            if value.startswith("pgship.keep_results="):
                keep = _truthy(value)
                continue
            if value.startswith("pgship.results_dir="):
                results = Path(value.partition("=")[2])
                continue
            options += [item, value]
            continue
        if item in _VALUED and index + 1 < len(items):
            options += [item, items[index + 1]]
            index += 2
            continue
        if item.startswith("-"):
            options.append(item)
        else:
            paths.append(item)
        index += 1
    return Arguments(options, paths, keep, results)


def _truthy(setting: str) -> bool:
    return setting.partition("=")[2].strip().lower() in ("1", "true", "yes")


def gather(worker_dirs: Sequence[Path], results: Path) -> None:
    """Move every worker's results into ``results``; one merged ``environment.properties``."""
    results.mkdir(parents=True, exist_ok=True)
    for directory in worker_dirs:
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.name == "environment.properties":
                write_environment(results, read_environment(path.read_text(encoding="utf-8")), keep=True)
                path.unlink()
            else:
                shutil.move(str(path), results / path.name)
        directory.rmdir()


_SUMMARY = re.compile(r"^(\d+) (features?|scenarios?|steps?) (.*)$")
_COUNT = re.compile(r"(\d+) (\w+)")


def summary(outputs: Iterable[str]) -> list[str]:
    """behave's closing counts, added up over the workers."""
    totals: dict[str, dict[str, int]] = {}
    for output in outputs:
        for line in output.splitlines():
            match = _SUMMARY.match(line.strip())
            if not match:
                continue
            kind = match.group(2).rstrip("s") + "s"
            counts = totals.setdefault(kind, {})
            for number, status in _COUNT.findall(f"{match.group(1)} {match.group(3)}"):
                counts[status] = counts.get(status, 0) + int(number)
    return [
        f"{kind}: " + ", ".join(f"{number} {status}" for status, number in counts.items())
        for kind, counts in totals.items()
    ]


def run(
    workers: int, arguments: Sequence[str], *, results: Path = RESULTS, behave: Sequence[str] = ()
) -> int:
    """The specification in ``workers`` behave processes; the exit status (non-zero if any failed)."""
    command = list(behave) or [sys.executable, "-m", "behave"]
    parsed = split_arguments(arguments)
    options = parsed.options
    if workers <= 1 or "--dry-run" in options:
        return subprocess.call([*command, *arguments])
    results = parsed.results or results
    durations = expected_durations(feature_files(parsed.paths), results)
    if not parsed.keep and results.is_dir():
        shutil.rmtree(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    shares = share_out(durations, workers)
    started = time.monotonic()
    running: list[tuple[Share, Path, subprocess.Popen[str], Path]] = []
    try:
        for number, share in enumerate(shares, start=1):
            worker_dir = Path(tempfile.mkdtemp(prefix=f".{results.name}-worker{number}-", dir=results.parent))
            log = worker_dir.with_suffix(".log")
            with log.open("w", encoding="utf-8") as stream:
                process = subprocess.Popen(
                    [
                        *command,
                        *options,
                        "-D",
                        f"pgship.results_dir={worker_dir}",
                        "-D",
                        "pgship.keep_results=0",
                        *map(str, share.features),
                    ],
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            running.append((share, worker_dir, process, log))
        status = 0
        outputs: list[str] = []
        for number, (share, _, process, log) in enumerate(running, start=1):
            code = process.wait()
            output = log.read_text(encoding="utf-8", errors="replace")
            outputs.append(output)
            names = ", ".join(path.stem for path in share.features)
            print(f"-- worker {number} of {len(running)} (exit {code}): {names}", flush=True)
            print(output, end="" if output.endswith("\n") else "\n", flush=True)
            status = status or code
    except BaseException:  # interrupted: no half-gathered report, no worker folders left behind
        for _, worker_dir, process, _ in running:
            if process.poll() is None:
                process.terminate()
                process.wait()
            shutil.rmtree(worker_dir, ignore_errors=True)
        raise
    finally:
        for _, _, process, log in running:
            if process.poll() is None:
                process.terminate()
                process.wait()
            log.unlink(missing_ok=True)
    gather([worker_dir for _, worker_dir, _, _ in running], results)
    seconds = time.monotonic() - started
    print(f"== the specification in {len(running)} behave processes, {seconds:.1f} s", flush=True)
    for line in summary(outputs):
        print(f"   {line}", flush=True)
    return status


def default_workers() -> int:
    """``PGSHIP_SPEC_WORKERS``, else 4 (most of a scenario's time is waiting, not computing)."""
    raw = os.environ.get("PGSHIP_SPEC_WORKERS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else 4


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m pgship.testing.spec.parallel",
        description="Run the specification in several behave processes into one results folder.",
    )
    parser.add_argument("--workers", type=int, default=default_workers(), help="behave processes")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the run's Allure results folder")
    known, behave_arguments = parser.parse_known_args(argv)
    return run(known.workers, behave_arguments, results=known.results)


if __name__ == "__main__":
    sys.exit(main())
