"""Flagging operations that are unsafe on a busy production table, with squawk.

squawk (the ``squawk-cli`` wheel ships its binary) knows which statements take
locks that block writes, rewrite tables or break running application code.
pgship already sets ``lock_timeout`` and runs each file in a transaction, so
the rules about those are switched off; everything else squawk reports is
shown as a warning with file and line (squawk's lines are 0-based).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pgship.migrations import MigrationFile

#: Rules that pgship makes moot: it sets lock_timeout itself and never nests transactions.
ALWAYS_EXCLUDED = ("require-lock-timeout", "require-statement-timeout", "transaction-nesting")
#: Atomic files can simply be rerun after a failure, so IF NOT EXISTS is not needed there.
EXCLUDED_IN_TRANSACTION = ("prefer-robust-stmts",)


@dataclass(frozen=True)
class Finding:
    """One squawk warning, located in a migration file."""

    file: str
    line: int
    column: int
    rule: str
    message: str
    help: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LintUnavailable(RuntimeError):
    """squawk is not installed or could not run."""


def squawk_binary() -> str | None:
    """The squawk executable: next to this Python (a virtualenv) or on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file():
        return str(beside)
    return shutil.which("squawk")


def lint(migrations: list[MigrationFile], no_transaction: set[str] | None = None) -> list[Finding]:
    """Run squawk on ``migrations``; ``no_transaction`` names the files marked no-transaction."""
    if not migrations:
        return []
    binary = squawk_binary()
    if binary is None:
        raise LintUnavailable("squawk is not installed: pip install squawk-cli")
    no_transaction = no_transaction or set()
    transactional = [m for m in migrations if m.filename not in no_transaction]
    standalone = [m for m in migrations if m.filename in no_transaction]
    findings = _run(
        binary, transactional, ["--assume-in-transaction"], (*ALWAYS_EXCLUDED, *EXCLUDED_IN_TRANSACTION)
    )
    findings += _run(binary, standalone, [], ALWAYS_EXCLUDED)
    return sorted(findings, key=lambda f: (f.file, f.line, f.column, f.rule))


def _run(
    binary: str, migrations: list[MigrationFile], flags: list[str], excluded: tuple[str, ...]
) -> list[Finding]:
    if not migrations:
        return []
    by_path = {str(m.path): m.filename for m in migrations}
    command = [binary, "--reporter", "json", *flags, "--exclude", ",".join(excluded), *by_path]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LintUnavailable(f"squawk could not run: {exc}") from exc
    output = completed.stdout.strip()
    if completed.returncode not in (0, 1) or not output.startswith("["):
        raise LintUnavailable(
            f"squawk failed (exit {completed.returncode}): {completed.stderr.strip()[:500]}"
        )
    return [
        Finding(
            file=by_path.get(item["file"], Path(item["file"]).name),
            line=int(item.get("line", 0)) + 1,
            column=int(item.get("column", 0)) + 1,
            rule=item.get("rule_name", ""),
            message=item.get("message", ""),
            help=item.get("help"),
        )
        for item in json.loads(output)
    ]
