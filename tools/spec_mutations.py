"""Mutation check of the specification: break pgship one way at a time, run every scenario, list what fails.

Each mutation is a literal text replacement in the product's source, reverted
afterwards (also on Ctrl-C). A mutation that no scenario catches is a hole in
the specification. Run from anywhere, with nothing uncommitted under
src/pgship (the script refuses otherwise):

    .venv/bin/python tools/spec_mutations.py            # all mutations (about 3 minutes)
    .venv/bin/python tools/spec_mutations.py M1 M5      # only these

M5 takes a minute longer: without lock_timeout the deploy in the lock scenario
never ends, and the scenario's 60 s bound on it is what fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNER = "src/pgship/runner.py"

#: name -> [(file, text, replacement)]
MUTATIONS: dict[str, list[tuple[str, str, str]]] = {
    "M1 skip the advisory lock": [
        (
            RUNNER,
            'while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:',
            "while False:",
        )
    ],
    "M2 autocommit each statement (no transaction per migration)": [
        (
            RUNNER,
            "self.conn.execute(self._begin(lock_timeout))",
            "self.conn.execute(self._begin(lock_timeout).replace('BEGIN; SET LOCAL', 'SET'))",
        )
    ],
    "M3 don't check checksums": [("src/pgship/planner.py", "if row.checksum != file.checksum:", "if False:")],
    "M4 don't refuse duplicate versions": [
        ("src/pgship/migrations.py", "problems.extend(_duplicate_problems(found))", "pass")
    ],
    "M5 don't set lock_timeout": [
        (
            RUNNER,
            """parts = ["BEGIN", f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'"]""",
            'parts = ["BEGIN"]',
        )
    ],
    "M6 one transaction for the whole run": [
        (
            RUNNER,
            "self.conn.execute(self._begin(lock_timeout))",
            "(self.conn.info.transaction_status == 0 and self.conn.execute(self._begin(lock_timeout)))",
        ),
        (
            RUNNER,
            'sql.SQL("; COMMIT; " + self._session_defaults())',
            'sql.SQL("; " + self._session_defaults())',
        ),
    ],
    "M7 print the URL unredacted": [
        (
            "src/pgship/database.py",
            '    if url and "://" in url:\n        parts = urlsplit(url)',
            '    if url and "://" in url:\n        return url',
        ),
        (
            "src/pgship/database.py",
            "    text = redact(text)\n    for secret in secrets:",
            "    return text\n    for secret in secrets:",
        ),
    ],
    "M8 run files that failed to parse": [
        (
            "src/pgship/migrations.py",
            "    if problems:\n        raise InvalidMigrations(problems)\n    return scripts",
            "    return scripts",
        )
    ],
    "M9 don't re-plan after taking the lock": [
        (
            RUNNER,
            "            plan = make_plan(discovery, self.read_history(), **plan_options)\n"
            "            _raise_refusals(plan)\n            unparsed",
            "            unparsed",
        )
    ],
    "M10 no warning about a rollback/ folder": [
        (
            "src/pgship/migrations.py",
            "                warnings.append(\n",
            "                (lambda *a: None)(\n",
        )
    ],
}


def _scenarios(output: str, heading: str) -> list[tuple[str, str]]:
    if heading not in output:
        return []
    return re.findall(r"^\s+features/(\S+)\s+(.*)$", output.split(heading)[-1], re.M)


def run(name: str, edits: list[tuple[str, str, str]], results: str) -> None:
    """Apply one mutation, run the specification on the embedded server, report, revert."""
    originals: dict[str, str] = {}
    try:
        for path, old, new in edits:
            file = ROOT / path
            originals.setdefault(path, file.read_text())
            current = file.read_text()
            if old not in current:
                raise SystemExit(f"{name}: the text to mutate is no longer in {path}: {old!r}")
            file.write_text(current.replace(old, new, 1))
        started = time.monotonic()
        behave = [str(ROOT / ".venv/bin/behave"), "-D", "db=embedded", "-f", "progress"]
        completed = subprocess.run(
            [*behave, "-D", f"pgship.results_dir={results}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        output = completed.stdout + completed.stderr
        summary = next((line for line in output.splitlines() if "scenarios passed" in line), "no summary")
        caught = sorted(
            set(_scenarios(output, "Failing scenarios:") + _scenarios(output, "Errored scenarios:"))
        )
        verdict = "" if caught else "  -- NOT CAUGHT"
        print(f"## {name} ({time.monotonic() - started:.0f} s): {summary}{verdict}")
        for location, title in caught:
            print(f"   - {location}  {title}")
        sys.stdout.flush()
    finally:
        for path, text in originals.items():
            (ROOT / path).write_text(text)


def _clean() -> bool:
    return (
        subprocess.run(["git", "diff", "--quiet", "--", "src/pgship"], cwd=ROOT, check=False).returncode == 0
    )


def main(selected: list[str]) -> int:
    if not _clean():
        print("src/pgship has uncommitted changes; commit or stash them first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pgship-mutations-") as results:
        for name, edits in MUTATIONS.items():
            if not selected or name.split()[0] in selected:
                run(name, edits, results)
    return 0 if _clean() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
