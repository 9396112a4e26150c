"""Everything pgship prints goes through here: plain lines, a live progress bar, or one JSON document.

Every string is scrubbed of the connection's passwords on its way out, so a
secret can only leak by bypassing this module. ``rich`` is imported only when
a terminal will show its progress bar: pipes and CI logs get plain lines and a
faster start.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from pgship.database import scrub
from pgship.errors import InvalidMigrations, MigrationFailed, PgshipError

if TYPE_CHECKING:
    from pgship.runner import Event  # only its shape: the output layer does not depend on the runner

# Control characters other than newline and tab, as they could arrive from a file's text or a server
# message: shown escaped, so a hostile migration cannot drive the terminal or garble a CI log.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class Output:
    """Renders results and errors for humans (default) or as JSON (``--json``)."""

    def __init__(
        self,
        *,
        as_json: bool = False,
        secrets: Iterable[str] = (),
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.as_json = as_json
        self.secrets = list(secrets)
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._progress: Any = None
        self._task: Any = None
        self.interactive = (not as_json) and _isatty(self.stdout)

    # -- plain text ----------------------------------------------------------------
    def clean(self, text: str) -> str:
        text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)
        return scrub(text, self.secrets)

    def line(self, text: str = "") -> None:
        """A line of human output (nothing in JSON mode)."""
        if self.as_json:
            return
        if self._progress is not None:
            self._progress.console.print(self.clean(text), markup=False, highlight=False)
        else:
            print(self.clean(text), file=self.stdout, flush=True)

    def warn(self, text: str) -> None:
        if not self.as_json:
            print(self.clean(f"warning: {text}"), file=self.stderr, flush=True)

    def note(self, text: str) -> None:
        """A diagnostic line on stderr, scrubbed, in text and JSON mode alike (stdout stays the document)."""
        print(self.clean(text), file=self.stderr, flush=True)

    def document(self, payload: dict[str, Any]) -> None:
        """The JSON result of a command (only in JSON mode)."""
        if self.as_json:
            text = json.dumps(payload, indent=2, default=str, ensure_ascii=False)
            text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)  # JSON escapes only below 0x20
            print(scrub(text, self.secrets), file=self.stdout, flush=True)

    # -- progress ------------------------------------------------------------------
    def event(self, event: Event) -> None:
        """Render a runner event: a progress bar on a terminal, a line otherwise."""
        if self.as_json:
            return
        if event.kind == "start":
            if self.interactive:
                self._advance_bar(event)
            return
        if event.kind == "applied":
            self.line(f"  applied  {event.data['file']}  ({event.data['execution_ms']} ms)")
            if self._progress is not None:
                self._progress.advance(self._task)
                if event.data.get("index") == event.data.get("total"):
                    self.stop_progress()
            return
        if event.kind == "lock":
            return
        if event.kind == "plan":
            self.line(event.message)
            return
        if event.kind in ("lock_wait", "retry", "connect_retry"):
            self.warn(event.message)
            return
        self.line(f"  {event.message}")

    def _advance_bar(self, event: Event) -> None:
        if self._progress is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]migrating"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("", total=event.data.get("total"))
        self._progress.update(self._task, description=self.clean(event.data.get("file", "")))

    def stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # -- errors --------------------------------------------------------------------
    def error(self, error: PgshipError, payload: dict[str, Any] | None = None) -> None:
        """Report an error: to stderr for humans, inside the JSON document otherwise."""
        self.stop_progress()
        if self.as_json:
            document = dict(payload or {})
            document["status"] = status_for(error)
            document["error"] = error.to_dict()
            self.document(document)
            return
        lines = [f"error: {error.message}"]
        if isinstance(error, InvalidMigrations):
            for problem in error.problems:
                lines.append(f"  {problem.location()}: {problem.message}")
                if problem.fix:
                    lines.append(f"      fix: {problem.fix}")
        if isinstance(error, MigrationFailed):
            details = error.details
            if details.detail:
                lines.append(f"  detail: {details.detail}")
            if details.hint:
                lines.append(f"  server hint: {details.hint}")
            if details.statement:
                first = details.statement.strip().splitlines()[0]
                lines.append(
                    f"  statement: {first[:160]}{' ...' if len(details.statement) > len(first) else ''}"
                )
        if error.hint:
            lines.append(f"  {error.hint}")
        print(self.clean("\n".join(lines)), file=self.stderr, flush=True)


@contextmanager
def library_output(out: Output, *, debug: bool = False, restore: bool = True) -> Iterator[None]:
    """Route what libraries print on their own through ``out``'s scrubber, for one command.

    psycopg logs "error ignored terminating <psycopg.Pipeline [BAD] host=... user=...>" and the like
    while it cleans up after a failure (on its ``psycopg`` logger, which Python's last-resort handler
    would print raw to stderr), and ``__del__`` methods report "Exception ignored in ...". None of it
    tells a user anything the error does not: it is dropped, or with ``debug`` printed scrubbed.
    Python warnings (shown only when asked for, ``-W``) are printed scrubbed. ``restore=False``
    keeps the routing until the process exits, for finalizers that run after the command.
    """
    import logging
    import warnings

    logger = logging.getLogger("psycopg")
    handler = _ScrubbingHandler(out, show=debug)
    saved_propagate, saved_level = logger.propagate, logger.level
    saved_showwarning, saved_unraisable = warnings.showwarning, sys.unraisablehook

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        out.note(f"{filename}:{lineno}: {category.__name__}: {message}")

    def unraisable(info: Any) -> None:
        if debug:
            out.note(f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: {info.exc_value!r}")

    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    warnings.showwarning = showwarning
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        if restore:
            _restore(logger, handler, saved_propagate, saved_level, saved_showwarning, saved_unraisable)


def _restore(logger: logging.Logger, handler: logging.Handler, *saved: Any) -> None:
    import warnings

    saved_propagate, saved_level, saved_showwarning, saved_unraisable = saved
    logger.removeHandler(handler)
    logger.propagate, logger.level = saved_propagate, saved_level
    warnings.showwarning, sys.unraisablehook = saved_showwarning, saved_unraisable


class _ScrubbingHandler(logging.Handler):
    """A log handler that prints (scrubbed) through an :class:`Output`, or drops the record."""

    def __init__(self, out: Output, *, show: bool) -> None:
        super().__init__()
        self.out, self.show = out, show

    def emit(self, record: logging.LogRecord) -> None:
        if self.show:
            self.out.note(f"{record.name}: {record.getMessage()}")


def status_for(error: PgshipError) -> str:
    """The JSON ``status`` of a command that ended with ``error``."""
    return {
        "invalid_migrations": "invalid",
        "refused": "refused",
        "usage": "invalid",
        "replay_unavailable": "invalid",
        "database_unavailable": "unreachable",
        "connection_rejected": "rejected",
        "lock_not_acquired": "locked",
        "interrupted": "interrupted",
    }.get(error.kind, "failed")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
