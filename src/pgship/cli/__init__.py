"""The ``pgship`` command line: parse arguments, call the library, render the result, exit.

One module per command (``pgship.cli.migrate``...), listed with its summary in
:mod:`pgship.cli.registry` and imported only when it runs; the options several commands share
are defined once in :mod:`pgship.cli.options`, the rendering in :mod:`pgship.cli.render`.
``main(argv)`` runs one command in process and returns its exit code; ``run()`` is the console
script (``pgship = "pgship.__main__:start"``).
"""

from __future__ import annotations

from pgship.cli.context import Context
from pgship.cli.entry import build_parser, main, run
from pgship.cli.registry import COMMANDS, CommandSpec

__all__ = ["COMMANDS", "CommandSpec", "Context", "build_parser", "main", "run"]
