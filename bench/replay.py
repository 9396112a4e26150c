"""What `pgship verify --replay` and `pgship diff` cost, next to what the migrations themselves cost.

    .venv/bin/python bench/replay.py [--runs 5] [--migrations docker/postgres/migrations]

Prints medians (and min-max) in milliseconds for, in one run on one machine:
  migrate          the migrations applied to a fresh database on a running server (the floor)
  replay embedded  verify --replay's replay: start an embedded PostgreSQL, migrate, throw it away
  replay url       the replay in a scratch database on a running server (--replay-url)
  diff             live snapshot + embedded replay + replay snapshot + comparison
  cli wall         `pgship verify --replay --no-database` as a process (Python start included)
then, for a --count-migration set (default 300, bench/peerbench's workload), side by side on one
running server, each in a fresh database created and dropped in the timed part:
  psql session     the plain floor: one `psql -f 001.sql -f 002.sql ...` (autocommit, no tracking)
  psql floor       one psql session, each file in BEGIN/COMMIT with its tracking INSERT (the same
                   guarantees as pgship's runner, none of its checks: bench/peers.py's floor)
  psql loop        one `psql -1 -f FILE` per file (the deploy loop pgship replaces)
  replay url       verify --replay's replay in a scratch database there (--replay-url), in process
  cli replay url   `pgship verify --replay --replay-url URL` as a process (Python start, parsing)
where the replay's time goes (the same 300 migrations through psycopg, each in BEGIN/COMMIT with a
tracking INSERT, differing only in how they reach the server):
  one query        each migration as one simple-protocol query string (one round trip, no per-statement
                   errors: the floor of any runner that must name the failing statement)
  round trips      each statement its own simple-protocol query
  runner pipeline  the runner's shape: one psycopg pipeline per migration, lock_timeout, RESET ALL...
and the embedded server's start-up:
  server warm      EmbeddedPostgres().setup(): copy the cached template data directory, start
  server cold      the same on first use of a major (initdb into the template, then as warm)
  initdb each time the way pgship started a server before the template: initdb, pg_ctl start -w
                   (its 100 ms polling), with the same binaries, then pg_ctl stop
and writes the numbers to bench/results/replay.json. Goal: replay url / psql session <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(runs: int, action: Callable[[], dict[str, float] | None]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        started = time.perf_counter()
        parts = action() or {}
        samples.setdefault("total", []).append((time.perf_counter() - started) * 1000)
        for name, value in parts.items():
            samples.setdefault(name, []).append(value)
    return samples


def describe(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"median": statistics.median(values), "min": min(values), "max": max(values)}
        for name, values in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--migrations", default=str(ROOT / "docker" / "postgres" / "migrations"))
    parser.add_argument("--count", type=int, default=300, help="size of the replay-vs-psql migration set")
    args = parser.parse_args()

    from pgship import schema
    from pgship.database import connect
    from pgship.history import TrackingTable
    from pgship.migrations import discover
    from pgship.replay import ReplayOptions, replay
    from pgship.runner import Runner
    from pgship.testing import EmbeddedPostgres

    discovery = discover(args.migrations)
    table = TrackingTable.parse("schema_migrations")
    results: dict[str, dict[str, dict[str, float]]] = {}

    with EmbeddedPostgres() as server:

        def migrate_fresh() -> None:
            with server.fresh_database() as url, connect(url) as conn:
                Runner(conn, table).migrate(discovery)

        def replay_embedded() -> dict[str, float]:
            result = replay(discovery, table)
            return {"server start": result.start_ms, "migrations": result.migrate_ms}

        def replay_url() -> dict[str, float]:
            result = replay(discovery, table, ReplayOptions(url=server.admin_url))
            return {"scratch database": result.start_ms, "migrations": result.migrate_ms}

        live = server.url_for(server.create_database())
        with connect(live) as conn:
            Runner(conn, table).migrate(discovery)

        def diff() -> dict[str, float]:
            result = schema.diff(live, discovery, table)
            assert result.equal, [d.message for d in result.differences]
            return {
                "live snapshot": result.timings_ms["live_snapshot"],
                "replay": result.timings_ms["replay"],
            }

        def cli_wall() -> None:
            command = [
                sys.executable,
                "-m",
                "pgship",
                "-m",
                args.migrations,
                "verify",
                "--replay",
                "--no-database",
            ]
            subprocess.run(command, check=True, capture_output=True)

        for name, action in (
            ("migrate", migrate_fresh),
            ("replay embedded", replay_embedded),
            ("replay url", replay_url),
            ("diff", diff),
            ("cli wall", cli_wall),
        ):
            results[name] = describe(measure(args.runs, action))
        large = versus_psql(server, args.count, args.runs)
        shapes = protocol_shapes(server, args.count, args.runs)
        startup = server_startup(args.runs)

    print(
        f"{len(discovery.migrations)} migrations from {args.migrations}, {args.runs} runs each "
        "(ms: median [min-max])"
    )
    for name, parts in results.items():
        cells = ", ".join(
            f"{part} {value['median']:.0f} [{value['min']:.0f}-{value['max']:.0f}]"
            for part, value in parts.items()
        )
        print(f"  {name:16} {cells}")
    print(f"{args.count} migrations (bench/peerbench workload), replay vs psql on one server (ms):")
    print_table(large)
    floor = large["psql session"]["total"]["median"]
    for name in ("psql floor", "psql loop", "replay url", "cli replay url"):
        print(f"  {name} / psql session: {large[name]['total']['median'] / floor:.2f}x")
    guarded = large["psql floor"]["total"]["median"]
    print(f"  replay url / psql floor: {large['replay url']['total']['median'] / guarded:.2f}x")
    print(f"{args.count} migrations through psycopg, by protocol shape (ms):")
    print_table(shapes)
    print("embedded server start-up (ms):")
    print_table(startup)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "runs": args.runs,
        "results": results,
        "versus_psql": large,
        "protocol_shapes": shapes,
        "startup": startup,
    }
    (out / "replay.json").write_text(json.dumps(document, indent=2))


def print_table(results: dict[str, dict[str, dict[str, float]]]) -> None:
    for name, parts in results.items():
        cells = ", ".join(
            f"{part} {value['median']:.0f} [{value['min']:.0f}-{value['max']:.0f}]"
            for part, value in parts.items()
        )
        print(f"  {name:16} {cells}")


def versus_psql(server: object, count: int, runs: int) -> dict[str, dict[str, dict[str, float]]]:
    """The same ``count`` files: pgship's replay against plain psql, on the same running server."""
    import os
    import tempfile

    sys.path.insert(0, str(ROOT / "bench"))
    from peerbench.workload import write_workload

    from pgship.history import TrackingTable
    from pgship.migrations import discover
    from pgship.replay import ReplayOptions, replay

    workdir = Path(tempfile.mkdtemp(prefix="pgship-bench-replay-"))
    files = write_workload(workdir, count)
    sql_files = sorted(files.numbered.glob("*.sql"))
    psql = str(server.bin / "psql")  # type: ignore[attr-defined]
    env = {**os.environ, "PGPASSWORD": server.password}  # type: ignore[attr-defined]
    table = TrackingTable.parse("schema_migrations")

    def psql_session() -> None:
        name = server.create_database()  # type: ignore[attr-defined]
        command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server.url_for(name)]  # type: ignore[attr-defined]
        for path in sql_files:
            command += ["-f", str(path)]
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        server.drop_database(name)  # type: ignore[attr-defined]

    def psql_floor() -> None:
        name = server.create_database()  # type: ignore[attr-defined]
        command = [
            psql,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            server.url_for(name),
            "-f",
            str(files.floor),
        ]  # type: ignore[attr-defined]
        subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        server.drop_database(name)  # type: ignore[attr-defined]

    def psql_loop() -> None:
        name = server.create_database()  # type: ignore[attr-defined]
        url = server.url_for(name)  # type: ignore[attr-defined]
        for path in sql_files:
            command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f", str(path)]
            subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
        server.drop_database(name)  # type: ignore[attr-defined]

    def replay_url() -> dict[str, float]:
        result = replay(discover(files.numbered), table, ReplayOptions(url=server.admin_url))  # type: ignore[attr-defined]
        assert result.applied == count
        return {"scratch database": result.start_ms, "migrations": result.migrate_ms}

    def cli_replay_url() -> None:
        command = [sys.executable, "-m", "pgship", "-m", str(files.numbered), "verify", "--replay-url"]
        subprocess.run([*command, server.admin_url], check=True, capture_output=True)  # type: ignore[attr-defined]

    samples: dict[str, dict[str, list[float]]] = {}
    actions = {
        "psql session": psql_session,
        "psql floor": psql_floor,
        "psql loop": psql_loop,
        "replay url": replay_url,
        "cli replay url": cli_replay_url,
    }
    for _ in range(runs):  # alternate, so a busy moment on the machine hits every contender
        for name, action in actions.items():
            for part, values in measure(1, action).items():
                samples.setdefault(name, {}).setdefault(part, []).extend(values)
    return {name: describe(parts) for name, parts in samples.items()}


