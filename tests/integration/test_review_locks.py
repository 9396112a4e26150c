"""Every lock the release review claims, checked against the locks the server really takes.

For each statement kind the review names: the statement runs in one transaction (or, for the
CONCURRENTLY kinds that refuse a transaction, in autocommit while another session holds it up),
and a second connection reads ``pg_locks``. The review's claimed mode on the relation must equal
the strongest mode the server holds on it, and the claimed work (rewrite or not) must match what
the server did to the table's file (``pg_class.relfilenode`` changes on a rewrite).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psycopg
import pytest

from pgship.review.locks import LockMode, Work, review_sql

SCHEMA = """
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, created_at timestamptz);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total numeric, note text);
CREATE INDEX orders_total_idx ON orders (total);
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
    NOT VALID;
ALTER TABLE orders ADD CONSTRAINT orders_total_check CHECK (total >= 0) NOT VALID;
CREATE MATERIALIZED VIEW customer_count AS SELECT count(*) AS n FROM customers;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
INSERT INTO customers SELECT g, 'c' || g, 'c' || g || '@example.com', now() FROM generate_series(1, 50) g;
INSERT INTO orders SELECT g, g, g, NULL FROM generate_series(1, 50) g;
"""


@dataclass(frozen=True)
class Case:
    statement: str
    relation: str  # the relation whose lock is compared
    rewrites: bool | None = None  # None: the table's file is not compared (dropped, or not a table)

    def __str__(self) -> str:
        return self.statement


IN_TRANSACTION = [
    Case("ALTER TABLE customers ADD COLUMN token uuid DEFAULT gen_random_uuid()", "customers", True),
    Case("ALTER TABLE customers ADD COLUMN seen_at timestamptz DEFAULT clock_timestamp()", "customers", True),
    Case("ALTER TABLE customers ADD COLUMN vip boolean NOT NULL DEFAULT false", "customers", False),
    Case("ALTER TABLE customers ADD COLUMN joined timestamptz DEFAULT now()", "customers", False),
    Case("ALTER TABLE customers ADD COLUMN nickname text", "customers", False),
    Case("ALTER TABLE customers ADD COLUMN n bigserial", "customers", True),
    Case(
        "ALTER TABLE customers ADD COLUMN lname text GENERATED ALWAYS AS (lower(name)) STORED",
        "customers",
        True,
    ),
    Case("ALTER TABLE customers ALTER COLUMN id TYPE numeric", "customers", True),
    Case("ALTER TABLE customers ALTER COLUMN name SET NOT NULL", "customers", False),
    Case("ALTER TABLE customers ALTER COLUMN name DROP NOT NULL", "customers", False),
    Case("ALTER TABLE customers ALTER COLUMN name SET DEFAULT 'x'", "customers", False),
    Case("ALTER TABLE customers DROP COLUMN email", "customers", False),
    Case("ALTER TABLE customers ADD CONSTRAINT name_check CHECK (name <> '')", "customers", False),
    Case("ALTER TABLE customers ADD CONSTRAINT name_check CHECK (name <> '') NOT VALID", "customers", False),
    Case("ALTER TABLE customers ADD CONSTRAINT email_key UNIQUE (email)", "customers", False),
    Case(
        "ALTER TABLE orders ADD CONSTRAINT fk2 FOREIGN KEY (customer_id) REFERENCES customers (id)", "orders"
    ),
    Case(
        "ALTER TABLE orders ADD CONSTRAINT fk2 FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "customers",
    ),
    Case(
        "ALTER TABLE orders ADD CONSTRAINT fk2 FOREIGN KEY (customer_id) REFERENCES customers (id) NOT VALID",
        "orders",
    ),
    Case("ALTER TABLE orders VALIDATE CONSTRAINT orders_total_check", "orders", False),
    Case("ALTER TABLE orders VALIDATE CONSTRAINT orders_customer_fk", "orders", False),
    Case("ALTER TABLE orders DROP CONSTRAINT orders_total_check", "orders", False),
    Case("ALTER TABLE orders ALTER COLUMN total SET STATISTICS 500", "orders", False),
    Case("ALTER TABLE orders SET (fillfactor = 70)", "orders", False),
    Case("ALTER TABLE orders DISABLE TRIGGER ALL", "orders", False),
    Case("ALTER TABLE orders SET UNLOGGED", "orders", True),
    Case("ALTER TABLE customers RENAME TO clients", "customers", False),
    Case("ALTER TABLE customers RENAME COLUMN name TO full_name", "customers", False),
    Case("ALTER INDEX orders_total_idx RENAME TO orders_total_i", "orders_total_idx"),
    Case("CREATE INDEX orders_note_idx ON orders (note)", "orders", False),
    Case("CREATE UNIQUE INDEX customers_email_idx ON customers (email)", "customers", False),
    Case("CREATE TABLE invoices (id bigint PRIMARY KEY, order_id bigint REFERENCES orders (id))", "orders"),
    Case("CREATE TABLE notes (id bigint PRIMARY KEY, body text)", "customers"),
    Case(
        "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch()", "orders"
    ),
    Case("DROP TABLE orders", "orders"),
    Case("DROP INDEX orders_total_idx", "orders_total_idx"),
    Case("TRUNCATE orders", "orders"),
    Case("UPDATE customers SET name = upper(name)", "customers", False),
    Case("UPDATE customers SET name = 'x' WHERE id = 1", "customers", False),
    Case("DELETE FROM orders WHERE id = 1", "orders", False),
    Case("INSERT INTO customers (id, name) VALUES (1000, 'new')", "customers", False),
    Case("LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE", "orders", False),
    Case("COMMENT ON TABLE orders IS 'what was ordered'", "orders", False),
    Case("COMMENT ON COLUMN orders.note IS 'free text'", "orders", False),
    Case("REFRESH MATERIALIZED VIEW customer_count", "customer_count"),
    Case("CLUSTER orders USING orders_pkey", "orders", True),
    Case("ANALYZE orders", "orders", False),
    Case("CREATE POLICY own ON orders USING (true)", "orders", False),
]

CONCURRENTLY = [
    Case("CREATE INDEX CONCURRENTLY orders_note_idx ON orders (note)", "orders", False),
    Case("DROP INDEX CONCURRENTLY orders_total_idx", "orders_total_idx"),
    Case("REINDEX INDEX CONCURRENTLY orders_total_idx", "orders_total_idx"),
]


def claimed(case: Case, *, no_transaction: bool = False) -> tuple[LockMode, str]:
    review = review_sql(case.statement + ";", no_transaction=no_transaction)
    assert review.error is None, review.error
    (statement,) = review.statements
    locks = {lock.relation: lock for lock in statement.locks}
    lock = locks.get(case.relation)
    return (lock.mode, lock.work) if lock else (LockMode.NONE, Work.NONE)


def held(observer: psycopg.Connection, pid: int, oid: int) -> LockMode:
    modes = observer.execute(
        "SELECT mode FROM pg_locks WHERE pid = %s AND locktype = 'relation' AND relation = %s AND granted",
        (pid, oid),
    ).fetchall()
    return max((LockMode.from_pg_name(mode) for (mode,) in modes), default=LockMode.NONE)


@pytest.fixture
def shop(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return database_url


def _filenode(conn: psycopg.Connection, oid: int) -> int:
    return conn.execute("SELECT relfilenode FROM pg_class WHERE oid = %s", (oid,)).fetchone()[0]


@pytest.mark.parametrize("case", IN_TRANSACTION, ids=str)
def test_the_claimed_lock_is_the_strongest_lock_the_server_takes(shop: str, case: Case) -> None:
    mode, work = claimed(case)
    with psycopg.connect(shop, autocommit=True) as observer, psycopg.connect(shop) as session:
        oid = observer.execute("SELECT %s::regclass::oid", (case.relation,)).fetchone()[0]
        before = _filenode(observer, oid)
        pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
        session.execute(case.statement)
        actual = held(observer, pid, oid)
        after = session.execute("SELECT relfilenode FROM pg_class WHERE oid = %s", (oid,)).fetchone()
        session.rollback()
    assert mode == actual, f"{case.statement}: review says {mode.label}, the server holds {actual.label}"
    if case.rewrites is not None:
        rewritten = after is not None and after[0] != before
        assert rewritten == case.rewrites, (
            f"{case.statement}: the server {'did' if rewritten else 'did not'} rewrite"
        )
        assert (work == Work.REWRITE) == case.rewrites, f"{case.statement}: review says work={work}"


@pytest.mark.parametrize("case", CONCURRENTLY, ids=str)
def test_concurrent_statements_take_the_claimed_lock_while_they_wait(shop: str, case: Case) -> None:
    """A CONCURRENTLY statement waits for older writers; while it waits, its locks are visible."""
    mode, _ = claimed(case, no_transaction=True)
    with (
        psycopg.connect(shop, autocommit=True) as observer,
        psycopg.connect(shop) as writer,
        psycopg.connect(shop, autocommit=True) as session,
    ):
        oid = observer.execute("SELECT %s::regclass::oid", (case.relation,)).fetchone()[0]
        writer.execute("UPDATE orders SET note = 'in flight' WHERE id = 1")  # an open write transaction
        pid = session.execute("SELECT pg_backend_pid()").fetchone()[0]
        errors: list[BaseException] = []

        def run() -> None:
            try:
                session.execute(case.statement)
            except BaseException as exc:  # reported below
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        try:
            waiting = False
            for _ in range(2000):  # until the statement waits for the writer (no time limit asserted)
                waiting = bool(
                    observer.execute(
                        "SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)
                    ).fetchone()
                )
                if waiting or not worker.is_alive():
                    break
                observer.execute("SELECT pg_sleep(0.005)")
            assert waiting, f"{case.statement} never waited for the open write transaction: {errors}"
            actual = held(observer, pid, oid)
        finally:
            writer.rollback()
            worker.join()
    assert not errors, errors
    assert mode == actual, f"{case.statement}: review says {mode.label}, the server holds {actual.label}"


def test_every_statement_kind_the_review_names_for_tables_is_covered_here() -> None:
    """A new lock rule needs a row in the tables above: the kinds they cover, by their names."""
    kinds = set()
    for case in IN_TRANSACTION:
        kinds.add(review_sql(case.statement + ";").statements[0].kind)
    for case in CONCURRENTLY:
        kinds.add(review_sql(case.statement + ";", no_transaction=True).statements[0].kind)
    for expected in (
        "ALTER TABLE ... ADD COLUMN",
        "ALTER TABLE ... ALTER COLUMN TYPE",
        "ALTER TABLE ... SET NOT NULL",
        "ALTER TABLE ... ADD FOREIGN KEY",
        "ALTER TABLE ... ADD FOREIGN KEY NOT VALID",
        "ALTER TABLE ... VALIDATE CONSTRAINT",
        "CREATE INDEX",
        "CREATE INDEX CONCURRENTLY",
        "DROP TABLE",
        "TRUNCATE",
        "UPDATE",
        "DELETE",
        "INSERT",
        "CREATE TABLE",
    ):
        assert expected in kinds, expected
