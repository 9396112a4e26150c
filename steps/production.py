"""Steps about what happens to the production database outside pgship.

The application's own traffic (a long report, everyday queries), changes made
by hand during an incident, and the runner pgship replaced. These steps act
on the database directly with their own sessions, as those people and
programs would, and check afterwards that pgship left them alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from behave import given, then, when

from pgship.testing.spec import attachments
from pgship.testing.spec.legacy_runner import apply_by_hand, migrate_like_the_old_runner
from pgship.testing.spec.workspace import SAMPLE_APP
from steps.support import schema_snapshot


# -- the application's traffic -------------------------------------------------------
@given("a long-running report is reading the orders table")
def long_report(context: Any) -> None:
    conn = psycopg.connect(context.world.database_url, application_name="shop-report")
    context.world.cleanup.closeable(conn, "the long-running report's session")
    conn.execute("SELECT count(*) FROM orders")  # the transaction stays open, holding its lock on orders
    context.world.facts["report"] = conn
    context.world.facts["report_pid"] = conn.info.backend_pid


@given("the shop is in the middle of a transaction writing to the customers table")
def shop_writing(context: Any) -> None:
    conn = psycopg.connect(context.world.database_url, application_name="shop-checkout")
    context.world.cleanup.closeable(conn, "the shop's writing session")
    conn.execute("INSERT INTO customers (name) VALUES ('Checkout in progress')")  # uncommitted
    context.world.facts["shop_write"] = conn


@when("the report finishes")
def report_finishes(context: Any) -> None:
    context.world.facts["report"].commit()


@then("the report was not interrupted")
def report_not_interrupted(context: Any) -> None:
    conn: psycopg.Connection = context.world.facts["report"]
    assert not conn.closed and not conn.broken, "the report's session was closed"
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS, (
        f"the report's transaction was ended ({conn.info.transaction_status.name})"
    )
    conn.execute("SELECT count(*) FROM orders")  # still usable, in the same transaction
    assert conn.info.backend_pid == context.world.facts["report_pid"]


@dataclass
class TrafficProbe:
    """The shop's everyday queries on orders, one after another, in a session of their own.

    Each query may wait up to ``patience_s`` for a lock. pgship's lock_timeout
    (a fraction of a second here) bounds how long a migration's queued lock can
    hold them up; a migration waiting without one would keep them queued until
    the long report ends, and they would give up.
    """

    url: str
    patience_s: float = 5.0
    completed: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TrafficProbe:
        self._thread = threading.Thread(target=self._run, name="shop-traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True, application_name="shop-traffic") as conn:
                conn.execute(f"SET lock_timeout = '{int(self.patience_s * 1000)}ms'")
                while not self._stop.is_set():
                    try:
                        conn.execute("SELECT count(*) FROM orders")
                        self.completed.append(time.monotonic())
                    except psycopg.errors.LockNotAvailable as exc:
                        self.failures.append(f"stuck behind a lock for {self.patience_s:g} s: {exc}")
                    self._stop.wait(0.02)
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.patience_s + 5)


@given("the shop keeps querying the orders table")
def shop_traffic(context: Any) -> None:
    probe = TrafficProbe(context.world.database_url).start()
    context.world.cleanup.closeable(probe, "the shop's traffic probe")
    context.world.facts["traffic"] = probe


@then("the shop's queries on orders kept running throughout the deploy")
def traffic_kept_running(context: Any) -> None:
    probe: TrafficProbe = context.world.facts["traffic"]
    probe.close()
    started, ended = context.world.facts["deploy_window"]
    during = [moment for moment in probe.completed if started <= moment <= ended]
    attachments.attach_json(
        "the shop's queries during the deploy",
        {
            "completed during the deploy": len(during),
            "deploy seconds": round(ended - started, 2),
            "failures": probe.failures,
        },
    )
    assert not probe.failures, f"the shop's queries were blocked: {probe.failures}"
    assert during, "no query of the shop completed while the deploy ran"


# -- changes made by hand --------------------------------------------------------------
@given("a column {column:w} was added by hand to the {table:w} table")
def column_added_by_hand(context: Any, column: str, table: str) -> None:
    context.world.query(f"ALTER TABLE {table} ADD COLUMN {column} text")


@given("the index {name:w} was dropped by hand")
def index_dropped_by_hand(context: Any, name: str) -> None:
    context.world.query(f"DROP INDEX {name}")


@given("migration {version} was applied by hand in an emergency")
def applied_by_hand(context: Any, version: str) -> None:
    migration = SAMPLE_APP.by_version(version)
    apply_by_hand(context.world.database_url, [migration])
    attachments.attach_text(f"run by hand: psql -f {migration.filename}", migration.sql)


# -- databases pgship did not build ----------------------------------------------------
@given("a database migrated to release {number:d} by the old shell runner")
def migrated_by_old_runner(context: Any, number: int) -> None:
    migrate_like_the_old_runner(context.world.database_url, SAMPLE_APP.release(number))
    attachments.attach_json("the old runner's tracking table", context.world.tracking_rows())


@given("a database that already has the schema of release {number:d}, made without any runner")
def schema_without_runner(context: Any, number: int) -> None:
    apply_by_hand(context.world.database_url, SAMPLE_APP.release(number))
    context.world.facts["schema_before"] = schema_snapshot(context)
