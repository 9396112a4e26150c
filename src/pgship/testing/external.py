"""An existing PostgreSQL server given by URL (the ``url`` backend).

For CI service containers and shared test servers: pgship creates and drops only the databases
it made there (:meth:`PostgresServer.create_database` names them with a prefix) and cannot stop
or restart the server, so fault scenarios that need that are not run on this backend.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from pgship.testing.server import PostgresServer

_SCHEMES = ("postgresql", "postgres")


class ExternalServerError(ValueError):
    """The URL is missing or not a PostgreSQL URL (never repeated: it may hold a password)."""


class ExternalPostgres(PostgresServer):
    """A server this process did not start; ``url`` must let it create databases."""

    backend = "url"

    def __init__(self, url: str) -> None:
        try:
            scheme = urlsplit(url).scheme
        except ValueError:
            scheme = ""
        if scheme not in _SCHEMES:
            raise ExternalServerError(
                "the url backend needs a URL such as postgresql://user:password@host:5432/postgres "
                "(keyword/value connection strings are not supported here)"
            )
        self._url = url

    @classmethod
    def from_env(cls, variable: str = "DATABASE_URL") -> ExternalPostgres:
        """The server named by ``DATABASE_URL`` (or another variable)."""
        url = os.environ.get(variable, "")
        if not url:
            raise ExternalServerError(f"the url backend needs {variable} set to a PostgreSQL URL")
        return cls(url)

    @property
    def admin_url(self) -> str:
        return self._url
