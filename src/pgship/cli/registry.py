"""Every ``pgship`` command in one table: name -> the module that implements it, and its summary.

Parsing finds the command's name first and imports only that command's module
(:func:`load`): ``pgship migrate`` never loads the web server, ``pgship --help``
lists every command from this table without importing any. A command module has:

* ``DESCRIPTION``: the text of ``pgship COMMAND --help`` (and optionally ``EPILOG``);
* ``add_arguments(parser)``: its options;
* ``run(ctx) -> int``: the handler, given a :class:`pgship.cli.context.Context`.

Commands that need an optional extra (``pgship[serve]``) name it here, so a missing
package is a clear usage error (exit 2), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgship.cli.context import Context


@dataclass(frozen=True)
class Extra:
    """An optional dependency group of ``pyproject.toml``: ``pip install 'pgship[NAME]'``."""

    name: str
    what: str  # "the optional web server"
    modules: tuple[str, ...]  # the importable packages it provides

    def missing(self) -> list[str]:
        """The modules of this extra that cannot be imported here (without importing them)."""
        absent = []
        for module in self.modules:
            try:
                found = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                found = None
            if found is None:
                absent.append(module)
        return absent

    def message(self, command: str) -> str:
        return f"pgship {command} needs {self.what}: pip install 'pgship[{self.name}]'"


#: The web server of ``pgship serve`` (health endpoints) and the HTTP client of deploy's health gate.
SERVE_EXTRA = Extra("serve", "the optional web server", ("starlette", "uvicorn", "psycopg_pool"))
HTTP_CLIENT_EXTRA = Extra("serve", "the optional HTTP client", ("httpx",))


@dataclass(frozen=True)
class CommandSpec:
    """One row of the table: where the command lives, what ``pgship --help`` says about it."""

    module: str
    summary: str
    aliases: tuple[str, ...] = ()
    needs: Extra | None = None  # checked before the command runs (its --help works without it)


COMMANDS: dict[str, CommandSpec] = {
    "status": CommandSpec("pgship.cli.status", "show every migration and its state"),
    "migrate": CommandSpec("pgship.cli.migrate", "apply pending migrations", aliases=("up",)),
    "plan": CommandSpec("pgship.cli.plan", "show what migrate would do, without changing anything"),
    "verify": CommandSpec(
        "pgship.cli.verify", "check the migration files (and, with a database, their checksums)"
    ),
    "diff": CommandSpec(
        "pgship.cli.diff", "compare the live database's schema with what the migrations build"
    ),
    "new": CommandSpec("pgship.cli.new", "create the next migration file from the template"),
    "baseline": CommandSpec(
        "pgship.cli.baseline", "record migrations up to VERSION as applied without running them"
    ),
    "repair": CommandSpec("pgship.cli.repair", "accept the current checksum of edited migrations"),
    "wait": CommandSpec("pgship.cli.wait", "wait until the database accepts connections"),
    "serve": CommandSpec("pgship.cli.serve", "serve the health endpoints over HTTP", needs=SERVE_EXTRA),
    "deploy": CommandSpec(
        "pgship.cli.deploy", "wait, verify, build, migrate, start and health-check a release"
    ),
    "review": CommandSpec(
        "pgship.review.command", "review what the pending migrations will lock, rewrite and scan"
    ),
}


@dataclass(frozen=True)
class Command:
    """A command module, loaded: what its parser and handler need."""

    name: str
    spec: CommandSpec
    description: str
    epilog: str | None
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Context], int]


def command_name(word: str) -> str | None:
    """The command ``word`` names (itself or an alias), or None."""
    if word in COMMANDS:
        return word
    return next((name for name, spec in COMMANDS.items() if word in spec.aliases), None)


def load(name: str) -> Command:
    """Import the module of command ``name`` (and nothing else)."""
    spec = COMMANDS[name]
    module: Any = importlib.import_module(spec.module)
    return Command(
        name=name,
        spec=spec,
        description=module.DESCRIPTION,
        epilog=getattr(module, "EPILOG", None),
        add_arguments=module.add_arguments,
        run=module.run,
    )


__all__ = [
    "COMMANDS",
    "HTTP_CLIENT_EXTRA",
    "SERVE_EXTRA",
    "Command",
    "CommandSpec",
    "Extra",
    "command_name",
    "load",
]
