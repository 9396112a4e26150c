"""Databases that another migration tool built: recognising its tracking table and taking it over.

pgship keeps one row per applied version. The tools it replaces keep their history
differently, and reading their tables as if they were pgship's would be wrong:

- **golang-migrate**: ``schema_migrations(version bigint PRIMARY KEY, dirty boolean NOT NULL)``
  holds *one* row, the latest version; every version up to it is applied. ``dirty``
  means a migration failed part-way and nobody knows what of it is applied.
- **dbmate**: ``schema_migrations(version varchar(128) PRIMARY KEY)``, one row per
  applied version. Its shape fits pgship's: the table is upgraded in place, like the
  old shell runner's, and dbmate can still read it.
- **goose**: ``goose_db_version(id, version_id, is_applied, tstamp)``, a row per up
  *and* down; a version is applied when its latest row says so; version 0 is goose's
  own bootstrap row.
- **Flyway**: ``flyway_schema_history``, a row per attempt (``success`` false for a
  failed one); repeatable migrations have no version; a ``BASELINE`` row stands for
  every version up to it.

Where the history fits pgship's model it is copied, in one transaction, into pgship's
own table; the foreign table is left as it was (golang-migrate's, which has pgship's
name, is renamed aside to ``<name>_golang_migrate`` in that same transaction). Where it
does not fit (a dirty or failed migration, an out-of-order history), pgship refuses,
naming the tool and the command that adopts the database by a person's decision.

Recognition is pure (:mod:`pgship.adopt.recognise`: :func:`golang_migrate`, :func:`dbmate`,
:func:`goose`, :func:`flyway`, :func:`applied_rows`); :mod:`pgship.adopt.takeover`
(:func:`find`, :func:`take_over`) does the I/O. Both are re-exported here.
"""

from __future__ import annotations

from pgship.adopt.recognise import (
    DBMATE,
    DEFAULT_TABLES,
    FLYWAY,
    GOLANG_MIGRATE,
    GOOSE,
    ForeignHistory,
    ForeignRefusal,
    ForeignRow,
    applied_rows,
    dbmate,
    flyway,
    golang_migrate,
    goose,
    shape,
)
from pgship.adopt.takeover import failed_change, find, require_taken_over, take_over

__all__ = [
    "DBMATE",
    "DEFAULT_TABLES",
    "FLYWAY",
    "GOLANG_MIGRATE",
    "GOOSE",
    "ForeignHistory",
    "ForeignRefusal",
    "ForeignRow",
    "applied_rows",
    "dbmate",
    "failed_change",
    "find",
    "flyway",
    "golang_migrate",
    "goose",
    "require_taken_over",
    "shape",
    "take_over",
]
