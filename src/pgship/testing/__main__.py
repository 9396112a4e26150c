"""``python -m pgship.testing``: a throwaway PostgreSQL for trying migrations locally.

Starts the embedded server (no Docker, no system PostgreSQL; PostgreSQL 14-18
with all of contrib, downloaded once per major), creates a
database, prints its ``DATABASE_URL`` and keeps running until Ctrl-C, then
deletes everything.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from pgship.testing.binaries import MAJORS
from pgship.testing.embedded import DEFAULT_VERSION, EmbeddedPostgres, EmbeddedServerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pgship.testing",
        description="Run a throwaway PostgreSQL on 127.0.0.1 until Ctrl-C and print its DATABASE_URL.",
    )
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    parser.add_argument("--database", default="app", help="database to create (default: %(default)s)")
    parser.add_argument(
        "--pg-version",
        type=int,
        default=DEFAULT_VERSION,
        choices=MAJORS,
        help="PostgreSQL major (default: %(default)s); each has all of contrib (pgcrypto, uuid-ossp, "
        "pg_trgm, "
        "citext, hstore, ltree, btree_gist, ...) and is downloaded once, on first use",
    )
    parser.add_argument("--env-file", type=Path, help="also write DATABASE_URL=... to this file")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = EmbeddedPostgres(
            version=args.pg_version,
            port=args.port,
            durable=True,
            progress=lambda m: print(m, file=sys.stderr),
        )
    except EmbeddedServerError as exc:
        print(f"error: {exc}\n  {exc.hint}", file=sys.stderr)
        return 2
    with server:
        server.create_database_named(args.database)
        url = server.url_for(args.database)
        if args.env_file:
            args.env_file.write_text(f"DATABASE_URL={url}\n")
        print(f"export DATABASE_URL={url}", flush=True)
        print(
            f"PostgreSQL {server.server_version()} is running; Ctrl-C stops and deletes it.", file=sys.stderr
        )
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
