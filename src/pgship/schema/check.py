"""The schema comparison a long-running process can afford: replay once, compare on request.

``/health/database?schema=1`` uses it. The shipped migrations do not change
while the server runs, so the schema they build is replayed once (about a
second, on the first request) and kept; each request then reads only the live
catalogs (tens of milliseconds) and compares. What it returns is made for a
health response: the differences in words, no definitions, no SQL, no host.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgship.errors import PgshipError

if TYPE_CHECKING:
    from pgship.history import TrackingTable
    from pgship.migrations import Discovery
    from pgship.replay import ReplayOptions, ReplayResult
    from pgship.schema.model import Snapshot

MAX_LISTED = 50  # differences listed in one response; the count is always exact


@dataclass(frozen=True)
class SchemaVerdict:
    """The outcome of one comparison, ready to become a health check entry."""

    status: str  # pass | warn
    differences: list[str]
    count: int
    output: str = ""

    def to_check(self) -> dict[str, Any]:
        check: dict[str, Any] = {
            "componentType": "datastore",
            "status": self.status,
            "observedValue": self.count,
            "observedUnit": "differences",
            "differences": self.differences,
        }
        if self.output:
            check["output"] = self.output
        return check


class SchemaCheck:
    """Compares the live schema with the replayed migrations; one comparison at a time."""

    def __init__(
        self,
        url: str | None,
        discovery: Discovery,
        table: TrackingTable,
        options: ReplayOptions | None = None,
        *,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.url = url
        self.discovery = discovery
        self.table = table
        self.options = options
        self.connect_timeout_s = connect_timeout_s
        self._expected: Snapshot | None = None
        self.replay: ReplayResult | None = None  # the replay the expected schema came from
        self._unavailable: str | None = None
        self._lock = threading.Lock()

    def run(self) -> SchemaVerdict:
        """Blocking: call it from a worker thread. Never raises for database or replay trouble."""
        with self._lock:
            expected = self._expected_schema()
            if expected is None:
                return SchemaVerdict("warn", [], 0, f"schema comparison unavailable: {self._unavailable}")
            try:
                live = self._live_schema()
            except Exception as exc:  # reported generically: no host, no SQL
                sqlstate = getattr(exc, "sqlstate", None)
                reason = f"SQLSTATE class {sqlstate[:2]}" if sqlstate else type(exc).__name__
                return SchemaVerdict("warn", [], 0, f"could not read the live schema ({reason})")
        from pgship.schema.compare import compare

        result = compare(live, expected)
        messages = [difference.message for difference in result.differences]
        return SchemaVerdict("pass" if result.equal else "warn", messages[:MAX_LISTED], len(messages))

    def _expected_schema(self) -> Snapshot | None:
        if self._expected is None and self._unavailable is None:
            from pgship.schema import expected_snapshot

            try:
                self._expected, self.replay = expected_snapshot(self.discovery, self.table, self._options())
            except PgshipError as error:  # replay unavailable, or the migrations do not replay
                self._unavailable = error.kind.replace("_", " ")
        return self._expected

    def _options(self) -> ReplayOptions:
        """As given; on the embedded server with no major chosen, the live server's major."""
        from dataclasses import replace

        from pgship.replay import ReplayOptions

        options = self.options or ReplayOptions()
        if options.url is None and options.pg_version is None and options.match_url is None:
            options = replace(options, match_url=self.url)
        return options

    def _live_schema(self) -> Snapshot:
        from pgship.database import connect
        from pgship.schema.catalog import snapshot

        with connect(self.url, connect_timeout_s=self.connect_timeout_s) as conn:
            return snapshot(conn, self.table)
