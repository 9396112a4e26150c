"""The health documents, built from observations without any I/O, and the cache in front of the probe."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from pgship.health import (
    CheckFailure,
    Observation,
    ObservationCache,
    Release,
    check_statement,
    classify,
    database_report,
    http_status,
    liveness_report,
    readiness_report,
)
from pgship.history import TrackingTable, from_json_rows
from pgship.planner import make_plan
from tests.unit.test_planner import files, history

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
SHIPPED = files("001_a", "002_b", "003_c")


def observe(discovery=SHIPPED, *applied: str, **kwargs) -> Observation:
    plan = make_plan(discovery, history(discovery, *applied, **kwargs))
    return Observation(AT, 3.14159, "16.4", plan)


def report(observation: Observation, release_id: str | None = "abc123") -> dict:
    return database_report(observation, Release(SHIPPED, "schema_migrations", release_id, 2.0))


def migrations_check(document: dict) -> dict:
    return document["checks"]["database:migrations"][0]


def connection_check(document: dict) -> dict:
    return document["checks"]["database:connection"][0]


def test_in_sync_passes_with_every_detail():
    document = report(observe(SHIPPED, "001", "002", "003"))
    assert document["status"] == "pass" and document["releaseId"] == "abc123" and "output" not in document
    assert connection_check(document) == {
        "componentType": "datastore",
        "status": "pass",
        "serverVersion": "16.4",
        "observedValue": 3.1,
        "observedUnit": "ms",
        "time": "2026-01-02T03:04:05.678Z",
    }
    assert migrations_check(document) == {
        "componentType": "datastore",
        "status": "pass",
        "observedValue": 0,
        "observedUnit": "pending migrations",
        "time": "2026-01-02T03:04:05.678Z",
        "table": "schema_migrations",
        "shippedCount": 3,
        "latestShipped": "003",
        "appliedCount": 3,
        "latestApplied": "003",
        "pending": [],
        "appliedWithoutFile": [],
        "checksumMismatches": [],
    }
    assert http_status(document) == 200


def test_pending_migrations_fail_with_their_versions():
    document = report(observe(SHIPPED, "001"))
    check = migrations_check(document)
    assert document["status"] == "fail" and http_status(document) == 503
    assert check["pending"] == ["002", "003"] and check["observedValue"] == 2
    assert document["output"] == "2 pending migrations: 002, 003"
    assert connection_check(document)["status"] == "pass"


def test_an_out_of_order_file_counts_as_pending():
    document = report(observe(SHIPPED, "001", "003"))
    assert document["status"] == "fail" and migrations_check(document)["pending"] == ["002"]


def test_an_edited_applied_migration_warns_but_stays_200():
    document = report(observe(SHIPPED, "001", "002", "003", checksum={"002": "0" * 64}))
    assert document["status"] == "warn" and http_status(document) == 200
    assert migrations_check(document)["checksumMismatches"] == ["002"]
    assert "checksum mismatch" in document["output"]


def test_applied_versions_without_a_file_warn():
    newer = report(observe(SHIPPED, "001", "002", "003", extra=("004",)))  # a newer release applied it
    gap = report(observe(files("001_a", "003_c"), "001", "003", extra=("002",)))  # a file was deleted
    assert newer["status"] == "warn" and migrations_check(newer)["appliedWithoutFile"] == ["004"]
    assert gap["status"] == "warn" and migrations_check(gap)["appliedWithoutFile"] == ["002"]


def test_pending_outweighs_a_warning():
    document = report(observe(SHIPPED, "001", extra=("009",), checksum={"001": "x"}))
    assert document["status"] == "fail"


def test_a_fresh_database_with_no_tracking_table_is_all_pending():
    document = report(Observation(AT, 1.0, "16.4", make_plan(SHIPPED, from_json_rows([]))))
    assert migrations_check(document)["pending"] == ["001", "002", "003"]


@pytest.mark.parametrize(
    ("failure", "output"),
    [
        (CheckFailure("timeout"), "the database did not answer within 2 s"),
        (CheckFailure("unreachable"), "cannot connect to the database"),
        (
            CheckFailure("unreachable", "28P01"),
            "cannot connect to the database (SQLSTATE class 28: invalid authorization specification)",
        ),
        (
            CheckFailure("query", "42501"),
            "the health query failed (SQLSTATE class 42: syntax error or access rule violation)",
        ),
        (CheckFailure("query", "ZZ000"), "the health query failed (SQLSTATE class ZZ: other)"),
        (CheckFailure("not_a_tracking_table"), "the configured tracking table has no version column"),
    ],
)
def test_a_failed_check_says_what_failed_generically(failure: CheckFailure, output: str):
    document = report(Observation(AT, 2000.0, failure=failure))
    assert document["status"] == "fail" and http_status(document) == 503
    assert document["output"] == output and connection_check(document)["output"] == output
    check = migrations_check(document)
    assert check["status"] == "fail" and check["shippedCount"] == 3 and check["latestShipped"] == "003"
    assert "appliedCount" not in check and "serverVersion" not in connection_check(document)


def test_readiness_keeps_statuses_only():
    detailed = report(observe(SHIPPED, "001"))
    ready = readiness_report(detailed)
    assert ready == {
        "status": "fail",
        "releaseId": "abc123",
        "checks": {
            "database:connection": [
                {"componentType": "datastore", "status": "pass", "time": "2026-01-02T03:04:05.678Z"}
            ],
            "database:migrations": [
                {"componentType": "datastore", "status": "fail", "time": "2026-01-02T03:04:05.678Z"}
            ],
        },
    }


def test_no_release_id_means_no_release_id_key():
    assert "releaseId" not in report(observe(SHIPPED, "001", "002", "003"), release_id=None)
    assert liveness_report(Release(SHIPPED)) == {"status": "pass"}
    assert liveness_report(Release(SHIPPED, release_id="r1")) == {"status": "pass", "releaseId": "r1"}


def test_the_check_is_one_read_only_transaction_with_local_timeouts():
    statement = check_statement(TrackingTable.parse("app.schema_migrations"), 2.0)
    assert statement.startswith("BEGIN READ ONLY;") and statement.endswith("; COMMIT")
    assert "SET LOCAL statement_timeout = 1600" in statement and "SET LOCAL lock_timeout = 800" in statement
    assert 'FROM "app"."schema_migrations" AS t' in statement


# -- reading the tracking table as JSON rows ---------------------------------------
def test_json_rows_of_a_legacy_table_read_like_the_catalogue_path():
    rows = [
        {"version": 1, "name": "a", "applied_at": "2024-05-01T10:00:00.5+00:00"},
        {"version": "002", "name": "b", "applied_at": None},
        {"version": "not-a-version", "name": "x", "applied_at": None},
    ]
    result = from_json_rows(rows)
    assert result.exists and result.missing_columns == ["checksum", "execution_ms", "applied_by"]
    assert [str(r.version) for r in result.rows] == ["1", "002"]
    assert result.rows[0].applied_at == datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert result.unreadable_versions == ["not-a-version"]


def test_json_rows_keep_the_checksummed_row_of_a_duplicated_version():
    rows = [
        {"version": "001", "name": "a", "checksum": None},
        {"version": "1", "name": "a", "checksum": "abc"},
    ]
    assert [r.checksum for r in from_json_rows(rows).rows] == ["abc"]


def test_json_rows_without_a_version_are_not_a_tracking_table():
    with pytest.raises(ValueError, match="no version column"):
        from_json_rows([{"id": 1}])


# -- the cache ------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting(delay: float = 0.0):
    calls: list[int] = []

    async def refresh() -> int:
        calls.append(len(calls) + 1)
        if delay:
            await asyncio.sleep(delay)
        return len(calls)

    return refresh, calls


def test_the_cache_reuses_a_value_for_its_ttl_and_says_for_how_long():
    async def scenario():
        clock = Clock()
        refresh, calls = counting()
        cache = ObservationCache(refresh, 2.0, clock)
        first = await cache.get()
        clock.now += 1.5
        second = await cache.get()
        clock.now += 0.6
        third = await cache.get()
        return first, second, third, calls

    first, second, third, calls = asyncio.run(scenario())
    assert first == (1, 2.0) and second == (1, pytest.approx(0.5)) and third == (2, 2.0)
    assert calls == [1, 2]


def test_concurrent_callers_share_one_refresh_even_without_a_ttl():
    async def scenario():
        refresh, calls = counting(delay=0.05)
        cache = ObservationCache(refresh, 0.0)
        values = await asyncio.gather(*(cache.get() for _ in range(50)))
        return values, calls

    values, calls = asyncio.run(scenario())
    assert calls == [1] and {value for value, _ in values} == {1}


def test_a_failed_refresh_does_not_wedge_the_cache():
    async def scenario():
        attempts = []

        async def refresh() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("boom")
            return "ok"

        cache = ObservationCache(refresh, 5.0)
        with pytest.raises(RuntimeError):
            await cache.get()
        return await cache.get()

    assert asyncio.run(scenario()) == ("ok", pytest.approx(5.0, abs=0.1))


@pytest.mark.parametrize(
    ("message", "sqlstate_class"),
    [
        ('connection failed: ... failed: FATAL:  password authentication failed for user "u"', "28"),
        ('connection failed: ... failed: FATAL:  role "u" does not exist', "28"),
        ('connection failed: ... failed: FATAL:  database "d" does not exist', "3D"),
        ("connection failed: ... failed: FATAL:  sorry, too many clients already", "53"),
        ("connection failed: ... failed: FATAL:  the database system is starting up", "57"),
        ("connection failed: ... failed: Connection refused", None),
    ],
)
def test_refused_connections_are_classified_from_the_server_message(message: str, sqlstate_class):
    import psycopg

    failure = classify(psycopg.OperationalError(message))
    assert failure.kind == "unreachable" and failure.sqlstate_class == sqlstate_class


def test_query_errors_keep_their_sqlstate():
    from psycopg import errors

    assert classify(errors.InsufficientPrivilege("denied")).kind == "query"
    assert classify(errors.QueryCanceled("statement timeout")).kind == "timeout"
