"""Bad files never reach the database: a hand-written hostile corpus, and fuzzed migration directories.

For every directory, ``pgship migrate`` either accepts it (and runs it: exit 0,
or exit 1 reporting the statement the server refused) or rejects it with
exit 2 and an error naming the file, leaving the database exactly as it was:
no tracking table, no object. Never an unhandled exception, never output that
is not valid UTF-8 JSON, never a raw terminal escape sequence.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgship.migrations import printable_name
from tests.conftest import ROOT
from tests.faults.catalog import Snapshot, take_snapshot
from tests.faults.harness import Outcome
from tests.faults.results import record
from tests.toolkit import CliResult, run_cli

pytestmark = pytest.mark.faults

HOSTILE = ROOT / "tests" / "data" / "hostile"
CASES = sorted(d.name for d in HOSTILE.iterdir() if d.is_dir())
GENERATED_CASES = (
    "fifo",
    "device_symlink",
    "broken_symlink",
    "undecodable_file_name",
    "escape_sequence_file_name",
    "deeply_nested_expression",
    "huge_file",
    "directory_named_like_a_migration",
    "missing_directory",
    "directory_is_a_file",
)


class Sandbox:
    """One database the bad input is thrown at; knows what "untouched" looks like and how to get back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.reset()
        self.empty: Snapshot = take_snapshot(url)

    def untouched(self) -> bool:
        return take_snapshot(self.url) == self.empty

    def reset(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(
                "DO $$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace "
                "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' LOOP "
                "EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END $$"
            )
            conn.execute("CREATE SCHEMA public")


@pytest.fixture(scope="module")
def sandbox(pg_server):
    with pg_server.fresh_database(prefix="pgship_bad") as url:
        yield Sandbox(url)


def entry_names(directory: Path) -> set[str]:
    if not directory.is_dir():
        return set()
    return {printable_name(entry.name) for entry in directory.iterdir()}


def judge(sandbox: Sandbox, directory: Path) -> tuple[str, list[str]]:
    """Run migrate (JSON) and verify (human) on ``directory``; return the verdict and what is wrong."""
    problems: list[str] = []
    result = run_cli("-d", sandbox.url, "-m", str(directory), "--json", "migrate", "--lock-wait", "10")
    problems += output_problems(result)
    try:
        document: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return "broken", [*problems, f"migrate --json printed no JSON document:\n{result.output[-600:]}"]
    error = document.get("error") or {}
    names = entry_names(directory)
    if result.code == 2:
        verdict = "rejected"
        listed = error.get("problems") or []
        if error.get("kind") != "invalid_migrations" or not listed:
            problems.append(f"exit 2 without a list of problems: {error}")
        for problem in listed:
            named = problem.get("file") or ""
            duplicates = set(named.split(", "))  # files sharing a version are named together
            if not (named in names or duplicates <= names or named == printable_name(str(directory))):
                problems.append(f"a problem does not name a file of the directory: {problem}")
        if not sandbox.untouched():
            problems.append("rejected, yet the database was changed")
            sandbox.reset()
    elif result.code == 1:
        verdict = "failed on the server"
        if error.get("kind") != "migration_failed" or not error.get("sqlstate"):
            problems.append(f"exit 1 that is not a server-reported migration failure: {error}")
        sandbox.reset()
    elif result.code == 0:
        verdict = "accepted"
        sandbox.reset()
    else:
        verdict = f"exit {result.code}"
        problems.append(f"unexpected exit code {result.code}: {error}")
    files_only = run_cli("-m", str(directory), "verify", "--no-database")
    problems += output_problems(files_only)
    if (files_only.code == 2) != (result.code == 2):
        problems.append(f"verify exits {files_only.code} where migrate exits {result.code}")
    if files_only.code == 2 and not any(
        name and name in files_only.stderr for name in names | {str(directory)}
    ):
        problems.append(f"verify's error names no file:\n{files_only.stderr[-600:]}")
    return verdict, problems


def output_problems(result: CliResult) -> list[str]:
    problems = []
    try:
        result.output.encode("utf-8")  # strict: lone surrogates (undecodable names) would fail here
    except UnicodeEncodeError as exc:
        problems.append(f"output is not valid UTF-8: {exc}")
    if "\x1b" in result.output:
        problems.append("a raw escape character reached the output")
    if "This is a bug in pgship" in result.output or "Traceback" in result.output:
        problems.append(f"unhandled exception:\n{result.output[-800:]}")
    return problems


# -- the corpus --------------------------------------------------------------------
def test_the_corpus_has_twenty_rejected_cases_and_a_readme_for_each():
    specs = {case: json.loads((HOSTILE / case / "case.json").read_text()) for case in CASES}
    assert sum(spec["expect"] == "rejected" for spec in specs.values()) >= 20
    readme = (HOSTILE / "README.md").read_text()
    missing = [case for case in (*CASES, *GENERATED_CASES) if f"`{case}`" not in readme]
    assert not missing, f"not described in tests/data/hostile/README.md: {missing}"


@pytest.mark.parametrize("case", CASES)
def test_hostile_directory(case, sandbox, tmp_path):
    spec = json.loads((HOSTILE / case / "case.json").read_text())
    directory = tmp_path / case
    shutil.copytree(HOSTILE / case, directory, symlinks=True)
    (directory / "case.json").unlink()
    _check_case(case, spec, directory, sandbox)


def _check_case(case: str, spec: dict[str, Any], directory: Path, sandbox: Sandbox) -> None:
    verdict, problems = judge(sandbox, directory)
    human = run_cli("-d", sandbox.url, "-m", str(directory), "migrate")
    if spec["expect"] == "rejected":
        if verdict != "rejected":
            problems.append(f"expected a rejection, got: {verdict}")
        for name in spec.get("names", []):
            located = f"{name}:{spec['line']}" if "line" in spec else name
            if located not in human.stderr:
                problems.append(f"the error does not point at {located}")
        if spec.get("message") and spec["message"] not in human.stderr:
            problems.append(f"the error does not say {spec['message']!r}")
        if "fix:" not in human.stderr:
            problems.append("the error says no fix")
        if not sandbox.untouched():
            problems.append("the database was changed")
    else:
        if verdict != "accepted" or human.code != 0:
            problems.append(
                f"expected it to apply, got {verdict} / exit {human.code}:\n{human.output[-800:]}"
            )
        if spec.get("warning") and spec["warning"] not in human.stderr:
            problems.append(f"no warning saying {spec['warning']!r}")
        sandbox.reset()
    record([Outcome("hostile migration directories", 0, not problems, case, None, "; ".join(problems))])
    assert not problems, f"{case} ({spec['probes']}):\n" + "\n".join(problems) + "\n" + human.output[-1500:]


def _generated(case: str, root: Path) -> tuple[Path, dict[str, Any]]:
    """Build a case git cannot store; returns its directory and its expectations."""
    directory = root / case
    directory.mkdir()
    (directory / "001_base.sql").write_text("CREATE TABLE base (id int);\n")
    if case == "fifo":
        os.mkfifo(directory / "002_pipe.sql")
        return directory, {"expect": "rejected", "names": ["002_pipe.sql"], "message": "not a regular file"}
    if (
        case == "device_symlink"
    ):  # /dev/null, not /dev/zero: a regression must fail the test, not eat the memory
        (directory / "002_null.sql").symlink_to("/dev/null")
        return directory, {"expect": "rejected", "names": ["002_null.sql"], "message": "not a regular file"}
    if case == "broken_symlink":
        (directory / "002_gone.sql").symlink_to(directory / "nowhere.sql")
        return directory, {"expect": "rejected", "names": ["002_gone.sql"], "message": "cannot read"}
    if case == "undecodable_file_name":
        os.close(os.open(os.path.join(os.fsencode(directory), b"002_caf\xe9.sql"), os.O_CREAT | os.O_WRONLY))
        return directory, {"expect": "rejected", "names": ["002_caf\\xe9.sql"], "message": "not <version>"}
    if case == "escape_sequence_file_name":
        (directory / "002_\x1b[31mred.sql").write_text("SELECT 1;\n")
        return directory, {
            "expect": "rejected",
            "names": ["002_\\x1b[31mred.sql"],
            "message": "not <version>",
        }
    if case == "deeply_nested_expression":
        (directory / "002_deep.sql").write_text("SELECT " + "(" * 20000 + "1" + ")" * 20000 + ";\n")
        return directory, {"expect": "rejected", "names": ["002_deep.sql"], "message": "syntax error"}
    if case == "huge_file":
        (directory / "002_huge.sql").write_text(
            "CREATE TABLE blob (body text);\nINSERT INTO blob VALUES ('" + "x" * 4_000_000 + "');\n"
        )
        return directory, {"expect": "accepted"}
    if case == "directory_named_like_a_migration":
        (directory / "002_folder.sql").mkdir()
        return directory, {"expect": "accepted"}
    if case == "missing_directory":
        shutil.rmtree(directory)
        return directory, {"expect": "rejected", "names": [], "message": "does not exist"}
    if case == "directory_is_a_file":
        shutil.rmtree(directory)
        directory.write_text("not a directory\n")
        return directory, {"expect": "rejected", "names": [], "message": "is not a directory"}
    raise AssertionError(case)


@pytest.mark.parametrize("case", GENERATED_CASES)
def test_hostile_directory_built_at_test_time(case, sandbox, tmp_path):
    directory, spec = _generated(case, tmp_path)
    if (
        case == "fifo"
    ):  # a pgship that read pipes would block forever: find out in a process that can be killed
        try:
            subprocess.run(
                [sys.executable, "-m", "pgship", "-m", str(directory), "verify", "--no-database"],
                capture_output=True,
                timeout=60,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("pgship hangs reading a named pipe called 002_pipe.sql")
    _check_case(case, {"probes": case, **spec}, directory, sandbox)


# -- fuzzing -----------------------------------------------------------------------
FRAGMENTS = [
    "CREATE TABLE IF NOT EXISTS fz (id int)",
    "INSERT INTO fz VALUES (1)",
    "BEGIN",
    "START TRANSACTION",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT a",
    "RELEASE SAVEPOINT a",
    "PREPARE TRANSACTION 'fz'",
    "BEGIN ISOLATION LEVEL SERIALIZABLE",
    "DO $$ BEGIN PERFORM 1; END $$",
    "DO $fz$ BEGIN RAISE NOTICE 'COMMIT; BEGIN;'; END $fz$",
    "CREATE OR REPLACE FUNCTION fz_f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
    "SELECT $$unterminated",
    "SELECT $a$ nested $b$ quotes $b$ $a$",
    "SELECT 'unterminated",
    "/* unterminated comment",
    "SELECT 1 /* nested /* comment */ still */",
    "\\set ON_ERROR_STOP on",
    "\\i other.sql",
    "\\c elsewhere",
    "SELECT :'psql_variable'",
    "COPY fz FROM stdin;\n1\n2\n\\.",
    "COPY fz TO stdout",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS fz_idx ON fz (id)",
    "DROP INDEX CONCURRENTLY IF EXISTS fz_idx",
    "VACUUM fz",
    "-- pgship:no-transaction",
    "-- pgship:no-transactions",
    "-- pgship:",
    "-- just a comment",
    ";;;",
    "",
    "\x00",
    "SELECT 'é ü 中文 🚀'",
    "SET search_path = nowhere",
    "__HUGE__",
]
HUGE = "SELECT '" + "h" * 1_500_000 + "'"

_digits = st.integers(0, 999).flatmap(lambda n: st.integers(0, 5).map(lambda width: str(n).zfill(width)))
_version = st.one_of(_digits, st.lists(_digits, min_size=2, max_size=3).map(".".join))
_description = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum()
)
_valid_name = st.builds(lambda v, d: f"{v}_{d}.sql", _version, _description)
_any_text = st.text(
    alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=30,
).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)
_name = st.one_of(
    _valid_name,
    _valid_name,
    _any_text.map(lambda s: s + ".sql"),
    _any_text,
    st.sampled_from(
        ["TEMPLATE.sql", "template.sql", "README.md", "001_x.SQL", ".hidden.sql", "001.sql", "x.sql"]
    ),
)
_statement = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40))
_separator = st.sampled_from([";\n", ";", "\n", "; ", ";\r\n"])


