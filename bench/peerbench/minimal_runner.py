"""The least a Python runner can do: psycopg 3, one transaction per file, no validation, lock or checksum.

A reference point, not a peer: the distance from pgship to this is the cost of
pgship's safety features plus its own overhead; the distance from this to the
psql floor is the cost of Python and psycopg.
With ``--one-round-trip`` each migration goes to the server as one simple-query
message (``BEGIN; SET LOCAL lock_timeout ...; <file>; INSERT ...; COMMIT``): what
pgship could reach by batching where that is safe.
With ``--pipeline`` the same statements go through psycopg's pipeline mode
(one network round trip, statements still sent one by one, so a failure names its statement).
Usage: DATABASE_URL=... python minimal_runner.py [--one-round-trip | --pipeline] DIR
"""

import os
import sys
from pathlib import Path

import psycopg
from psycopg import sql

TRACKING_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
)


def main(directory: Path, mode: str) -> None:
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(TRACKING_DDL)
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for path in sorted(directory.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in applied:
                continue
            if mode == "--pipeline":
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute("SET LOCAL lock_timeout = '3s'")
                    for statement in path.read_text().split(";\n"):  # enough for this workload
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                    conn.execute("COMMIT")
                continue
            if mode == "--one-round-trip":
                record = sql.SQL("INSERT INTO schema_migrations (version, name) VALUES ({}, {})").format(
                    sql.Literal(version), sql.Literal(name)
                )
                batch = sql.SQL("BEGIN; SET LOCAL lock_timeout = '3s'; {}; {}; COMMIT").format(
                    sql.SQL(path.read_text().rstrip().rstrip(";")), record
                )
                conn.execute(batch)
                continue
            with conn.transaction():
                conn.execute(path.read_text())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))


if __name__ == "__main__":
    main(Path(sys.argv[-1]), sys.argv[1] if len(sys.argv) > 2 else "")
