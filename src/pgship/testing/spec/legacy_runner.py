"""What the old shell runner left in a database, reproduced for the adoption scenarios.

The runner pgship replaces was a bash loop: for each file, skip it if its
version is in ``schema_migrations``, else ``psql -f`` it and insert
``(version, name)``. Its table had only ``version, name, applied_at``
(``varchar`` versions, a ``timestamp`` without time zone). Here each file is
sent as one simple-protocol query, which is what ``psql -f`` amounts to for
these files, and recorded the way the loop recorded it.
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg

from pgship.testing.spec.workspace import SampleMigration

LEGACY_TABLE_DDL = (
    "CREATE TABLE schema_migrations (version varchar(255) PRIMARY KEY, name varchar(255), "
    "applied_at timestamp DEFAULT now())"
)


def migrate_like_the_old_runner(url: str, migrations: Iterable[SampleMigration]) -> None:
    """Create the old runner's table and apply ``migrations`` the way its loop did."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LEGACY_TABLE_DDL)
        for migration in migrations:
            conn.execute(migration.sql)  # no parameters: one simple-protocol query, like psql -f
            conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )


def apply_by_hand(url: str, migrations: Iterable[SampleMigration]) -> None:
    """Run migration files the way a person does in an emergency (``psql -f``), recording nothing."""
    with psycopg.connect(url, autocommit=True) as conn:
        for migration in migrations:
            conn.execute(migration.sql)