def protocol_shapes(server: object, count: int, runs: int) -> dict[str, dict[str, dict[str, float]]]:
    """The replay's migrations through psycopg three ways: is the gap to psql the protocol's?"""
    import psycopg

    sys.path.insert(0, str(ROOT / "bench"))
    from peerbench.workload import migrations

    items = migrations(count)
    scripts = []
    for item in items:
        statements = [part.strip() for part in item.sql.split(";\n") if part.strip()]
        record = f"INSERT INTO schema_migrations VALUES ('{item.number}', '{item.name}')"
        scripts.append(["BEGIN", *statements, record, "COMMIT"])

    def shape(kind: str) -> Callable[[], None]:
        def run() -> None:
            name = server.create_database()  # type: ignore[attr-defined]
            with psycopg.connect(server.url_for(name), autocommit=True) as conn:  # type: ignore[attr-defined]
                conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY, name text)")
                for script in scripts:
                    if kind == "one query":
                        conn.pgconn.exec_(";".join(script).encode())
                    elif kind == "round trips":
                        for text in script:
                            conn.pgconn.exec_(text.encode())
                    else:
                        body = [script[0], "SET LOCAL lock_timeout = '3000ms'", *script[1:]]
                        with conn.pipeline():
                            for text in [*body, "RESET ALL", "SET client_connection_check_interval = 1000"]:
                                conn.execute(text)  # type: ignore[call-overload]
            server.drop_database(name)  # type: ignore[attr-defined]

        return run

    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for name in ("one query", "round trips", "runner pipeline"):
            for part, values in measure(1, shape(name)).items():
                samples.setdefault(name, {}).setdefault(part, []).extend(values)
    return {name: describe(parts) for name, parts in samples.items()}


