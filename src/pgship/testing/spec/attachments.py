"""What each scenario attaches to the report, always scrubbed of secrets.

Steps call these helpers instead of ``allure.attach`` so that nothing reaches
the report without passing the scrubber, and attachment names stay uniform
(a reader learns once where to find "the command" or "the SQL").
Outside an Allure run (for example ``behave -f pretty``) they do nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import allure
from allure_commons.types import AttachmentType

from pgship.testing.spec.commands import CommandResult, format_transcript
from pgship.testing.spec.secrets import Scrubber

_scrubber = Scrubber()


def scrubber() -> Scrubber:
    """The run's scrubber; the harness adds the server's password to it at start."""
    return _scrubber


def attach_text(name: str, text: str) -> None:
    allure.attach(_scrubber(text), name=name, attachment_type=AttachmentType.TEXT)


def attach_command(result: CommandResult) -> None:
    """The command line, exit code, duration and output of one pgship command."""
    allure.attach(
        format_transcript(result, _scrubber), name=result.display(), attachment_type=AttachmentType.TEXT
    )


def attach_sql(path: Path, *, name: str | None = None) -> None:
    """A migration file as shipped (the SQL a reader wants to see next to the outcome).

    A file that is not UTF-8 (a scenario about exactly that) is shown with its bad bytes replaced.
    """
    allure.attach(
        _scrubber(path.read_text(encoding="utf-8", errors="replace")),
        name=name or path.name,
        attachment_type=AttachmentType.TEXT,
        extension="sql",
    )


def attach_json(name: str, document: Any) -> None:
    """A JSON document (a health response, a status report), pretty-printed."""
    text = (
        document if isinstance(document, str) else json.dumps(document, indent=2, sort_keys=True, default=str)
    )
    allure.attach(_scrubber(text), name=name, attachment_type=AttachmentType.JSON)


def files_written_since(runner: Any, since: float) -> list[Path]:
    """The attachment files this run's Allure formatter wrote from ``since`` (a ``time.time()``) on.

    For scenarios that check what the report itself shows. Fails when no Allure
    formatter is active: an empty list would make such a check pass vacuously.
    """
    for formatter in getattr(runner, "formatters", []):
        folder = getattr(formatter, "results_dir", None)
        if folder is not None:
            return [path for path in Path(folder).glob("*-attachment*") if path.stat().st_mtime >= since - 1]
    raise AssertionError(
        "the Allure formatter is not active in this run, so there are no attachments to scan"
    )
