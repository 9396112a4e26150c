"""What a client may cost ``pgship serve``: the limits, their defaults, and the open-files limit.

Pure and light (no web stack): the CLI reads the defaults for ``serve --help`` from
here on every start. :mod:`pgship.health.server` enforces them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_HEADER_TIMEOUT_S = 5.0
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_CONNECTIONS = 2048
#: Descriptors kept free of client connections: the listening socket, the database pool, logs.
FD_RESERVE = 64


@dataclass(frozen=True)
class ServerLimits:
    """What a client may cost the server (:mod:`pgship.health.server` says how each is enforced)."""

    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if not self.header_timeout_s > 0 or not math.isfinite(self.header_timeout_s):
            raise ValueError("the header timeout must be a number of seconds more than 0")
        if self.max_header_bytes < 1024:
            raise ValueError("the header size limit must be at least 1024 bytes")
        if self.max_connections < 1:
            raise ValueError("the connection limit must be at least 1")


def raise_fd_limit() -> tuple[int, int]:
    """Lift the soft limit on open files to the hard limit where allowed; returns (soft, hard).

    (-1, -1) where there are no such limits (Windows).
    """
    try:
        import resource
    except ImportError:
        return -1, -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError):  # a sandbox that forbids it: keep the soft limit
            return soft, hard
        soft = hard
    return soft, hard


def effective_max_connections(limits: ServerLimits, fd_soft_limit: int) -> int:
    """The connection cap, kept far enough under the file limit that accept() never fails."""
    if fd_soft_limit < 0:  # RLIM_INFINITY is -1 on Linux; -1 also means "no such limit"
        return limits.max_connections
    return max(1, min(limits.max_connections, fd_soft_limit - FD_RESERVE))


__all__ = [
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEADER_BYTES",
    "FD_RESERVE",
    "ServerLimits",
    "effective_max_connections",
    "raise_fd_limit",
]
