"""What every command handler gets (:class:`Context`), and the parser that raises instead of exiting."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from pgship import config
from pgship.database import ConnectAttempt, connect, describe
from pgship.errors import UsageError
from pgship.history import TrackingTable
from pgship.migrations import Discovery, discover
from pgship.output import Output
from pgship.runner import Event, Runner, RunOptions

if TYPE_CHECKING:
    from pgship.locking import ConnectionChoice


class BadArguments(Exception):
    """The command line cannot be parsed (raised instead of argparse's print-and-exit)."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse, except that an error is raised, so ``main`` reports it like any bad input (JSON too)."""

    def error(self, message: str) -> NoReturn:
        raise BadArguments(self, message)


class Context:
    """What every command gets: parsed arguments, resolved settings and the output."""

    def __init__(self, args: argparse.Namespace, settings: config.Settings, out: Output) -> None:
        self.args = args
        self.settings = settings
        self.out = out
        self.connection: ConnectionChoice | None = None  # how a locking command reached the server

    @property
    def table(self) -> TrackingTable:
        try:
            return TrackingTable.parse(self.settings.table)
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def discover(self) -> Discovery:
        discovery = discover(self.settings.migrations_dir)
        for warning in discovery.warnings:
            self.out.warn(warning)
        return discovery

    def connect(self, wait_s: float | None = None) -> Any:
        wait = getattr(self.args, "wait", 0.0) if wait_s is None else wait_s

        def on_retry(attempt: ConnectAttempt) -> None:
            if attempt.attempt == 1 or attempt.attempt % 5 == 0:
                self.out.warn(
                    f"database not ready ({attempt.error.splitlines()[0]}); retrying for "
                    f"{attempt.remaining_s:.0f} s more"
                )

        return connect(
            self.settings.database_url, wait_s=wait, on_retry=on_retry, named=self.settings.has_database
        )

    @contextlib.contextmanager
    def locking_runner(self, options: RunOptions | None = None) -> Iterator[tuple[Runner, Any]]:
        """A runner for a command that takes the migration lock, and its connection (see
        :func:`pgship.locking.locking_runner`: direct, through a pooler, or refused)."""
        from pgship.config import LEASE_TTL_S as DEFAULT_TTL_S
        from pgship.locking import locking_runner

        def chosen(choice: ConnectionChoice) -> None:
            self.connection = choice
            if choice.note and not self.out.as_json:
                self.out.line(choice.note)

        with (
            self.connect() as conn,
            locking_runner(
                conn,
                url=self.settings.database_url,
                direct_url=config.direct_url(getattr(self.args, "direct_url", None)),
                table=self.table,
                lease_ttl_s=getattr(self.args, "lease_ttl", DEFAULT_TTL_S),
                make_runner=lambda c, **locking: self.runner(c, options, **locking),
                on_choice=chosen,
                named=self.settings.has_database,
                wait_s=getattr(self.args, "wait", 0.0),
            ) as (runner, used),
        ):
            yield runner, used

    def runner(self, conn: Any, options: RunOptions | None = None, **locking: Any) -> Runner:
        target = describe(self.settings.database_url)

        def on_event(event: Event) -> None:
            if event.kind == "plan":  # name the database before changing it: logs show where it ran
                table = event.data.get("table", self.settings.table)  # resolved: schema-qualified
                event = Event("plan", f"{target} ({table}): {event.message}", event.data)
            self.out.event(event)
            for message in event.data.get("messages", ()) if event.kind == "applied" else ():
                self.out.line(f"    {message['severity']}: {message['message']}")  # RAISE WARNING/NOTICE

        return Runner(conn, self.table, options=options, on_event=on_event, **locking)

    def header(self) -> dict[str, Any]:
        header = {
            "command": self.args.command,
            "database": describe(self.settings.database_url),
            "table": str(self.settings.table),
            "migrations_dir": str(self.settings.migrations_dir),
        }
        if self.connection is not None:
            header["connection"] = self.connection.to_json()
        return header


__all__ = ["BadArguments", "Context", "Parser"]
