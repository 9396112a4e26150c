"""pgship reads a file the way PostgreSQL does: a differential check against psql (issue 12).

Hypothesis writes migration files full of what trips up a hand-written splitter: semicolons, quotes
and comment markers inside strings, quoted identifiers and comments; dollar quotes with non-ASCII
tags; nested block comments; ``E''`` strings with escaped quotes; backslashes in standard strings;
``DO`` blocks. Every statement of a file inserts one row recording its ordinal and its literal. The
same file is applied to two fresh tables: by ``psql -v ON_ERROR_STOP=1 -f`` (psql's own lexer splits
it) and by executing pgship's statements one by one, as the runner does. pgship must find exactly the
statements written (also when it scans the file in chunks, as it does a large one), and both
databases must end up with the same rows.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from unittest.mock import patch

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pgship.sqlscript import analyse

# characters that matter to a lexer, plus ordinary and non-ASCII ones
TRICKY = ";'\"$-/*\\()\n é𝄞aE"
text = st.text(alphabet=TRICKY, max_size=12)
tags = st.sampled_from(["", "x", "é", "ü", "body", "tag_1", "ünï"])


def standard_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"  # standard_conforming_strings on: a backslash is a backslash


def escape_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return "E'" + escaped + "'"


@st.composite
def dollar_string(draw: st.DrawFn) -> tuple[str, str]:
    value, tag = draw(text), draw(tags)
    quote = f"${tag}$"
    if quote in value or value.endswith("$"):
        value = value.replace("$", "")
    return quote + value + quote, value


@st.composite
def literal(draw: st.DrawFn) -> tuple[str, str]:
    """(SQL text, the value it stands for)."""
    kind = draw(st.sampled_from(["standard", "escape", "dollar"]))
    if kind == "dollar":
        return draw(dollar_string())
    value = draw(text)
    return (standard_string(value) if kind == "standard" else escape_string(value)), value


def _flat(value: str) -> str:
    return value.replace("/", "").replace("*", "")  # no comment delimiter inside the comment itself


comment = st.one_of(
    st.builds(lambda t: "-- " + t.replace("\n", " ") + "\n", text),
    st.builds(lambda a, b: f"/* {_flat(a)} /* {_flat(b)} */ */", text, text),  # nested
)
gap = st.lists(st.one_of(st.sampled_from([" ", "\n", "\t", "\n\n"]), comment), max_size=3).map("".join)


def quoted_identifier(value: str) -> str:
    return '"' + (value or "c").replace('"', '""').replace("\x00", "") + '"'


@st.composite
def statement(draw: st.DrawFn, ordinal: int) -> tuple[str, str]:
    """One statement (without its semicolon) that inserts the row (ordinal, value)."""
    sql, value = draw(literal())
    inner = draw(gap)
    form = draw(st.sampled_from(["values", "select", "do", "nested_dollars"]))
    if form == "nested_dollars":  # a dollar-quoted body holding a dollar quote with another tag
        outer, value = draw(tags), draw(text).replace("$", "")
        inner_tag = draw(tags.filter(lambda tag: tag != outer))
        body = f"${inner_tag}${value}${inner_tag}$"
        assume(f"${outer}$" not in body)
        return f"DO ${outer}$ BEGIN{inner} INSERT INTO log VALUES ({ordinal}, {body}); END ${outer}$", value
    if form == "values":
        return f"INSERT INTO log VALUES ({inner}{ordinal},{inner} {sql})", value
    if form == "select":
        alias = quoted_identifier(draw(text))
        return f"INSERT INTO log SELECT {ordinal}, {sql} AS {alias}", value
    tag = draw(tags)
    body = standard_string(value) if f"${tag}$" in sql else sql
    if f"${tag}$" in body:
        body = standard_string(value)
    return f"DO ${tag}$ BEGIN{inner} INSERT INTO log VALUES ({ordinal}, {body}); END ${tag}$", value


@st.composite
def migration(draw: st.DrawFn) -> tuple[str, list[tuple[int, str]]]:
    count = draw(st.integers(min_value=1, max_value=5))
    parts, rows = [draw(gap)], []
    for ordinal in range(count):
        sql, value = draw(statement(ordinal))
        parts.append(sql + draw(st.sampled_from([";", " ;", ";;"])) + draw(gap))
        rows.append((ordinal, value))
    return "".join(parts), rows


@pytest.fixture(scope="module")
def two_databases(pg_server) -> Iterator[tuple[str, str]]:
    with pg_server.fresh_database() as by_psql, pg_server.fresh_database() as by_pgship:
        yield by_psql, by_pgship


@pytest.fixture(scope="module")
def psql() -> str:
    from pgship.testing.embedded import postgres_bin_dir

    return str(postgres_bin_dir() / "psql")


def _reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS log; CREATE TABLE log (n int, v text)")


def _rows(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT n, v FROM log ORDER BY n").fetchall()


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(migration())
def test_pgship_splits_and_runs_a_file_as_psql_does(two_databases, psql, tmp_path_factory, case):
    sql, expected = case
    by_psql, by_pgship = two_databases
    path = tmp_path_factory.mktemp("differential") / "001_tricky.sql"
    path.write_text(sql, encoding="utf-8")

    _reset(by_psql)
    applied = subprocess.run(
        [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", by_psql, "-f", str(path)],
        capture_output=True,
        text=True,
    )
    assert applied.returncode == 0, applied.stderr
    assert _rows(by_psql) == expected  # the generator's own check: psql ran what it meant

    script = analyse(sql)
    assert not script.problems, script.problems
    assert len(script.statements) == len(expected)
    with patch("pgship.sqlscript.SCAN_CHUNK", 3):  # a large file is scanned in chunks: same statements
        chunked = analyse(sql)
    assert [(s.start, s.end) for s in chunked.statements] == [(s.start, s.end) for s in script.statements]
    _reset(by_pgship)
    with psycopg.connect(by_pgship) as conn:  # one transaction, statement by statement, as the runner
        for each in script.statements:
            conn.execute(each.text)
    assert _rows(by_pgship) == _rows(by_psql)


def test_a_file_that_turns_standard_conforming_strings_off_is_refused():
    # psql and the server would then read 'a\'; ...' differently from pgship's scanner
    script = analyse("SET standard_conforming_strings = off;\nSELECT 'a\\'; SELECT 1; --';\n")
    assert [(p.line, "standard_conforming_strings" in p.message) for p in script.problems][:1] == [(1, True)]
