"""The release review's pure parts: lock rules from parse trees, the gate, the renderings.

Whether each claimed lock is the one the server takes is proved against PostgreSQL in
tests/integration/test_review_locks.py; here are the decisions that need no server.
"""

from __future__ import annotations

import pytest

from pgship.lint import Finding
from pgship.review.locks import LockMode, Work, review_sql, volatile_calls
from pgship.review.release import MigrationReview, ReleaseReview, Threshold
from pgship.review.render import headline, markdown, terminal_lines
from pgship.review.sizes import TableSize, human_bytes, regclass_text


def one(sql: str, **kwargs) -> object:
    review = review_sql(sql, **kwargs)
    assert review.error is None
    (statement,) = review.statements
    return statement


@pytest.mark.parametrize(
    ("default", "rewrites"),
    [
        ("0", False),
        ("'x'", False),
        ("now()", False),  # STABLE: evaluated once
        ("current_timestamp", False),
        ("'{}'::jsonb", False),
        ("gen_random_uuid()", True),
        ("clock_timestamp()", True),
        ("random() * 10", True),
        ("nextval('s')", True),
        ("my_function()", True),  # unknown: assume the worst
        ("coalesce(NULL, random())", True),
    ],
)
def test_add_column_rewrites_only_for_a_volatile_default(default: str, rewrites: bool) -> None:
    statement = one(f"ALTER TABLE t ADD COLUMN c text DEFAULT {default};")
    assert statement.mode is LockMode.ACCESS_EXCLUSIVE
    assert (statement.work == Work.REWRITE) is rewrites


def test_before_postgresql_11_every_default_rewrites() -> None:
    assert one("ALTER TABLE t ADD COLUMN c int DEFAULT 0;", server_major=10).work == Work.REWRITE
    assert one("ALTER TABLE t ADD COLUMN c int DEFAULT 0;", server_major=16).work == Work.NONE


def test_volatile_calls_walks_nested_expressions() -> None:
    import json

    from pglast import parser

    tree = json.loads(parser.parse_sql_json("SELECT lower(md5(random()::text))"))
    assert "random" in volatile_calls(tree)


def test_a_foreign_key_locks_both_tables_share_row_exclusive() -> None:
    statement = one("ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (c) REFERENCES shop.customers (id);")
    locks = {lock.relation: lock for lock in statement.locks}
    assert locks["orders"].mode is locks["shop.customers"].mode is LockMode.SHARE_ROW_EXCLUSIVE
    assert locks["orders"].work == Work.SCAN
    assert (
        one("ALTER TABLE o ADD CONSTRAINT f FOREIGN KEY (c) REFERENCES u (id) NOT VALID;").work == Work.NONE
    )


def test_several_subcommands_keep_the_strongest_lock_and_heaviest_work() -> None:
    statement = one("ALTER TABLE t VALIDATE CONSTRAINT c, ALTER COLUMN a TYPE bigint;")
    assert [(lock.relation, lock.mode, lock.work) for lock in statement.locks] == [
        ("t", LockMode.ACCESS_EXCLUSIVE, Work.REWRITE)
    ]
    assert statement.kind == "ALTER TABLE ... VALIDATE CONSTRAINT, ALTER COLUMN TYPE"


def test_lines_skip_comments_and_the_files_own_begin_commit() -> None:
    text = (
        "-- héllo wörld\nBEGIN;\n/* a\ncomment */\n"
        "CREATE INDEX i ON t (a);\n-- x\nUPDATE t SET a = 1;\nCOMMIT;\n"
    )
    review = review_sql(text)
    assert [(s.line, s.kind) for s in review.statements] == [(5, "CREATE INDEX"), (7, "UPDATE")]
    assert review.statements[0].text == "CREATE INDEX i ON t (a)"


def test_a_do_block_is_flagged_as_unknown_not_as_harmless() -> None:
    statement = one("DO $$ BEGIN EXECUTE 'TRUNCATE t'; END $$;")
    assert statement.unknown and statement.mode is LockMode.NONE


def test_a_file_that_does_not_parse_is_an_error_not_a_crash() -> None:
    assert review_sql("ALTER TABLE;").error.startswith("SQL syntax error")


def test_new_tables_are_not_hazards() -> None:
    statement = one("CREATE TABLE t (id bigint REFERENCES u (id));")
    assert statement.mode is LockMode.SHARE_ROW_EXCLUSIVE  # on u, not on the new t
    assert {lock.relation for lock in statement.locks if lock.new} == {"t"}


@pytest.mark.parametrize(
    ("text", "mode", "rows"),
    [
        ("access-exclusive", LockMode.ACCESS_EXCLUSIVE, None),
        ("ACCESS_EXCLUSIVE:1000000", LockMode.ACCESS_EXCLUSIVE, 1_000_000),
        ("share:1m", LockMode.SHARE, 1_000_000),
        ("share-row-exclusive:500k", LockMode.SHARE_ROW_EXCLUSIVE, 500_000),
        ("share:1_000", LockMode.SHARE, 1000),
    ],
)
def test_thresholds_parse(text: str, mode: LockMode, rows: int | None) -> None:
    assert Threshold.parse(text) == Threshold(mode, rows)


