"""What a run reports while it works: typed event kinds, the event, and the sink that receives them.

The kinds' values are the strings the JSON output and the text renderer have always used, so a
``StrEnum`` member compares equal to (and serialises as) its old bare string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    """Every kind of :class:`Event` pgship emits."""

    # the runner (pgship.runner, pgship.apply)
    TABLE = "table"  # the tracking table was created or upgraded
    ADOPTED = "adopted"  # a row an earlier runner wrote got its checksum
    PLAN = "plan"  # how many migrations are pending
    START = "start"  # one migration starts
    APPLIED = "applied"  # one migration committed with its tracking row
    RETRY = "retry"  # a lock_timeout expired: the migration is retried with a longer one
    DROPPED_INVALID_INDEX = "dropped_invalid_index"
    BASELINED = "baselined"
    LOCK = "lock"  # the migration lock (or lease) is held
    LOCK_WAIT = "lock_wait"  # another run holds it: waiting
    # deploy and release (pgship.deploy)
    STAGE_BEGIN = "stage_begin"
    STAGE_END = "stage_end"
    WARNING = "warning"
    CONNECTION = "connection"
    CONNECT_RETRY = "connect_retry"
    OUTPUT = "output"


@dataclass(frozen=True, init=False)
class Event:
    """Something a runner reports while it works (rendered by the CLI as progress).

    ``kind`` may be given as its string value (``Event("plan", ...)``); it is stored as an
    :class:`EventKind`, and an unknown kind is a ``ValueError``.
    """

    kind: EventKind
    message: str
    data: dict[str, Any]

    def __init__(self, kind: EventKind | str, message: str, data: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "kind", EventKind(kind))
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "data", {} if data is None else data)


EventSink = Callable[[Event], None]


def ignore(_: Event) -> None:
    """The sink of a run nobody watches."""
    return None
