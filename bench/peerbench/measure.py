"""Running one command and measuring it: wall time, and the peak RSS of the process it starts.

Peak RSS and CPU time come from GNU time (``/usr/bin/time -f "%M %U %S"``), which forks and execs
the command and reads ``ru_maxrss`` for that one child (and any process it
waited for). It cannot come from this script's own ``os.wait4`` or
``getrusage(RUSAGE_CHILDREN)``: Linux keeps the parent's memory high-water mark
across fork+exec, so every child of this ~40 MiB Python process would report at
least 40 MiB. GNU time's own ~1 MiB is the floor of what it can report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = Path("/usr/bin/time")


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_rss_kib: int
    returncode: int
    output: str  # stdout and stderr interleaved, the last few KB
    load_before: float  # 1-minute load average when the run started: other work on a shared machine
    cpu_seconds: float = 0.0  # user + system time of the tool's processes (not the server's)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def ensure_gnu_time(log: Callable[[str], None]) -> None:
    """Install Debian's ``time`` package when /usr/bin/time is missing (these machines run as root)."""
    if GNU_TIME.exists():
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("bench needs GNU time at /usr/bin/time for peak RSS: install the 'time' package")
    log("installing GNU time (apt-get install time)")
    install = ["apt-get", "install", "-y", "-qq", "time"]
    if subprocess.run(install, check=False, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(install, check=True, stdout=subprocess.DEVNULL)


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    keep_output: int = 4000,
) -> Measurement:
    """Run ``command`` to completion under GNU time; wall time is taken here, from spawn to exit."""
    with tempfile.TemporaryFile() as sink, tempfile.NamedTemporaryFile("r") as rss_file:
        wrapped = [str(GNU_TIME), "-f", "%M %U %S", "-o", rss_file.name, *command]
        load = os.getloadavg()[0]
        started = time.perf_counter()
        completed = subprocess.run(
            wrapped,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            check=False,
        )
        elapsed = time.perf_counter() - started
        sink.seek(0)
        output = sink.read().decode(errors="replace")[-keep_output:]
        # "Command exited with non-zero status N" precedes the figures on failure.
        lines = rss_file.read().strip().splitlines()
    fields = lines[-1].split() if lines else []
    try:
        peak, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
    except (IndexError, ValueError):
        peak, cpu = 0, 0.0
    return Measurement(elapsed, peak, completed.returncode, output, load, cpu)
