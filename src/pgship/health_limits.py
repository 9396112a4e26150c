"""Moved to :mod:`pgship.health.limits`; this alias stays only while ``cli_release.py`` imports it.

Delete it once nothing imports ``pgship.health_limits`` (the CLI's rewrite imports the new path).
"""

from __future__ import annotations

from pgship.health.limits import (
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    FD_RESERVE,
    ServerLimits,
    effective_max_connections,
    raise_fd_limit,
)

__all__ = [
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEADER_BYTES",
    "FD_RESERVE",
    "ServerLimits",
    "effective_max_connections",
    "raise_fd_limit",
]
