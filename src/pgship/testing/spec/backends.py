"""Which PostgreSQL server the specification runs against, chosen once per run.

``behave -D db=embedded|container|url|embedded+pgbouncer`` wins over
``PGSHIP_TEST_DB``; the default is the embedded server because it needs nothing
but pip. ``behave -D pg=14`` (or ``PGSHIP_TEST_PG``) chooses the PostgreSQL major:
the embedded server's (14-18, default 16), or for a container the ``postgres:N``
image when no image is named; ``make spec-matrix`` runs every scenario on each. The
container and URL backends are imported only when chosen, so a machine without
Docker or testcontainers can still run the specification.
``embedded+pgbouncer`` puts a real PgBouncer (started once per run) between every
scenario and the embedded server; ``-D pool=transaction|session`` picks its pool
mode (default transaction).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgship.testing.server import PostgresServer

if TYPE_CHECKING:
    from pgship.testing.pgbouncer import PoolMode

BACKENDS = ("embedded", "container", "url", "embedded+pgbouncer")
POOL_MODES: tuple[PoolMode, ...] = ("transaction", "session")
DEFAULT_IMAGE = "postgres:16"


class BackendChoiceError(ValueError):
    """The requested backend is unknown or lacks what it needs (an image, a URL)."""


@dataclass(frozen=True)
class BackendChoice:
    """The backend name and its one parameter (image for containers, URL for an existing server)."""

    name: str
    image: str | None = None
    url: str | None = None
    pg: int | None = None  # the embedded server's major (None: its default)
    pool_mode: PoolMode | None = None  # embedded+pgbouncer: the pooler's mode

    def describe(self) -> str:
        """A one-line, password-free description for reports."""
        if self.name == "container":
            return f"container ({self.image})"
        if self.name == "url":
            return "url (existing server from DATABASE_URL)"
        from pgship.testing.binaries import default_major

        server = f"embedded (PostgreSQL {self.pg or default_major()} with contrib)"
        if self.pool_mode:
            return f"{server}, through PgBouncer in {self.pool_mode} pooling mode"
        return server


def choose_backend(userdata: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> BackendChoice:
    """Read the backend from behave's ``-D`` userdata, then the environment."""
    name = (userdata.get("db") or environ.get("PGSHIP_TEST_DB") or "embedded").strip().lower()
    if name not in BACKENDS:
        raise BackendChoiceError(
            f"unknown database backend {name!r} (from -D db= or PGSHIP_TEST_DB); "
            f"choose one of {', '.join(BACKENDS)}"
        )
    pg = _major(userdata.get("pg") or environ.get("PGSHIP_TEST_PG"))
    if name == "container":
        default = f"postgres:{pg}" if pg else DEFAULT_IMAGE
        image = userdata.get("image") or environ.get("PGSHIP_TEST_IMAGE") or default
        return BackendChoice(name, image=image)
    if name == "url":
        url = userdata.get("url") or environ.get("DATABASE_URL")
        if not url:
            raise BackendChoiceError(
                "the url backend needs a server: set DATABASE_URL (or -D url=...) to a superuser URL"
            )
        return BackendChoice(name, url=url)
    if name == "embedded+pgbouncer":
        pool = (userdata.get("pool") or environ.get("PGSHIP_TEST_POOL") or "transaction").strip().lower()
        if pool not in POOL_MODES:
            raise BackendChoiceError(
                f"unknown pool mode {pool!r} (from -D pool= or PGSHIP_TEST_POOL); choose one of "
                f"{', '.join(POOL_MODES)}"
            )
        return BackendChoice(name, pg=pg, pool_mode=pool)
    return BackendChoice(name, pg=pg)


def _major(raw: str | None) -> int | None:
    """The ``-D pg=`` major, checked against the ones the embedded server runs."""
    if raw is None or not str(raw).strip():
        return None
    from pgship.testing.binaries import MAJORS

    text = str(raw).strip()
    if not text.isdigit() or int(text) not in MAJORS:
        raise BackendChoiceError(
            f"-D pg={text} (or PGSHIP_TEST_PG): choose a PostgreSQL major of {', '.join(map(str, MAJORS))}"
        )
    return int(text)


def create_server(choice: BackendChoice) -> PostgresServer:
    """Build (but do not start) the server object for ``choice``; enter it to start it."""
    if choice.name == "container":
        # lazy: needs Docker + testcontainers; the class keeps every connection on 127.0.0.1
        from pgship.testing.container import ContainerPostgres

        return ContainerPostgres(image=choice.image)
    if choice.name == "url":
        from pgship.testing.external import ExternalPostgres  # lazy: only for the url backend

        assert choice.url is not None
        return ExternalPostgres(choice.url)
    from pgship.testing.embedded import EmbeddedPostgres

    return EmbeddedPostgres(version=choice.pg)
