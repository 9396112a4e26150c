"""The least a Python runner can do: psycopg 3, one transaction per file, no validation, lock or checksum.

A reference point, not a peer: the distance from pgship to this is the cost of
pgship's safety features plus its own overhead; the distance from this to the
psql floor is the cost of Python and psycopg.
Usage: DATABASE_URL=... python minimal_runner.py DIR
"""

import os
import sys
from pathlib import Path

import psycopg

TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
)


def main(directory: Path) -> None:
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(TRACKING_DDL)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for path in sorted(directory.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in applied:
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
