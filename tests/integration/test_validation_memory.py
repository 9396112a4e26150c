"""Validating a large file fits in memory proportional to it (issue 12.12).

The measurement itself (peak RSS per shape of file, side by side) is ``bench/validate_memory.py``;
here, ``pgship verify`` must succeed on a large one-statement INSERT with its address space
limited to the interpreter's own plus ten times the file. pgship 0.x parsed the whole file into
one JSON tree, about 70 times the file, and died there with "This is a bug in pgship".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LIMITED = """
import resource, sys
from pgship.cli import main
baseline = int(next(l for l in open('/proc/self/status') if l.startswith('VmPeak:')).split()[1]) * 1024
limit = baseline + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.exit(main(sys.argv[2:]))
"""


def _large_insert(path: Path, size: int) -> int:
    with path.open("w", encoding="utf-8") as file:
        file.write("CREATE TABLE t (id int, name text, amount numeric);\nINSERT INTO t VALUES\n")
        written, index = 0, 0
        while written < size:
            row = f"{',' if index else ''}\n({index}, 'name é {index}', {index}.5)"
            written += file.write(row)
            index += 1
        file.write(";\n")
    return path.stat().st_size


def test_verify_of_a_large_insert_succeeds_in_ten_times_the_file(migrations):
    size = _large_insert(migrations.path / "001_seed.sql", 8_000_000)
    result = subprocess.run(
        [sys.executable, "-c", LIMITED, str(10 * size), "-m", str(migrations), "verify", "--no-database"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 migration files are valid" in result.stdout
    assert "bug in pgship" not in result.stdout + result.stderr


def test_a_syntax_error_in_a_large_statement_of_a_no_transaction_file_is_found(migrations, cli):
    path = migrations.path / "001_seed.sql"
    _large_insert(path, 1_000_000)
    path.write_text("-- pgship:no-transaction\n" + path.read_text(encoding="utf-8").replace("(7,", "(7,,"))
    result = cli("-m", str(migrations), "verify", "--no-database")
    assert result.code == 2 and "001_seed.sql:" in result.output and "syntax error" in result.output
