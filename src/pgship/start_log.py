"""The start command's log: a private file, written through a process that scrubs passwords.

``pgship deploy`` appends its start command's output to a log (``.pgship/start.log`` by
default). A service may keep writing there long after the deploy has exited, and may
print its own environment, so its output goes through a relay process of its own that
replaces passwords line by line before anything reaches the disk; the file is readable by
its owner only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from pgship.database import scrub


@contextmanager
def open_private_log(path: Path) -> Iterator[BinaryIO]:
    """Open ``path`` for appending, readable by its owner only (0600); pgship's own ``.pgship/`` is 0700.

    A log another user can read is a leak even when scrubbed (a service may print its own secrets).
    """
    parent = path.parent
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o700)
        os.chmod(parent, 0o700)  # mkdir's mode is filtered by the umask
    elif parent.name == ".pgship":
        with suppress(PermissionError):
            os.chmod(parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with suppress(PermissionError):
        os.fchmod(fd, 0o600)  # a log from before, created with the umask's mode
    with os.fdopen(fd, "ab") as log:
        yield log


def start_scrubbing_relay(log_path: Path, secrets: Iterable[str]) -> tuple[subprocess.Popen[bytes], int]:
    """A process that appends what it reads to ``log_path``, passwords replaced; returns it and its pipe.

    It runs in a session of its own (a Ctrl-C meant for the deploy does not stop it) and ends when
    every writer has closed the pipe. The secrets reach it through a second pipe, never the command
    line or the environment.
    """
    read_end, write_end = os.pipe()
    secrets_read, secrets_write = os.pipe()
    try:
        relay = subprocess.Popen(
            [sys.executable, "-c", RELAY_PROGRAM, str(log_path), str(secrets_read)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(secrets_read,),
            start_new_session=True,
        )
    except BaseException:
        for fd in (read_end, write_end, secrets_write):
            os.close(fd)
        raise
    finally:
        os.close(secrets_read)
    os.close(read_end)
    with os.fdopen(secrets_write, "w", encoding="utf-8") as channel:
        json.dump(list(secrets), channel)
    return relay, write_end


RELAY_PROGRAM = "import sys; from pgship.start_log import relay_main; relay_main(sys.argv[1:])"


def relay_main(argv: list[str]) -> None:
    """The scrubbing relay's process: ``stdin`` to the log file, line by line, scrubbed."""
    log_path, secrets_fd = argv[0], int(argv[1])
    with os.fdopen(secrets_fd, encoding="utf-8") as channel:
        secrets = [s for s in json.load(channel) if s]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(log_path, "ab", buffering=0) as log:
        scrub_lines(sys.stdin.buffer, log, secrets)


def scrub_lines(source: BinaryIO, sink: BinaryIO, secrets: list[str]) -> None:
    """Copy ``source`` to ``sink`` line by line, each line scrubbed of ``secrets`` and passwords in URLs."""
    for raw in iter(source.readline, b""):
        text = raw.decode("utf-8", "surrogateescape")
        sink.write(scrub(text, secrets).encode("utf-8", "surrogateescape"))


__all__ = ["RELAY_PROGRAM", "open_private_log", "relay_main", "scrub_lines", "start_scrubbing_relay"]
