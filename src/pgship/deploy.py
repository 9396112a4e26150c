"""The deploy pipeline: wait -> verify -> build -> migrate -> start -> health.

Every stage is timed and reported; the first failure stops the pipeline, so when
a migration fails the new release is never started. Ctrl-C or SIGTERM stops
cleanly: the migration in flight rolls back, a build or start command still
running is terminated, and the report says where it stopped.

Choices a real deploy needs, and why:

* **build runs before migrate.** The documented flow is build -> migrate -> start:
  a build that fails must leave the database untouched. It runs after ``wait`` and
  ``verify`` so a missing database or a bad file fails in seconds, not after a build.
* **a start command may return or keep running.** ``docker compose up -d`` returns
  once the containers run; ``pgship serve`` or ``./app`` stays in the foreground.
  The command starts in its own session (a Ctrl-C meant for the deploy never reaches
  it) with its output appended to a log file. If it exits within ``start_grace_s``,
  its exit code decides; if it is still running then, it *is* the service: it is
  left running when the deploy exits, and watched during the health stage (if it
  dies before the health check passes, the deploy fails with its exit code).
* **commands get the deploy's settings in their environment** (``DATABASE_URL``,
  ``PGSHIP_MIGRATIONS_DIR``, ``PGSHIP_TABLE``, ``PGSHIP_RELEASE_ID``), so a start
  command never needs a password on its command line, where ``ps`` would show it.
* **exit codes keep their meaning** (README.md): the deploy exits with the code of
  the error that stopped it: 3 database unreachable within the wait, 6 the database
  refused the connection for good (password, database, role), 2 invalid or refused
  files, 4 migration lock not acquired, 1 a migration, a command or the health gate
  failed, 130 interrupted.

One file although over 400 lines: :class:`Deployment` is the pipeline, its stages run in
order over one shared state (the deadline, the service it started, the report), and reading
them in that order is the point. The start command's scrubbed log is its own module
(:mod:`pgship.start_log`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgship.database import ConnectAttempt, connect, describe, scrub
from pgship.errors import Interrupted, PgshipError, StageFailed
from pgship.history import TrackingTable
from pgship.lease import DEFAULT_TTL_S
from pgship.locking import DIRECT_URL_ENV, ConnectionChoice, locking_runner
from pgship.migrations import Discovery, Version, discover, require_parsed
from pgship.planner import empty_directory_refusal
from pgship.runner import Event, EventSink, MigrateResult, Runner, RunOptions, raise_refusals
from pgship.start_log import open_private_log, start_scrubbing_relay

if TYPE_CHECKING:
    import psycopg

    from pgship.config import Settings

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
DEFAULT_START_LOG = Path(".pgship/start.log")


@dataclass
class StageResult:
    """How one stage went."""

    name: str
    status: str = SKIPPED  # ok | failed | skipped
    duration_ms: int = 0
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DeployOptions:
    """Everything a deploy does beyond the database settings."""

    wait_s: float = 60.0
    build_command: str | None = None
    start_command: str | None = None
    start_grace_s: float = 3.0
    start_log: Path = DEFAULT_START_LOG
    health_url: str | None = None
    health_timeout_s: float = 60.0
    health_interval_s: float = 0.5
    health_token: str | None = None
    accept_warn: bool = False
    release_id: str | None = None
    target: Version | None = None
    allow_out_of_order: bool = False
    allow_missing: bool = False
    allow_empty: bool = False  # a directory with no files, on a database with applied migrations
    run_options: RunOptions = field(default_factory=RunOptions)
    direct_url: str | None = None  # behind a transaction pooler (else PGSHIP_DIRECT_URL)
    lease_ttl_s: float = DEFAULT_TTL_S  # through a transaction pooler without a direct URL


@dataclass
class DeployReport:
    """What a deploy did, stage by stage; ``error`` is what stopped it."""

    stages: list[StageResult] = field(default_factory=list)
    error: PgshipError | None = None
    migrate: MigrateResult | None = None
    service_pid: int | None = None
    start_log: str | None = None
    duration_ms: int = 0

    @property
    def failed_stage(self) -> str | None:
        return next((s.name for s in self.stages if s.status == FAILED), None)

    @property
    def ok(self) -> bool:
        return self.error is None


# -- pure helpers --------------------------------------------------------------------
def health_verdict(
    status_code: int, body: str, *, release_id: str | None, accept_warn: bool = False
) -> tuple[bool, str]:
    """Whether a health answer lets the deploy pass, and a line describing it."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict) or "status" not in document:
        hint = " (is the bearer token set? PGSHIP_HEALTH_TOKEN)" if status_code == 401 else ""
        return False, f"HTTP {status_code}, not a health document{hint}"
    status = str(document["status"])
    answered = document.get("releaseId")
    description = f"HTTP {status_code}, status {status}"
    if document.get("output"):
        description += f" ({document['output']})"
    if answered is not None:
        description += f", releaseId {answered}"
    healthy = status == "pass" or (accept_warn and status == "warn")
    if healthy and release_id is not None and answered != release_id:
        return False, f"{description}, expected releaseId {release_id}"
    return healthy and status_code == 200, description


