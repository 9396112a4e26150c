"""The specification's run: one server, one template, and a fresh world per scenario.

``environment.py`` is a thin layer of behave hooks over this class, so the
same machinery is used by the hooks, by ``bench/spec_overhead.py`` and by
pytest tests of the harness itself.
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pgship
from pgship.testing.pgbouncer import PgBouncer, PoolMode
from pgship.testing.server import PostgresServer
from pgship.testing.spec import attachments
from pgship.testing.spec.backends import BackendChoice, choose_backend, create_server
from pgship.testing.spec.cleanup import CleanupRegistry
from pgship.testing.spec.commands import IN_PROCESS, PgshipCli
from pgship.testing.spec.databases import ScenarioDatabases
from pgship.testing.spec.runinfo import RUN
from pgship.testing.spec.secrets import password_of
from pgship.testing.spec.workspace import Workspace
from pgship.testing.spec.world import ScenarioWorld


@dataclass
class SpecSession:
    """Owns the run's server and template database; hands each scenario a :class:`ScenarioWorld`."""

    choice: BackendChoice
    clone_strategy: str | None = None
    prefetch: bool = True
    command_mode: str = IN_PROCESS
    server: PostgresServer | None = None
    databases: ScenarioDatabases | None = None
    startup_seconds: float = 0.0
    #: milliseconds each scenario spent in begin_scenario + end_scenario (the isolation it waited for)
    isolation_ms: list[float] = field(default_factory=list)
    #: PgBouncers of this run by pool mode, started on first use (the embedded+pgbouncer backend's at start)
    poolers: dict[str, PgBouncer] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @classmethod
    def from_userdata(cls, userdata: Mapping[str, str]) -> SpecSession:
        """Settings from ``behave -D ...`` (and the environment, for the backend)."""
        choice = choose_backend(userdata)
        embedded = choice.name in ("embedded", "embedded+pgbouncer")
        strategy = userdata.get("clone_strategy") or ("file_copy" if embedded else None)
        if strategy == "default":
            strategy = None
        prefetch = str(userdata.get("prefetch", "true")).lower() not in ("0", "false", "no", "off")
        return cls(
            choice, clone_strategy=strategy, prefetch=prefetch, command_mode=userdata.get("cli", IN_PROCESS)
        )

    def start(self) -> SpecSession:
        """Start (or reach) the server, prepare the template, describe the run for the report."""
        started = time.perf_counter()
        try:
            server = create_server(self.choice)
            self.server = self._stack.enter_context(server)
            attachments.scrubber().add(password_of(self.server.admin_url))
            self.databases = ScenarioDatabases(
                self.server, strategy=self.clone_strategy, prefetch=self.prefetch
            )
            self._stack.callback(self.databases.close)
            self.databases.prepare_template()
            self.databases.settle()  # the first scenario's clone is part of start-up, not of that scenario
            if self.choice.pool_mode:
                self.pooler(self.choice.pool_mode)
        except BaseException:
            self._stack.close()
            raise
        self.startup_seconds = time.perf_counter() - started
        RUN.environment.update(
            {
                "PostgreSQL": self.server.server_version(),
                "Backend": self.choice.describe(),
                "pgship": pgship.__version__,
                "Python": platform.python_version(),
                "Clone strategy": (self.databases.strategy or "server default").upper(),
            }
        )
        return self

    def pooler(self, mode: PoolMode) -> PgBouncer:
        """This run's PgBouncer in ``mode`` in front of the server, started once, on first use."""
        if self.server is None:
            raise RuntimeError("the specification session has not started")
        if mode not in self.poolers:
            self.poolers[mode] = self._stack.enter_context(
                PgBouncer(self.server.admin_url, pool_mode=mode, pool_size=8)
            )
        return self.poolers[mode]

    def begin_scenario(self) -> ScenarioWorld:
        """A fresh database and workspace; on any failure, whatever was made is released again."""
        if self.server is None or self.databases is None:
            raise RuntimeError("the specification session has not started")
        started = time.perf_counter()
        cleanup = CleanupRegistry()
        try:
            databases = self.databases
            name = databases.take()
            cleanup.callback(f"database {name}", lambda: databases.release(name))
            workspace = Workspace()
            cleanup.closeable(workspace, f"workspace {workspace.root}")
            direct_url = self.databases.url(name)
            url = direct_url
            if self.choice.pool_mode:  # the scenario's database URL goes through the run's pooler
                url = self.pooler(self.choice.pool_mode).url_for(name)
            cli = PgshipCli(
                database_url=url,
                migrations_dir=workspace.migrations_dir,
                cwd=workspace.root,
                mode=self.command_mode,
                on_result=attachments.attach_command,
                on_process=cleanup.process,
            )
            world = ScenarioWorld(
                server=self.server,
                database_name=name,
                database_url=url,
                direct_url=direct_url,
                pooler_mode=self.choice.pool_mode,
                workspace=workspace,
                cleanup=cleanup,
                cli=cli,
            )
        except BaseException:
            cleanup.close()
            raise
        world.facts["_isolation_ms"] = (time.perf_counter() - started) * 1000
        return world

    def end_scenario(self, world: ScenarioWorld) -> None:
        """Release everything the scenario registered (its processes, workspace and database)."""
        started = time.perf_counter()
        try:
            world.cleanup.close()
        finally:
            spent = world.facts.get("_isolation_ms", 0.0) + (time.perf_counter() - started) * 1000
            self.isolation_ms.append(spent)

    def write_timings(self, path: str) -> None:
        """Start-up and per-scenario isolation times as JSON (``-D pgship.timings=FILE``, used by bench/)."""
        document = {"startup_ms": self.startup_seconds * 1000, "isolation_ms": self.isolation_ms}
        Path(path).write_text(json.dumps(document), encoding="utf-8")

    def close(self) -> None:
        """Drop the run's databases and stop the server if this run started it."""
        self._stack.close()
        self.server = None
        self.databases = None
