"""Throwaway PostgreSQL servers for tests, the specification and replays.

Three backends share one interface (:class:`PostgresServer`): an embedded
server (the default: PostgreSQL 14-18 with contrib, fetched once per major by
:mod:`pgship.testing.binaries`; needs no Docker and no system
PostgreSQL), a container started with testcontainers, and an existing server
given by URL.

The container and URL backends are imported on first use, so importing pgship
never imports testcontainers or the Docker client.
"""

from __future__ import annotations

import importlib
from typing import Any

from pgship.testing.embedded import EmbeddedPostgres, EmbeddedServerError, postgres_bin_dir
from pgship.testing.server import PostgresServer, ServerControlUnsupported, replace_dbname

_LAZY = {
    "ContainerPostgres": "pgship.testing.container",
    "ContainerServerError": "pgship.testing.container",
    "ExternalPostgres": "pgship.testing.external",
    "ExternalServerError": "pgship.testing.external",
}

__all__ = [
    "ContainerPostgres",
    "ContainerServerError",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "ExternalPostgres",
    "ExternalServerError",
    "PostgresServer",
    "ServerControlUnsupported",
    "postgres_bin_dir",
    "replace_dbname",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