def server_startup(runs: int) -> dict[str, dict[str, dict[str, float]]]:
    """Start-up of an embedded server: warm (template cached) and cold (initdb into a new template)."""
    import secrets
    import shutil

    from pgship.testing import EmbeddedPostgres
    from pgship.testing.binaries import RELEASES, cache_root, default_major

    def warm() -> None:
        EmbeddedPostgres().setup().close()

    def cold() -> None:
        user = f"bench_{secrets.token_hex(4)}"  # templates are per major and user: a new user is a first use
        try:
            EmbeddedPostgres(user=user).setup().close()
        finally:
            name = f"postgresql-{RELEASES[default_major()]}-{user}"
            templates = cache_root() / "templates"
            shutil.rmtree(templates / name, ignore_errors=True)
            for suffix in (".complete", ".lock"):
                (templates / (name + suffix)).unlink(missing_ok=True)

    def initdb_each_time() -> None:
        import os
        import tempfile

        from pgship.testing import binaries

        prefix = binaries.ensure_installed(default_major())
        user = binaries.run_as_user()
        root = Path(tempfile.mkdtemp(prefix="pgship-bench-initdb-"))
        try:
            root.chmod(0o755)
            binaries.chown_to_server_user(root)
            env = {**os.environ, "LD_LIBRARY_PATH": binaries.library_path(prefix)}
            data, log = str(root / "data"), str(root / "log")

            def run(*command: str) -> None:
                subprocess.run(command, user=user, env=env, cwd=root, check=True, capture_output=True)

            run(str(prefix / "bin" / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")
            options = f"-c listen_addresses='' -c unix_socket_directories={root} -c fsync=off"
            run(str(prefix / "bin" / "pg_ctl"), "-D", data, "start", "-w", "-l", log, "-o", options)
            run(str(prefix / "bin" / "pg_ctl"), "-D", data, "stop", "-w", "-m", "immediate")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    samples: dict[str, dict[str, list[float]]] = {}
    for _ in range(runs):
        for name, action in (
            ("server warm", warm),
            ("server cold", cold),
            ("initdb each time", initdb_each_time),
        ):
            for part, values in measure(1, action).items():
                samples.setdefault(name, {}).setdefault(part, []).extend(values)
    return {name: describe(parts) for name, parts in samples.items()}


if __name__ == "__main__":
    main()
