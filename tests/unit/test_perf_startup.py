"""What a run with nothing to do leaves out, and the fast paths that make discovery cheap.

The speed itself is measured by ``make bench-perf`` (bench/peers.py), never asserted here: these tests
check behaviour. A no-op ``migrate`` must not import the SQL parser (pglast) at all, while a pending
file is still parsed before anything runs, and an edited applied file is still caught by its checksum.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pgship.migrations import Version, checksum_of, discover, read_file_bytes
from tests.conftest import MigrationsDir, run_cli
from tests.integration.helpers import applied_versions, table_exists

# Runs pgship's command in a fresh interpreter (output not a terminal), then prints which of the heavy
# modules it had imported: the SQL parser, the terminal renderer, the web stack, OpenSSL (hashlib),
# and how a migration is applied or leased.
PROBE = (
    "import os, sys\n"
    "from pgship.cli import main\n"
    "code = main(['-d', os.environ['PROBE_URL'], '-m', os.environ['PROBE_DIR'], *sys.argv[1:]])\n"
    "heavy = ('pglast', 'pgship.sqlscript', 'rich', 'httpx', 'uvicorn', 'starlette', 'anyio', '_hashlib',\n"
    "         'pgship.apply', 'pgship.pipeline', 'pgship.lease')\n"
    "loaded = sorted(m for m in heavy if m in sys.modules)\n"
    "print('LOADED=' + ','.join(loaded))\n"
    "sys.exit(code)\n"
)


def probe(url: str, directory: MigrationsDir, *args: str) -> tuple[int, list[str], str]:
    env = {**os.environ, "PROBE_URL": url, "PROBE_DIR": str(directory.path)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=120
    )
    marker = [line for line in result.stdout.splitlines() if line.startswith("LOADED=")]
    assert marker, result.stdout + result.stderr
    loaded = [m for m in marker[-1].removeprefix("LOADED=").split(",") if m]
    return result.returncode, loaded, result.stdout + result.stderr


def write_two(migrations: MigrationsDir) -> None:
    migrations.write("001_create.sql", "CREATE TABLE perf_a (id int PRIMARY KEY);\n")
    migrations.write("002_add.sql", "ALTER TABLE perf_a ADD COLUMN name text;\n")


def test_a_noop_migrate_and_status_import_neither_the_parser_nor_rich_nor_the_web_stack(
    database_url, migrations
):
    write_two(migrations)
    assert run_cli("-d", database_url, "-m", str(migrations), "migrate").code == 0

    code, loaded, output = probe(database_url, migrations, "migrate")
    assert code == 0, output
    assert "Nothing to apply" in output
    assert loaded == [], f"a no-op migrate imported {loaded}"

    code, loaded, output = probe(database_url, migrations, "status")
    assert code == 0, output
    assert loaded == [], f"status imported {loaded}"


def test_a_pending_file_is_still_parsed_before_anything_runs(database_url, migrations):
    write_two(migrations)
    assert run_cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    migrations.write("003_good.sql", "CREATE TABLE perf_b (id int);\n")
    migrations.write("004_broken.sql", "CREATE TABLE perf_c (id int;\n")

    code, loaded, output = probe(database_url, migrations, "migrate")
    assert code != 0, output
    assert "004_broken.sql" in output
    assert "pglast" in loaded  # the probe sees the parser when it is used: its silence above means something
    assert "rich" not in loaded and "uvicorn" not in loaded
    assert not table_exists(database_url, "perf_b")  # nothing ran: the whole batch was refused first
    assert applied_versions(database_url) == ["001", "002"]


def test_an_edited_applied_file_is_still_refused_without_parsing(database_url, migrations):
    write_two(migrations)
    assert run_cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    migrations.write("001_create.sql", "CREATE TABLE perf_a (id bigint PRIMARY KEY);\n")

    code, loaded, output = probe(database_url, migrations, "migrate")
    assert code != 0, output
    assert "001_create.sql" in output and "edited" in output
    assert loaded == []


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 7])
def test_reading_a_file_returns_exactly_its_bytes_around_the_chunk_size(tmp_path: Path, size: int):
    content = bytes((i * 7 + i // 251) % 256 for i in range(size))
    path = tmp_path / "f.sql"
    path.write_bytes(content)
    assert read_file_bytes(str(path)) == content


def test_discovery_checksums_match_the_normalised_text_for_every_shape(tmp_path: Path):
    directory = MigrationsDir(tmp_path / "m")
    shapes = {
        "001_ascii.sql": b"SELECT 1;\n",
        "002_crlf.sql": b"SELECT 1;\r\nSELECT 2;\r\n",
        "003_bom.sql": b"\xef\xbb\xbfSELECT 'caf\xc3\xa9';\n",
        "004_large.sql": b"SELECT 1;\n" * 20000,  # larger than one read
        "005_empty.sql": b"",
    }
    for name, content in shapes.items():
        directory.write(name, content)
    found = {m.filename: m for m in discover(directory.path).migrations}
    assert set(found) == set(shapes)
    for name, content in shapes.items():
        assert found[name].checksum == checksum_of(content.decode("utf-8")), name
    assert found["002_crlf.sql"].text == "SELECT 1;\nSELECT 2;\n"
    assert found["001_ascii.sql"].checksum == checksum_of("SELECT 1;\r\n")  # CRLF is the same migration


@pytest.mark.parametrize("text", ["0", "7", "017", "040", "1000000000000000000000"])
def test_the_plain_digit_fast_path_equals_the_general_parse(text: str):
    version = Version.parse(text)
    assert version.parts == (int(text),) and version.key == (int(text),)
    assert version == Version.parse(text + ".0") and hash(version) == hash(Version.parse(text + ".0"))


def test_one_statement_answers_are_told_apart_from_several_by_their_locations():
    """The parser's JSON gives every statement after the first a location: the fast path relies on it."""
    from pglast import parser

    assert '"stmt_location":' not in parser.parse_sql_json("CREATE TABLE t (a int)")
    for several in ("SELECT 1; SELECT 2", "SELECT 1;;SELECT 2", "CREATE TABLE t (a int);\n-- x\n SELECT 1"):
        assert '"stmt_location":' in parser.parse_sql_json(several), several