def display_url(url: str) -> str:
    """The URL without user information (a password may be in it)."""
    import httpx

    try:
        return str(httpx.URL(url).copy_with(userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid URL>"


def summary(report: DeployReport) -> str:
    """The last line a person reads."""
    seconds = report.duration_ms / 1000
    if report.ok:
        ran = ", ".join(f"{s.name} {format_duration(s.duration_ms)}" for s in report.stages if s.status == OK)
        return f"Deployed in {seconds:.1f} s ({ran})."
    not_run = [s.name for s in report.stages if s.status == SKIPPED and s.detail.startswith("not run")]
    after = f"; not run: {', '.join(not_run)}" if not_run else ""
    return f"Deploy failed at the {report.failed_stage} stage after {seconds:.1f} s{after}."


def format_duration(ms: int) -> str:
    """``850 ms`` or ``3.2 s``."""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


# -- the pipeline ----------------------------------------------------------------------
class Deployment:
    """Runs the stages in order against one database connection."""

    def __init__(
        self,
        settings: Settings,
        options: DeployOptions,
        *,
        on_event: EventSink | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.options = options
        self.emit = on_event or (lambda event: None)
        self.secrets = [s for s in secrets if s]
        self.report = DeployReport()
        self.conn: psycopg.Connection | None = None
        self.discovery: Discovery | None = None
        self.service: subprocess.Popen[bytes] | None = None
        self.relay: subprocess.Popen[bytes] | None = None

    # -- orchestration ---------------------------------------------------------
    def run(self) -> DeployReport:
        """Run every stage; never raises (the report carries the error)."""
        options = self.options
        plan = [
            ("wait", self._wait, None),
            ("verify", self._verify, None),
            ("build", self._build, None if options.build_command else "no --build command"),
            ("migrate", self._migrate, None),
            ("start", self._start, None if options.start_command else "no --start command"),
            ("health", self._health, None if options.health_url else "no --health-url"),
        ]
        started = time.perf_counter()
        try:
            for name, action, skip_reason in plan:
                result = StageResult(name)
                self.report.stages.append(result)
                if self.report.error is not None:
                    result.detail = f"not run: the {self.report.failed_stage} stage failed"
                    continue
                if skip_reason:
                    result.detail = skip_reason
                    self.emit(Event("stage_end", f"{name}: skipped ({skip_reason})", {"stage": result}))
                    continue
                self._run_stage(result, action)
        finally:
            if self.conn is not None:
                with suppress(Exception):
                    self.conn.close()
            self.report.duration_ms = _ms_since(started)
        return self.report

    def _run_stage(self, result: StageResult, action: Any) -> None:
        self.emit(Event("stage_begin", self._announcement(result.name), {"stage": result}))
        started = time.perf_counter()
        try:
            result.detail = action()
            result.status = OK
        except PgshipError as error:
            result.status, result.detail = FAILED, error.message
            self.report.error = error
        except KeyboardInterrupt:
            result.status, result.detail = FAILED, "interrupted"
            self.report.error = Interrupted(
                f"interrupted during the {result.name} stage",
                hint="Stages before it completed; nothing after it ran. Run `pgship deploy` again.",
            )
        finally:
            result.duration_ms = _ms_since(started)
            self.emit(Event("stage_end", f"{result.name}: {result.status}", {"stage": result}))

    def _announcement(self, name: str) -> str:
        options = self.options
        if name == "wait":
            return f"database {describe(self.settings.database_url)} (waiting up to {options.wait_s:g} s)"
        if name == "verify":
            return f"migration files in {self.settings.migrations_dir}"
        if name == "build":
            return f"$ {self._clean(options.build_command or '')}"
        if name == "start":
            return f"$ {self._clean(options.start_command or '')}"
        if name == "health":
            release = f", releaseId {options.release_id}" if options.release_id else ""
            return (
                f"GET {display_url(options.health_url or '')} until it reports pass{release} "
                f"(up to {options.health_timeout_s:g} s)"
            )
        return f"applying pending migrations to {describe(self.settings.database_url)}"

    # -- stages ----------------------------------------------------------------
    def _wait(self) -> str:
        def on_retry(attempt: ConnectAttempt) -> None:
            if attempt.attempt == 1 or attempt.attempt % 10 == 0:
                self.emit(
                    Event(
                        "connect_retry",
                        f"database not ready ({attempt.error.splitlines()[0]}); "
                        f"retrying for {attempt.remaining_s:.0f} s more",
                    )
                )

        self.conn = connect(
            self.settings.database_url,
            wait_s=self.options.wait_s,
            on_retry=on_retry,
            named=self.settings.has_database,
        )
        version = self.conn.info.parameter_status("server_version")
        return f"accepting connections (PostgreSQL {version})"

    def _runner(self) -> Runner:
        assert self.conn is not None
        return Runner(
            self.conn,
            TrackingTable.parse(self.settings.table),
            options=self.options.run_options,
            on_event=self.emit,
        )

    def _plan_options(self) -> dict[str, Any]:
        return {
            "target": self.options.target,
            "allow_out_of_order": self.options.allow_out_of_order,
            "allow_missing": self.options.allow_missing,
        }

    def _verify(self) -> str:
        self.discovery = discover(self.settings.migrations_dir)
        for warning in self.discovery.warnings:
            self.emit(Event("warning", warning))
        require_parsed(self.discovery.migrations)
        plan = self._runner().plan(self.discovery, **self._plan_options())
        refusal = None if self.options.allow_empty else empty_directory_refusal(self.discovery, plan)
        if refusal is not None:
            plan.refusals.append(refusal)
        raise_refusals(plan)
        for warning in plan.warnings:
            self.emit(Event("warning", warning))
        pending = [str(m.version) for m in plan.to_apply]
        files = len(self.discovery.migrations)
        return (
            f"{files} migration file{'s' if files != 1 else ''} valid; "
            f"{len(pending)} to apply{': ' + ', '.join(pending) if pending else ''}"
        )

    def _connection_chosen(self, choice: ConnectionChoice) -> None:
        if choice.note:  # only when not direct: the lock and the session model differ behind a pooler
            self.emit(Event("connection", choice.note, choice.to_json()))

    def _migrate(self) -> str:
        assert self.discovery is not None and self.conn is not None
        try:
            with locking_runner(
                self.conn,
                url=self.settings.database_url,
                direct_url=self.options.direct_url or os.environ.get(DIRECT_URL_ENV) or None,
                table=TrackingTable.parse(self.settings.table),
                lease_ttl_s=self.options.lease_ttl_s,
                make_runner=lambda conn, **locking: Runner(
                    conn,
                    TrackingTable.parse(self.settings.table),
                    options=self.options.run_options,
                    on_event=self.emit,
                    **locking,
                ),
                on_choice=self._connection_chosen,
                named=self.settings.has_database,
            ) as (runner, _):
                result = runner.migrate(self.discovery, **self._plan_options())
        except PgshipError as error:
            if isinstance(error.partial_result, MigrateResult):
                self.report.migrate = error.partial_result
            raise
        self.report.migrate = result
        if not result.applied:
            return f"nothing to apply ({result.already_applied} already applied)"
        versions = ", ".join(a.version for a in result.applied)
        count = len(result.applied)
        latest = result.applied[-1].version
        if self.options.allow_out_of_order:  # an older file applied: the newest may be another one
            with suppress(PgshipError):
                latest = str(max(row.version for row in self._runner().read_history().rows))
        return (
            f"applied {count} migration{'s' if count != 1 else ''} ({versions}) in "
            f"{format_duration(result.duration_ms)}; database at {latest}"
        )

    def _build(self) -> str:
        command = self.options.build_command or ""
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._environment(),
            start_new_session=True,
            text=True,
            errors="replace",
        )
        tail: deque[str] = deque(maxlen=20)
        try:
            assert process.stdout is not None
            for line in process.stdout:
                line = self._clean(line.rstrip("\n"))
                tail.append(line)
                self.emit(Event("output", line, {"stage": "build"}))
            code = process.wait()
        except BaseException:
            _terminate(process)
            raise
        if code != 0:
            raise StageFailed(
                f"the build command exited with code {code}",
                hint="Nothing was migrated or started. Fix the build and deploy again.",
                output=list(tail),
            )
        return "the build command finished (exit 0)"

    def _start(self) -> str:
        command = self.options.start_command or ""
        log_path = self.options.start_log
        self.report.start_log = str(log_path)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with open_private_log(log_path) as log:
            log.write(f"\n=== pgship deploy {stamp}: $ {self._clean(command)}\n".encode())
        # The command's output reaches the log through a scrubber of its own, which outlives this
        # deploy as long as the service writes: a start command that prints its environment (or a
        # crash dump of it) never puts the password on disk.
        relay, pipe = start_scrubbing_relay(log_path, self.secrets)
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=pipe,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                start_new_session=True,
            )
        except BaseException:
            os.close(pipe)
            relay.wait()
            raise
        os.close(pipe)
        self.relay = relay
        try:
            code = process.wait(timeout=self.options.start_grace_s)
        except subprocess.TimeoutExpired:
            self.service = process
            self.report.service_pid = process.pid
            return f"running in the background (pid {process.pid}); output in {log_path}"
        except BaseException:
            _terminate(process)
            raise
        self._drain_relay()
        if code != 0:
            raise StageFailed(
                f"the start command exited with code {code}",
                hint=f"The migrations stay applied. See {log_path}, fix the command and deploy again.",
                output=self._log_tail(log_path),
            )
        return f"the start command finished (exit 0); output in {log_path}"

    def _health(self) -> str:
        import httpx

        options = self.options
        url = options.health_url or ""
        headers = {"Authorization": f"Bearer {options.health_token}"} if options.health_token else {}
        deadline = time.monotonic() + options.health_timeout_s
        last = "no answer yet"
        with httpx.Client(timeout=5.0, headers=headers) as client:
            while True:
                self._check_service()
                try:
                    response = client.get(url)
                    healthy, last = health_verdict(
                        response.status_code,
                        response.text,
                        release_id=options.release_id,
                        accept_warn=options.accept_warn,
                    )
                    if healthy:
                        return last
                except httpx.HTTPError as exc:
                    last = f"no answer ({type(exc).__name__})"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    release = f" for release {options.release_id}" if options.release_id else ""
                    raise StageFailed(
                        f"{display_url(url)} did not report pass{release} within "
                        f"{options.health_timeout_s:g} s; last answer: {self._clean(last)}",
                        hint="The migrations stay applied and the service keeps running: check its "
                        "log and `GET /health/database`, then fix forward or roll the application back.",
                    )
                time.sleep(min(options.health_interval_s, remaining))

    def _check_service(self) -> None:
        """Fail the health stage at once if the service started by --start has died."""
        if self.service is None:
            return
        code = self.service.poll()
        if code is None:
            return
        log = self.options.start_log
        self.service = None
        self._drain_relay()
        raise StageFailed(
            f"the service started by --start exited with code {code} before it was healthy",
            hint=f"See {log}. The migrations stay applied; fix the service and deploy again.",
            output=self._log_tail(log),
        )

    # -- helpers ---------------------------------------------------------------
    def _drain_relay(self, timeout_s: float = 5.0) -> None:
        """Let the scrubber write the last of a finished command's output before the log is read.

        A daemon the command left behind may hold the pipe open: then the log is read as it is.
        """
        if self.relay is not None:
            with suppress(subprocess.TimeoutExpired):
                self.relay.wait(timeout=timeout_s)

    def _environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        settings = self.settings
        if settings.database_url:
            environment["DATABASE_URL"] = settings.database_url
        environment["PGSHIP_MIGRATIONS_DIR"] = str(settings.migrations_dir)
        environment["PGSHIP_TABLE"] = settings.table
        if self.options.release_id:
            environment["PGSHIP_RELEASE_ID"] = self.options.release_id
        return environment

    def _clean(self, text: str) -> str:
        return scrub(text, self.secrets)

    def _log_tail(self, path: Path, lines: int = 20) -> list[str]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        return [self._clean(line) for line in text.splitlines()[-lines:]]


def _terminate(process: subprocess.Popen[Any]) -> None:
    """Stop a command pgship started, and everything it started (its session)."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
