"""Throwaway PostgreSQL servers for tests, the specification and replays.

Three backends share one interface (:class:`PostgresServer`): an embedded
server from a pip package (the default; needs no Docker and no system
PostgreSQL), a container started with testcontainers, and an existing server
given by URL.
"""

from pgship.testing.embedded import EmbeddedPostgres, EmbeddedServerError, postgres_bin_dir
from pgship.testing.server import PostgresServer, ServerControlUnsupported, replace_dbname

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "PostgresServer",
    "ServerControlUnsupported",
    "postgres_bin_dir",
    "replace_dbname",
]
