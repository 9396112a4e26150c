"""Health of a release: is the database reachable, and does its schema match the migrations shipped?

Three endpoints (docs/ARCHITECTURE.md, "Health"), answering ``application/health+json`` in
the shape of the IETF health-check draft (``status`` pass | warn | fail,
``releaseId``, ``checks``):

* ``GET /health/live``     the process serves; never touches the database;
* ``GET /health``          readiness: database reachable and nothing pending; statuses only;
* ``GET /health/database`` the details, optionally behind a bearer token.

Three layers, each testable on its own, each a module of this package:

1. :mod:`~pgship.health.documents`: pure functions turning an :class:`Observation`
   (what one check saw) into documents;
2. :mod:`~pgship.health.probe`: :class:`DatabaseProbe`, the only code that talks to
   PostgreSQL: one round trip per check, in a read-only transaction, bounded in time
   even when the server hangs;
3. :mod:`~pgship.health.service`: :func:`create_app`, which caches observations for a
   short time (one database round trip per cache period, however many requests
   arrive) and serves them.

Beside them, ``pgship serve``'s HTTP front: :mod:`~pgship.health.limits` (what a client
may cost the server; pure, read by the CLI on every start) and :mod:`~pgship.health.server`
(uvicorn guarded against hostile clients). Only ``server`` imports the web server
(uvicorn, httptools) at import time, and only ``service`` uses Starlette (when an app is
built or a request answered): importing this package, or ``documents`` or ``limits``,
does not load the web stack. The names below are re-exported from their modules, each
loaded on first use (:data:`EXPORTED_FROM`).

Responses never carry a DSN, host, user, password, SQL text or stack trace: a failed
check is described generically, with the SQLSTATE class at most. The details go to
the server's log, scrubbed of passwords.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgship.health.documents import (
        MEDIA_TYPE,
        CheckFailure,
        Observation,
        Release,
        database_report,
        http_status,
        liveness_report,
        readiness_report,
    )
    from pgship.health.probe import DatabaseProbe, Probe, check_statement, classify
    from pgship.health.service import HealthService, ObservationCache, create_app

#: The module each public name comes from. They are loaded on first use: the CLI imports
#: ``pgship.health.limits`` on every start, which must not load the documents, the probe and
#: the service with it (about 9 ms).
EXPORTED_FROM = {
    "MEDIA_TYPE": "documents",
    "CheckFailure": "documents",
    "Observation": "documents",
    "Release": "documents",
    "database_report": "documents",
    "http_status": "documents",
    "liveness_report": "documents",
    "readiness_report": "documents",
    "DatabaseProbe": "probe",
    "Probe": "probe",
    "check_statement": "probe",
    "classify": "probe",
    "HealthService": "service",
    "ObservationCache": "service",
    "create_app": "service",
}


def __getattr__(name: str) -> Any:
    module = EXPORTED_FROM.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "MEDIA_TYPE",
    "CheckFailure",
    "DatabaseProbe",
    "HealthService",
    "Observation",
    "ObservationCache",
    "Probe",
    "Release",
    "check_statement",
    "classify",
    "create_app",
    "database_report",
    "http_status",
    "liveness_report",
    "readiness_report",
]
