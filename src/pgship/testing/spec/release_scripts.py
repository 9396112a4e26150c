"""The sample shop's build and start scripts, as a deploy pipeline runs them.

In production the build is ``docker compose build app`` and the start is
``docker compose up -d app``. Here each script writes one line to a journal
saying which migrations the database had when it ran: that is how a scenario
proves, from the outside, that the build ran before the migrations and the
start after them, or that the start never ran at all. The start script's
service is the release's health endpoint (``pgship serve``), so the deploy's
health gate polls a real server.

The scripts get the database from the deploy (``DATABASE_URL`` in their
environment), never on a command line. Run as a journal writer with
``python -m pgship.testing.spec.release_scripts STAGE JOURNAL``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what the build script of a careless team prints (the deploy must mask the password in it)
LEAKY_BUILD_LINE = 'echo "building against $DATABASE_URL"'


def release_id(number: int) -> str:
    """The release id the scenarios give release ``number`` (in production: the commit SHA)."""
    return f"release-{number}"


@dataclass
class ReleaseScripts:
    """``build.sh`` and ``start.sh`` in a scenario's workspace, and what they left behind."""

    root: Path
    port: int
    python: str = sys.executable

    @property
    def journal(self) -> Path:
        return self.root / "stages.jsonl"

    @property
    def pid_file(self) -> Path:
        return self.root / "service.pid"

    @property
    def start_log(self) -> Path:
        """Where the deploy appends the start command's output (its default, relative to the workspace)."""
        return self.root / ".pgship" / "start.log"

    def write(self, *, build_fails: bool = False, build_prints_url: bool = False) -> dict[str, str]:
        """Write both scripts; returns their text by file name (for the report)."""
        note = f"{shlex.quote(self.python)} -m pgship.testing.spec.release_scripts"
        build = [
            "#!/bin/sh",
            "# Build the shop's release (in production: docker compose build app).",
            "set -e",
            'echo "building the shop, $PGSHIP_RELEASE_ID"',
            *([LEAKY_BUILD_LINE] if build_prints_url else []),
            f"{note} build {self.journal.name}",
            *(['echo "error: the image does not build" >&2', "exit 1"] if build_fails else []),
        ]
        start = [
            "#!/bin/sh",
            "# Start the shop's release (in production: docker compose up -d app).",
            "# Its service here is the release's health endpoint.",
            "set -e",
            f"{note} start {self.journal.name}",
            f"echo $$ > {self.pid_file.name}",
            f"exec {shlex.quote(self.python)} -m pgship serve --port {self.port}",
        ]
        scripts = {"build.sh": "\n".join(build) + "\n", "start.sh": "\n".join(start) + "\n"}
        for name, text in scripts.items():
            (self.root / name).write_text(text, encoding="utf-8")
        return scripts

    def entries(self) -> list[dict[str, Any]]:
        """The journal: one entry per script run, in the order they ran."""
        if not self.journal.exists():
            return []
        return [json.loads(line) for line in self.journal.read_text(encoding="utf-8").splitlines() if line]

    def stop_service(self, grace_s: float = 5.0) -> None:
        """Stop the service the start script left running (the deploy leaves it, by design).

        Only the process recorded in the pid file, and only if it is still a
        ``pgship serve``: a pid reused by another program is left alone.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if not _is_our_service(pid):
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(os.getpgid(pid), sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.monotonic() + grace_s
            while _is_our_service(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _is_our_service(pid):
                return


def _is_our_service(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) ``pgship serve`` process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    zombie = any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())
    return not zombie and b"pgship" in cmdline and b"serve" in cmdline


# -- the journal writer (runs inside the scripts) --------------------------------------
def applied_versions(url: str, table: str) -> list[str] | None:
    """The versions in the tracking table, or None when the database cannot be asked."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            if not found or not found[0]:
                return []
            identifier = sql.Identifier(*table.split("."))
            rows = conn.execute(sql.SQL("SELECT version FROM {}").format(identifier)).fetchall()
    except psycopg.Error:
        return None
    return sorted(str(row[0]) for row in rows)


def note(stage: str, journal: Path) -> dict[str, Any]:
    """Append what this stage saw to the journal (never the URL: it holds the password)."""
    url = os.environ.get("DATABASE_URL", "")
    entry = {
        "stage": stage,
        "release_id": os.environ.get("PGSHIP_RELEASE_ID"),
        "database_url_given": bool(url),
        "applied": applied_versions(url, os.environ.get("PGSHIP_TABLE", "schema_migrations"))
        if url
        else None,
    }
    with journal.open("a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")
    return entry


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m pgship.testing.spec.release_scripts STAGE JOURNAL", file=sys.stderr)
        return 2
    entry = note(argv[0], Path(argv[1]))
    print(f"{entry['stage']}: the database has migrations {', '.join(entry['applied'] or []) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