@st.composite
def _content(draw) -> bytes:
    parts = draw(st.lists(st.tuples(_statement, _separator), max_size=8))
    text = "".join(HUGE + sep if stmt == "__HUGE__" else stmt + sep for stmt, sep in parts)
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = text.replace("\n", newline)
    encoding = draw(
        st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-le", "latin-1", "cp1252"])
    )
    return text.encode(encoding, errors="replace")


_directory = st.dictionaries(_name, _content(), max_size=6)


def test_fuzzed_migration_directories_are_accepted_or_rejected_cleanly(sandbox, budget):
    verdicts: Counter[str] = Counter()
    failures: list[str] = []

    @settings(
        max_examples=budget.fuzz_examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(files=_directory)
    def check(files: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory(prefix="pgship-fuzz-") as scratch:
            directory = Path(scratch) / "migrations"
            directory.mkdir()
            for name, data in files.items():
                (directory / name).write_bytes(data)
            verdict, problems = judge(sandbox, directory)
            verdicts[verdict] += 1
            if problems:
                failures.append(f"{sorted(files)}: " + "; ".join(problems))
            assert not problems, f"files {files!r}:\n" + "\n".join(problems)

    try:
        check()
    finally:
        examples = sum(verdicts.values())
        record(
            [
                Outcome(
                    "fuzzed migration directories",
                    0,
                    not failures,
                    ", ".join(f"{count} {verdict}" for verdict, count in verdicts.most_common()),
                    None,
                    failures[0] if failures else "",
                    {"examples": examples, **verdicts},
                )
            ]
        )
