"""What every throwaway PostgreSQL server offers, whatever runs it.

The specification, the tests and ``pgship verify --replay`` only need a
superuser URL and a way to make and drop databases; the embedded and container
backends can also stop and restart the server, which fault scenarios use.
"""

from __future__ import annotations

import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit


class ServerControlUnsupported(RuntimeError):
    """Raised when a backend cannot stop or restart its server (for example an external URL)."""


class PostgresServer(ABC):
    """A PostgreSQL server this process may create databases on."""

    #: ``embedded``, ``container`` or ``url``
    backend: str = ""

    @property
    @abstractmethod
    def admin_url(self) -> str:
        """A superuser URL to the server's maintenance database."""

    def url_for(self, dbname: str) -> str:
        """The admin URL pointed at another database on the same server."""
        return replace_dbname(self.admin_url, dbname)

    def server_version(self) -> str:
        """The server's ``server_version`` setting, for reports."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    @property
    def can_control(self) -> bool:
        """Whether :meth:`stop`, :meth:`start` and :meth:`restart` work on this backend."""
        return False

    def stop(self) -> None:
        """Stop the server (fast shutdown): clients see it go away."""
        raise ServerControlUnsupported(f"the {self.backend} backend cannot stop its server")

    def start(self) -> None:
        """Start the server again after :meth:`stop`."""
        raise ServerControlUnsupported(f"the {self.backend} backend cannot start its server")

    def restart(self, *, immediate: bool = True) -> None:
        """Restart the server; ``immediate`` crashes it the way a power cut would."""
        raise ServerControlUnsupported(f"the {self.backend} backend cannot restart its server")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op for external servers
        """Release the server (stop it if this process started it)."""

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def fresh_database(self, *, template: str | None = None, prefix: str = "pgship_t") -> Iterator[str]:
        """Create a database (optionally cloned from ``template``), yield its URL, then drop it."""
        name = self.create_database(template=template, prefix=prefix)
        try:
            yield self.url_for(name)
        finally:
            self.drop_database(name)

    def create_database(self, *, template: str | None = None, prefix: str = "pgship_t") -> str:
        """Create a uniquely named database and return its name."""
        import psycopg
        from psycopg import sql

        name = f"{prefix}_{secrets.token_hex(6)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)
        return name

    def create_database_named(self, name: str) -> None:
        """Create a database with exactly this name (for a local server, not for tests)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still using it."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def replace_dbname(url: str, dbname: str) -> str:
    """Return ``url`` with its database name replaced (query parameters kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, parts.fragment))
