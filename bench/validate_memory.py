"""Peak memory of validating one large migration file, as a multiple of the file's size (issue 12.12).

Each shape of file is written once, then measured in fresh processes, side by side in one run:

- **interpreter**: ``python -c "import pgship.cli"``, the floor every pgship process pays;
- **read**: pgship's discovery alone (read, decode, checksum), the floor of any validation;
- **verify**: ``pgship -m DIR verify --no-database``, what CI and ``deploy`` run;
- **whole-file JSON** (``--reference``): the parse pgship 0.x did, pglast's JSON tree of the whole
  file; only up to 10 MB, because it takes about 70 times the file.

Peak RSS comes from ``os.wait4`` (the child's own ``ru_maxrss``). The figures to compare are the
ratios: peak / file size, and (peak - interpreter) / file size. The target is a verify peak within
5 times the file.

    .venv/bin/python bench/validate_memory.py               # 50 MB, every shape
    .venv/bin/python bench/validate_memory.py --size-mb 10 --reference
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

PYTHON = sys.executable
PGSHIP = [PYTHON, "-m", "pgship"]


def _rows(size: int, row: Callable[[int], str], head: str, tail: str = ";\n") -> Iterator[str]:
    yield head
    written, index = len(head), 0
    while written < size:
        text = ("" if index == 0 else ",\n") + row(index)
        written += len(text.encode("utf-8"))
        index += 1
        yield text
    yield tail


def shape_insert(size: int) -> Iterator[str]:
    """One INSERT of many short rows: the densest parse tree per byte."""
    yield "CREATE TABLE t (id int, name text, amount numeric);\n"
    yield from _rows(size, lambda i: f"({i}, 'name {i}', {i}.5)", "INSERT INTO t (id, name, amount) VALUES\n")


def shape_insert_utf8(size: int) -> Iterator[str]:
    """The same with non-ASCII text in every row (characters and bytes differ)."""
    yield "CREATE TABLE t (id int, name text);\n"
    yield from _rows(size, lambda i: f"({i}, 'café № {i} – ünïcødé')", "INSERT INTO t (id, name) VALUES\n")


def shape_function(size: int) -> Iterator[str]:
    """One function with a huge body: a single string constant for the parser."""
    body = "  PERFORM pg_sleep(0); -- step\n"
    yield "CREATE FUNCTION big() RETURNS void LANGUAGE plpgsql AS $body$\nBEGIN\n"
    yield body * (size // len(body))
    yield "END\n$body$;\n"


def shape_statements(size: int) -> Iterator[str]:
    """Many small statements: per-statement overhead."""
    yield "CREATE TABLE t (id int, name text);\n"
    line = "INSERT INTO t VALUES ({}, 'a row of the seed data');\n"
    written = 0
    index = 0
    while written < size:
        text = line.format(index)
        written += len(text)
        index += 1
        yield text


SHAPES = {
    "insert": shape_insert,
    "insert_utf8": shape_insert_utf8,
    "function": shape_function,
    "statements": shape_statements,
}

READ_ONLY = "import sys; from pgship.migrations import discover; discover(sys.argv[1])"
WHOLE_FILE_JSON = (
    "import sys, json; from pglast import parser; from pgship.migrations import discover; "
    "[json.loads(parser.parse_sql_json(m.text)) for m in discover(sys.argv[1]).migrations]"
)


def peak_rss(command: list[str]) -> tuple[int, int]:
    """(exit code, peak resident set size in bytes) of ``command`` run in a fresh process."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        print(f"    exit {process.returncode}: {stderr.strip()[-300:]}", file=sys.stderr)
    return process.returncode, usage.ru_maxrss * 1024  # Linux: kilobytes


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=float, default=50.0, help="size of each file (default 50)")
    parser.add_argument(
        "--shapes", default=",".join(SHAPES), help=f"comma-separated, of: {', '.join(SHAPES)}"
    )
    parser.add_argument("--reference", action="store_true", help="also the whole-file JSON parse (<= 10 MB)")
    args = parser.parse_args()

    size = int(args.size_mb * 1_000_000)
    mb = 1_000_000
    print(f"peak RSS, validating one file of {args.size_mb:g} MB (ratios: to the file size)\n")
    header = ("shape", "measure", "exit", "peak MB", "peak/file", "(peak-floor)/file")
    print("{:<12} {:<16} {:>4} {:>9} {:>10} {:>18}".format(*header))
    _, floor = peak_rss([PYTHON, "-c", "import pgship.cli"])
    print(f"{'-':<12} {'interpreter':<16} {0:>4} {floor / mb:>9.1f}")
    worst = 0.0
    for name in args.shapes.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "migrations"
            directory.mkdir()
            path = directory / "001_large.sql"
            with path.open("w", encoding="utf-8") as file:
                for chunk in SHAPES[name](size):
                    file.write(chunk)
            actual = path.stat().st_size
            measures = {
                "read": [PYTHON, "-c", READ_ONLY, str(directory)],
                "verify": [*PGSHIP, "-m", str(directory), "verify", "--no-database"],
            }
            if args.reference and actual <= 11 * mb:
                measures["whole-file JSON"] = [PYTHON, "-c", WHOLE_FILE_JSON, str(directory)]
            for measure, command in measures.items():
                code, peak = peak_rss(command)
                ratio = peak / actual
                if measure == "verify":
                    worst = max(worst, ratio)
                print(
                    f"{name:<12} {measure:<16} {code:>4} {peak / mb:>9.1f} {ratio:>10.2f} "
                    f"{(peak - floor) / actual:>18.2f}"
                )
    print(f"\nworst verify peak: {worst:.2f} x the file (target: 5)")
    return 0 if worst <= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
