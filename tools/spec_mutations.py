"""Mutation check of the specification: break pgship one way at a time, run every scenario, list what fails.

Each mutation is a literal text replacement in the product's source, reverted
afterwards (also on Ctrl-C). A mutation that no scenario catches is a hole in
the specification. Run from anywhere, with nothing uncommitted under
src/pgship (the script refuses otherwise):

    .venv/bin/python tools/spec_mutations.py            # all mutations (about 1 minute each)
    .venv/bin/python tools/spec_mutations.py M1 M5      # only these

The scenarios run in 4 behave processes (pgship.testing.spec.parallel), as in ``make spec``.
M5 takes longer: without lock_timeout the deploy in the lock scenario never ends, and the
scenario's bound on it is what fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APPLY = "src/pgship/apply.py"
GUARD = "src/pgship/guard.py"

#: name -> [(file, text, replacement)]; tests/docs/test_spec_mutations.py checks every text is still there
MUTATIONS: dict[str, list[tuple[str, str, str]]] = {
    "M1 skip the advisory lock": [
        (
            "src/pgship/locking.py",
            'while not one_row(conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)))[0]:',
            "while False:",
        )
    ],
    "M2 commit a migration before its tracking row and guard": [
        (
            APPLY,
            "statements: list[str | Prepared] = [*begin, *(s.text for s in script.statements), *tail]",
            'statements: list[str | Prepared] = [*begin, *(s.text for s in script.statements), "COMMIT", '
            '"BEGIN", *tail]',
        )
    ],
    "M3 don't check checksums": [
        ("src/pgship/planner.py", "elif row.checksum != file.checksum:", "elif False:")
    ],
    "M4 don't refuse duplicate versions": [
        ("src/pgship/migrations.py", "    problems.extend(_duplicate_problems(found))", "    pass")
    ],
    "M5 don't set lock_timeout": [
        (
            "src/pgship/session.py",
            "settings = [f\"pg_catalog.set_config('lock_timeout', {lock_timeout}, true)\"]",
            # no timeout; the value is still read (as text), so a prepared statement keeps its parameter
            "settings = [\"pg_catalog.set_config('lock_timeout', '0', true)\", f\"{lock_timeout}::text\"]",
        )
    ],
    "M6 never commit: one transaction for the whole run": [
        (
            APPLY,
            'statements.extend((check, "COMMIT", *reset, readback))',
            "statements.extend((check, *reset, readback))",
        )
    ],
    "M7 print passwords": [
        (
            "src/pgship/database.py",
            "    text = _URL_PASSWORD.sub(lambda m: f\"{m['prefix']}***{m['at']}\", text)\n"
            "    return _KEYWORD_PASSWORD.sub(lambda m: f\"{m['prefix']}***\", text)",
            "    return text",
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
            "    scripts, problems = _parse_all(migrations)\n    if problems:\n",
            "    scripts, problems = _parse_all(migrations)\n    if False:\n",
        )
    ],
    "M9 don't re-plan after taking the lock": [
        (
            "src/pgship/runner.py",
            "            plan = plan_for(discovery, self.read_history())\n            raise_refusals(plan)\n",
            "",
        )
    ],
    "M10 no warning about a rollback/ folder": [
        (
            "src/pgship/migrations.py",
            "            if lowered in ROLLBACK_DIRECTORY_NAMES:",
            "            if False:",
        )
    ],
    "M11 the guard does not check the lock": [
        (GUARD, '    if lock_key is None:\n        return "TRUE"', '    if True:\n        return "TRUE"')
    ],
    "M12 the guard does not check the tracking table": [
        # the condition still reads its values, so a prepared guard keeps its parameters
        (
            GUARD,
            "    checks.append(_unless(untouched, TRACKING_CHANGED))",
            '    checks.append(_unless(f"({untouched}) OR TRUE", TRACKING_CHANGED))',
        )
    ],
    "M13 no clean session between migrations": [
        (
            "src/pgship/prepared.py",
            "self.reset = [Prepared(name.encode(), ()) for name in resets]",
            "self.reset = []",
        ),
        (
            "src/pgship/session.py",
            'return [first, f"DO $pgship_reset$ BEGIN {body}; END $pgship_reset$"]',
            "return []",
        ),
    ],
}


def _scenarios(output: str, heading: str) -> list[tuple[str, str]]:
    """The scenarios listed under ``heading``, in every worker's report."""
    found: list[tuple[str, str]] = []
    for part in output.split(heading)[1:]:
        listing = part.split("\n\n", 1)[0]
        found.extend(re.findall(r"^\s+features/(\S+)\s+(.*)$", listing, re.M))
    return found


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
        spec = [str(ROOT / ".venv/bin/python"), "-m", "pgship.testing.spec.parallel", "--workers", "4"]
        completed = subprocess.run(
            [*spec, "-D", "db=embedded", "-f", "progress", "-D", f"pgship.results_dir={results}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        output = completed.stdout + completed.stderr
        # the parallel runner ends with the whole run's totals ("scenarios: N passed, ...")
        totals = [
            line.strip()
            for line in output.splitlines()
            if "scenarios: " in line or "scenarios passed" in line
        ]
        summary = totals[-1] if totals else "no summary"
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