SHAPES = [
    "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);\n"
    "CREATE INDEX t_name ON t (name);\nALTER TABLE t ADD COLUMN c int;\n"
    "INSERT INTO t (name) VALUES ('a'), ('b');\nCREATE VIEW v AS SELECT * FROM t;\n",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nSELECT f();\n",
    "-- pgship: no-transaction\nCREATE INDEX CONCURRENTLY t_c ON t (c);\n",
    "DROP INDEX CONCURRENTLY IF EXISTS t_c;\n",
    "SET search_path = public;\nCOMMENT ON TABLE t IS 'stmt_location: \"x\"';\n",
]


def hostile_files() -> list[Path]:
    from tests.conftest import ROOT

    return sorted((ROOT / "tests" / "data" / "hostile").glob("*/*.sql"))


@pytest.mark.parametrize(
    "text", SHAPES + [p.read_text(encoding="utf-8", errors="replace") for p in hostile_files()]
)
def test_every_statement_keeps_the_node_type_the_full_parse_gives(text: str):
    """Statements whose tree is not decoded still get their exact type, one statement per span."""
    import json

    from pglast import parser

    from pgship.migrations import normalise_text
    from pgship.sqlscript import analyse

    script = analyse(normalise_text(text))
    for statement in script.statements:
        if len(statement.text) > 256 * 1024:
            continue  # a large row statement is typed by its first word, never parsed
        try:
            parsed = json.loads(parser.parse_sql_json(statement.text)).get("stmts", [])
        except parser.ParseError:
            continue
        assert [next(iter(item["stmt"])) for item in parsed] == [statement.node], statement.text[:200]