@pytest.mark.parametrize("text", ["", "none", "share:", "share:-1", "share:1.5", "share:١٢", "shared"])
def test_bad_thresholds_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Threshold.parse(text)


def release(sql: str, sizes: dict[str, TableSize] | None, *thresholds: str) -> ReleaseReview:
    statements = review_sql(sql).statements
    migration = MigrationReview("002", "002_x.sql", False, statements)
    return ReleaseReview([migration], sizes=sizes, thresholds=[Threshold.parse(t) for t in thresholds])


def test_the_gate_counts_rows_above_the_threshold_and_unknown_sizes() -> None:
    sql = "ALTER TABLE big ADD COLUMN c uuid DEFAULT gen_random_uuid();"
    big = {"big": TableSize("big", True, rows=2_000_000, bytes=1)}
    assert release(sql, big, "access-exclusive:1m").violations()
    assert not release(sql, big, "access-exclusive:2m").violations()
    assert not release(sql, {"big": TableSize("big", False)}, "access-exclusive").violations()
    assert release(sql, {"big": TableSize("big", True, rows=None)}, "access-exclusive:1").violations()
    assert release(sql, None, "access-exclusive:1").violations()
    assert release(sql, big, "share").violations()  # "or stronger"
    assert not release("CREATE INDEX CONCURRENTLY i ON big (a);", big, "share").violations()


def test_worst_first_orders_by_lock_then_work_then_rows() -> None:
    sql = (
        "CREATE INDEX CONCURRENTLY i ON a (x);\nUPDATE small SET x = 1;\n"
        "ALTER TABLE small ADD COLUMN c int;\nALTER TABLE big ADD COLUMN d int;\n"
        "ALTER TABLE small ALTER COLUMN x TYPE bigint;\n"
    )
    sizes = {
        name: TableSize(name, True, rows=rows, bytes=0) for name, rows in (("a", 1), ("small", 5), ("big", 9))
    }
    order = [(h.lock.relation, h.statement.line) for h in release(sql, sizes).hazards()]
    assert order == [("small", 5), ("big", 4), ("small", 3), ("a", 1), ("small", 2)]


def test_attention_lists_lint_blocking_locks_and_unknown_statements() -> None:
    review = release("DO $$ BEGIN END $$;\nCREATE INDEX i ON t (a);\n", None)
    migration = review.migrations[0]
    migration.lint.append(Finding("002_x.sql", 2, 1, "require-concurrent-index-creation", "m", None))
    reasons = review.needs_attention(migration)
    assert any("lint require-concurrent-index-creation" in r for r in reasons)
    assert any("SHARE on t" in r and "blocks writes" in r for r in reasons)
    assert any("DO: locks unknown" in r for r in reasons)
    harmless = release("CREATE INDEX CONCURRENTLY i ON t (a);", None)
    assert harmless.needs_attention(harmless.migrations[0]) == []


def test_markdown_cannot_be_broken_by_a_hostile_name() -> None:
    statements = review_sql('ALTER TABLE "a|b<script>`x" ADD COLUMN c int DEFAULT random();').statements
    migration = MigrationReview("002", "002_x.sql", False, statements)
    text = markdown(ReleaseReview([migration], sizes=None), "db")
    table_rows = [line for line in text.splitlines() if "a\\|b" in line and line.startswith("|")]
    assert table_rows and all(row.count("|") - row.count("\\|") == 8 for row in table_rows)
    assert "<script>" not in text and "`x" not in text


def test_the_terminal_view_leads_with_the_worst_lock_and_the_size() -> None:
    sizes = {"big": TableSize("big", True, rows=40_000_000, bytes=9 * 1024**3)}
    review = release("CREATE INDEX CONCURRENTLY i ON big (a);\nALTER TABLE big ALTER a TYPE text;\n", sizes)
    lines = terminal_lines(review, "app@db:5432/app")
    assert lines[1] == headline(review)
    assert "worst: ACCESS EXCLUSIVE on big (40,000,000 rows, 9.0 GB), rewrites the table" in lines[1]


def test_sizes_helpers() -> None:
    assert regclass_text('shop.we"ird') == '"shop"."we""ird"'
    assert [human_bytes(n) for n in (0, 2048, 50 * 1024**2, None)] == [
        "0 B",
        "2.0 kB",
        "50 MB",
        "size unknown",
    ]
    assert TableSize("t", True, rows=None, bytes=8192, note="never analysed: run ANALYZE").describe() == (
        "rows unknown (never analysed: run ANALYZE), 8.0 kB"
    )
