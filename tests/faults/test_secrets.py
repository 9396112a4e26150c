"""No password in any output: every command, success and failure, every way of passing the password.

The database role here has a distinctive password full of characters URLs
must encode (``$ : @ / %``). Every command runs with it given as a URL, a
``?password=`` parameter, a ``key=value`` connection string, ``PGPASSWORD``
and ``DATABASE_URL``; in human and JSON form; succeeding, and failing every
way a deploy fails (wrong password, unreachable server, failing migration,
lock held, lock timeout, refused drift, bad files, SIGTERM). stdout, stderr,
the JSON documents, every file the commands wrote and the tracking table are
scanned for the password in each of its encodings. Zero hits.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg
import pytest
from psycopg import sql

from pgship.cli import COMMANDS
from pgship.history import TrackingTable
from tests.faults.harness import (
    Outcome,
    spawn,
)
from tests.faults.results import record
from tests.faults.secrets_scan import Hit, scan_paths, scan_text, secret_forms
from tests.toolkit import run_cli, wait_until

pytestmark = pytest.mark.faults

PASSWORD = "Pg$hip:Leak@Canary/42%x"
WRONG_PASSWORD = "Wr0ng$Canary:pw@77%y"
ROLE = "pgship_probe"
# Commands this test runs. A new command must be added here (and to the scenarios) before it ships.
COVERED = {
    "status",
    "migrate",
    "plan",
    "verify",
    "diff",
    "new",
    "baseline",
    "repair",
    "wait",
    "serve",
    "deploy",
    "review",
}
TOKEN = "Hlth-T0ken-Canary-5150"  # the health endpoint's bearer token is a secret too

MIGRATIONS = {
    "001_accounts.sql": "CREATE TABLE accounts (id int PRIMARY KEY);\n",
    "002_notes.sql": "CREATE TABLE notes (id int, body text);\n",
}


@dataclass
class Probe:
    """The role with the distinctive password, its database, and what every run printed."""

    port: int
    dbname: str
    workdir: Path
    runs: int = 0
    hits: list[Hit] = field(default_factory=list)

    def url(self, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://{ROLE}:{quote(password, safe='')}@127.0.0.1:{port or self.port}/{self.dbname}"

    def forms(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        """How the password reaches pgship: (extra arguments, environment)."""
        bare = f"postgresql://{ROLE}@127.0.0.1:{self.port}/{self.dbname}"
        return {
            "url": (["-d", self.url()], {}),
            "query parameter": (["-d", f"{bare}?password={quote(PASSWORD, safe='')}"], {}),
            "key=value": (
                [
                    "-d",
                    f"host=127.0.0.1 port={self.port} dbname={self.dbname} user={ROLE} password='{PASSWORD}'",
                ],
                {},
            ),
            "PGPASSWORD": (["-d", bare], {"PGPASSWORD": PASSWORD}),
            "DATABASE_URL": ([], {"DATABASE_URL": self.url()}),
        }

    def check(self, label: str, stdout: str, stderr: str) -> None:
        self.runs += 1
        forms = secret_forms(PASSWORD, WRONG_PASSWORD, TOKEN)
        self.hits += scan_text(stdout, forms, f"{label} stdout") + scan_text(stderr, forms, f"{label} stderr")


@pytest.fixture(scope="module")
def probe(pg_server, tmp_path_factory):
    dbname = f"pgship_secret_{int(time.time() * 1000) % 10**8}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        admin.execute(  # CREATEDB: `pgship diff --replay-url` replays in a scratch database on this server
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(ROLE))
        )
    yield Probe(pg_server.port, dbname, tmp_path_factory.mktemp("secrets"))
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))


def _migrations(probe: Probe, name: str, extra: dict[str, str] | None = None) -> Path:
    directory = probe.workdir / name / "migrations"
    directory.mkdir(parents=True)
    for file, text in {**MIGRATIONS, **(extra or {})}.items():
        (directory / file).write_text(text)
    return directory


def _reset(probe: Probe) -> None:
    with psycopg.connect(probe.url(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS schema_migrations, accounts, notes, blocked")


def _run(probe: Probe, label: str, args: list[str], env: dict[str, str], expected: int) -> None:
    result = run_cli(*args, env=env)
    probe.check(label, result.stdout, result.stderr)
    assert result.code == expected, (
        f"{label}: exit {result.code}, expected {expected}\n{result.output[-1500:]}"
    )


def test_every_command_is_covered():
    assert set(COMMANDS) <= COVERED, f"add {sorted(set(COMMANDS) - COVERED)} to the secrets scan"


def test_no_password_in_any_output_of_any_command(probe, pg_server):
    probe.runs, probe.hits = 0, []
    for form, (connection, env) in probe.forms().items():
        for output in ([], ["--json"]):
            _reset(probe)
            directory = _migrations(
                probe, f"{form.replace(' ', '_').replace('=', '')}{'-json' if output else ''}"
            )
            base = [*connection, "-m", str(directory), *output]
            steps = [
                (["status", "--check"], 5),
                (["plan"], 0),
                (["baseline", "001"], 0),
                (["review"], 0),  # 002 pending: its locks and the live table sizes
                (["migrate"], 0),
                (["status", "--check"], 0),
                (["verify"], 0),
                (["diff", "--replay-url", probe.url()], 5),  # 001 was baselined, never run: a difference
                (["repair"], 0),
                (["wait", "--wait", "5"], 0),
                (["new", "add_more"], 0),
            ]
            for command, expected in steps:
                _run(probe, f"{form} {' '.join(output + command)}", [*base, *command], env, expected)
    _scan_files_and_database(probe)
    _report(probe, "every command, every form of the password")


def test_no_password_when_commands_fail(probe, pg_server):
    probe.runs, probe.hits = 0, []
    _reset(probe)
    directory = _migrations(probe, "failures", {"003_broken.sql": "SELECT 1 / 0;\n"})
    database_commands = [
        ["status"],
        ["migrate"],
        ["plan"],
        ["verify"],
        ["diff", "--replay-url", probe.url()],
        ["baseline", "001"],
        ["repair"],
        ["review"],
        ["deploy", "--wait", "0.3"],
    ]
    wrong = ["-d", probe.url(WRONG_PASSWORD), "-m", str(directory)]
    unreachable = ["-d", probe.url(port=9), "-m", str(directory)]
    for output in ([], ["--json"]):
        for command in [*database_commands, ["wait", "--wait", "0.3"]]:
            _run(probe, f"wrong password {command[0]}", [*wrong, *output, *command], {}, 6)
            _run(probe, f"unreachable {command[0]}", [*unreachable, *output, *command], {}, 3)
        url = ["-d", probe.url(), "-m", str(directory)]
        _reset(probe)
        _run(probe, "failing migration", [*url, *output, "migrate"], {}, 1)
        _run(probe, "failing migration status", [*url, *output, "status", "--check"], {}, 5)
        key = TrackingTable.parse("public.schema_migrations").lock_key
        with psycopg.connect(probe.url(), autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            _run(probe, "lock held", [*url, *output, "migrate", "--lock-wait", "0.3"], {}, 4)
        edited = probe.workdir / "failures" / "migrations" / "001_accounts.sql"
        edited.write_text(MIGRATIONS["001_accounts.sql"] + "-- edited after it was applied\n")
        _run(probe, "drift", [*url, *output, "migrate"], {}, 2)
        _run(probe, "drift verify", [*url, *output, "verify"], {}, 2)
        edited.write_text(MIGRATIONS["001_accounts.sql"])
    _lock_timeout(probe)
    _sigterm(probe)
    _scan_files_and_database(probe)
    _report(probe, "failure paths")


def _lock_timeout(probe: Probe) -> None:
    _reset(probe)
    directory = _migrations(
        probe, "lock-timeout", {"003_alter.sql": "ALTER TABLE accounts ADD COLUMN note text;\n"}
    )
    url = ["-d", probe.url(), "-m", str(directory)]
    _run(probe, "lock timeout setup", [*url, "migrate", "--target", "002"], {}, 0)
    with psycopg.connect(probe.url()) as holder:
        holder.execute("SELECT * FROM accounts")
        for output in ([], ["--json"]):
            _run(
                probe,
                "lock timeout",
                [*url, *output, "migrate", "--lock-timeout", "0.1", "--lock-retries", "0"],
                {},
                1,
            )


def _sigterm(probe: Probe) -> None:
    """A real process, stopped with SIGTERM mid-migration: what it prints on the way out."""
    _reset(probe)
    directory = _migrations(probe, "sigterm", {"003_slow.sql": "SELECT pg_sleep(30);\n"})
    process = spawn("-d", probe.url(), "-m", str(directory), "migrate", workdir=probe.workdir)
    deadline = time.monotonic() + 30
    while "applied  002" not in process.stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    process.process.send_signal(signal.SIGTERM)
    assert process.wait() == 130
    probe.check("sigterm", process.stdout, process.stderr)
    for output in (
        [],
        ["--json"],
    ):  # a real process for the unreachable path too (anything printed below Python)
        unreachable = spawn("-d", probe.url(port=9), *output, "migrate", workdir=probe.workdir)
        assert unreachable.wait() == 3
        probe.check("unreachable (process)", unreachable.stdout, unreachable.stderr)


def _scan_files_and_database(probe: Probe) -> None:
    forms = secret_forms(PASSWORD, WRONG_PASSWORD, TOKEN)
    probe.hits += scan_paths([probe.workdir], forms)
    with psycopg.connect(probe.url(), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]:
            rows = conn.execute("SELECT * FROM schema_migrations").fetchall()
            probe.hits += scan_text(repr(rows), forms, "tracking table")


def _report(probe: Probe, what: str) -> None:
    record(
        [
            Outcome(
                "password in output",
                0,
                not probe.hits,
                f"{what}: {probe.runs} runs",
                None,
                "\n".join(str(h) for h in probe.hits[:10]),
                {"runs": probe.runs, "hits": len(probe.hits)},
            )
        ]
    )
    assert not probe.hits, "password found:\n" + "\n".join(str(h) for h in probe.hits[:20])


def test_the_scanner_finds_the_password_in_every_disguise(tmp_path):
    forms = secret_forms(PASSWORD)
    (tmp_path / "reports" / "allure-results").mkdir(parents=True)
    (tmp_path / "reports" / "allure-results" / "a.json").write_text(
        '{"url": "' + quote(PASSWORD, safe="") + '"}'
    )
    (tmp_path / "log.txt").write_bytes(b"connecting with " + PASSWORD.encode() + b"\n")
    (tmp_path / "doc.json").write_text('{"password": ' + json.dumps(PASSWORD) + "}")
    (tmp_path / "clean.txt").write_text("nothing to see\n")
    found = {Path(hit.where).name for hit in scan_paths([tmp_path], forms)}
    assert found == {"a.json", "log.txt", "doc.json"}
    assert scan_text(f"postgresql://u:{quote(PASSWORD, safe='')}@h/db", forms, "text")


# -- the long-running side: health endpoints and the deploy pipeline ----------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _probe_endpoints(probe: Probe, label: str, port: int, expect_database: int) -> None:
    """Every health endpoint, with and without the token; status, headers and body are scanned."""
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(base), f"{label}: pgship serve answering on {base}")
    for path, headers, expected in [
        ("/health/live", {}, 200),
        ("/health", {}, 200 if expect_database == 200 else 503),
        ("/health/database", {"Authorization": f"Bearer {TOKEN}"}, expect_database),
        ("/health/database", {}, 401),
        ("/health/database", {"Authorization": "Bearer wrong"}, 401),
        ("/health/database?password=x", {"Authorization": f"Bearer {TOKEN}"}, expect_database),
    ]:
        response = httpx.get(base + path, headers=headers, timeout=10)
        shown = f"{response.status_code} {dict(response.headers)} {response.text}"
        probe.check(f"{label} GET {path}", shown, "")
        assert response.status_code == expected, f"{label} GET {path}: {shown}"


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_no_password_from_the_health_endpoints(probe, budget):
    probe.runs, probe.hits = 0, []
    _reset(probe)
    directory = _migrations(probe, "serve")
    assert run_cli("-d", probe.url(), "-m", str(directory), "migrate").code == 0
    forms = probe.forms() if budget.full else {k: probe.forms()[k] for k in ("url", "DATABASE_URL")}
    cases = [(form, connection, env, 200) for form, (connection, env) in forms.items()]
    cases += [
        ("wrong password", ["-d", probe.url(WRONG_PASSWORD)], {}, 503),
        ("unreachable", ["-d", probe.url(port=9)], {}, 503),
    ]
    for label, connection, env, expect_database in cases:
        port = _free_port()
        server = spawn(
            *connection, "-m", str(directory), "serve", "--port", str(port), "--access-log",
            workdir=probe.workdir, env={**env, "PGSHIP_HEALTH_TOKEN": TOKEN},
        )  # fmt: skip
        try:
            _probe_endpoints(probe, f"serve ({label})", port, expect_database)
        finally:
            server.process.send_signal(signal.SIGTERM)
            server.wait(30)
        probe.check(f"serve ({label}) process", server.stdout, server.stderr)
    _scan_files_and_database(probe)
    _report(probe, "health endpoints")


def test_no_password_from_the_deploy_pipeline(probe, budget):
    probe.runs, probe.hits = 0, []
    _reset(probe)
    directory = _migrations(probe, "deploy")
    port = _free_port()
    log = probe.workdir / "deploy-start.log"
    env = {"PGSHIP_HEALTH_TOKEN": TOKEN}
    url = ["-d", probe.url(), "-m", str(directory)]
    result = run_cli(
        *url, "--json", "deploy", "--wait", "5", "--release-id", "r1",
        "--start", f"exec {sys.executable} -m pgship serve --port {port} --release-id r1",
        "--health-url", f"http://127.0.0.1:{port}/health/database", "--health-timeout", "30",
        "--start-log", str(log),
        env=env,
    )  # fmt: skip
    probe.check("deploy", result.stdout, result.stderr)
    service = (json.loads(result.stdout).get("service") or {}).get("pid")
    try:
        assert result.code == 0, result.output[-2000:]
        _probe_endpoints(probe, "deployed service", port, 200)
    finally:
        if service:
            os.killpg(service, signal.SIGTERM)
    failing = _migrations(probe, "deploy-failing", {"003_broken.sql": "SELECT 1 / 0;\n"})
    for output in ([], ["--json"]):
        _run(
            probe,
            "deploy: failing migration",
            ["-d", probe.url(), "-m", str(failing), *output, "deploy"],
            env,
            1,
        )
        _run(probe, "deploy: unreachable", ["-d", probe.url(port=9), "-m", str(directory), *output, "deploy",
                                            "--wait", "0.3"], env, 3)  # fmt: skip
        _run(
            probe, "deploy: health gate fails", [*url, *output, "deploy", "--start", "sleep 30",
            "--start-grace", "0.2", "--health-url", f"http://127.0.0.1:{_free_port()}/health/database",
            "--health-timeout", "1", "--start-log", str(log)], env, 1,
        )  # fmt: skip
        key = TrackingTable.parse("public.schema_migrations").lock_key
        with psycopg.connect(probe.url(), autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            _run(probe, "deploy: lock held", ["-d", probe.url(), "-m", str(failing), *output, "deploy",
                                              "--lock-wait", "0.3"], env, 4)  # fmt: skip
    _scan_files_and_database(probe)
    _report(probe, "deploy pipeline")


# -- first contact: malformed URLs and a start command that prints its environment ---------------------
def _malformed(probe: Probe) -> dict[str, str]:
    """The probe's password in URLs a person gets wrong; libpq accepts some of them, pgship refuses all."""
    host = f"127.0.0.1:{probe.port}/{probe.dbname}"
    encoded = quote(PASSWORD, safe="")
    return {
        "missing colon": f"postgresql//{ROLE}:{encoded}@{host}",
        "one slash": f"postgresql:/{ROLE}:{encoded}@{host}",
        "raw password": f"postgresql://{ROLE}:{PASSWORD}@{host}",  # its @, : and / unencoded
        "raw space": f"postgresql://{ROLE}:{encoded} Leak@{host}",
        "raw #": f"postgresql://{ROLE}:{encoded}#Leak@{host}",  # libpq reads this password
        "raw ?": f"postgresql://{ROLE}:{encoded}?Leak@{host}",  # and this one
        "port not a number": f"postgresql://{ROLE}:{encoded}@127.0.0.1:54x/{probe.dbname}",
        "SQLAlchemy scheme": f"postgresql+psycopg://{ROLE}:{encoded}@{host}",
    }


def test_a_malformed_url_is_refused_by_every_command_without_any_piece_of_the_password(probe):
    probe.runs, probe.hits = 0, []
    directory = _migrations(probe, "malformed")
    # any piece a library could quote on its own: "Leak", "Canary" are in no other text pgship prints
    forms = secret_forms(PASSWORD, WRONG_PASSWORD, TOKEN) | {"Leak", "Canary", "42%x", "Pg$hip"}
    commands = [
        ["status"], ["migrate"], ["plan"], ["verify"], ["diff"], ["baseline", "001"], ["repair"],
        ["wait", "--wait", "1"], ["serve", "--port", str(_free_port())], ["deploy", "--wait", "1"],
        ["review"],
    ]  # fmt: skip
    assert {c[0] for c in commands} | {"new"} >= COVERED - {"new"}
    for label, url in _malformed(probe).items():
        for how, connection, env in (("-d", ["-d", url], {}), ("DATABASE_URL", [], {"DATABASE_URL": url})):
            for output in ([], ["--json"]):
                for command in commands:
                    name = f"{label} ({how}) {' '.join(output + command)}"
                    result = run_cli(*connection, "-m", str(directory), *output, *command, env=env)
                    probe.runs += 1
                    probe.hits += scan_text(result.stdout, forms, f"{name} stdout")
                    probe.hits += scan_text(result.stderr, forms, f"{name} stderr")
                    assert result.code == 2, f"{name}: exit {result.code}\n{result.output}"
                    assert "not a valid postgresql:// URL" in result.output, f"{name}:\n{result.output}"
                    assert "bug in pgship" not in result.output, f"{name}:\n{result.output}"
                    if output:
                        assert json.loads(result.stdout)["status"] == "invalid", name
    probe.hits += scan_paths([probe.workdir], forms)
    _report(probe, "malformed URLs, every command")


def test_the_start_log_never_holds_the_password_even_when_the_command_prints_its_environment(probe):
    """Every way of passing the password, a start command that dumps its environment, text and JSON."""
    import stat

    probe.runs, probe.hits = 0, []
    _reset(probe)
    directory = _migrations(probe, "start-env")
    log = probe.workdir / "start-env" / ".pgship" / "start.log"
    dump = 'env; echo "url=$DATABASE_URL pw=$PGPASSWORD"; echo "to stderr: $DATABASE_URL" >&2'
    for form, (connection, env) in probe.forms().items():
        for output in ([], ["--json"]):
            _run(
                probe,
                f"deploy ({form}) with a start command printing its environment",
                [*connection, "-m", str(directory), *output, "deploy", "--wait", "5", "--start", dump,
                 "--start-log", str(log)],
                {**env, "PGSHIP_HEALTH_TOKEN": TOKEN},
                0,
            )  # fmt: skip
    text = log.read_text()
    assert text.count("\nurl=") == 2 * len(probe.forms()), "the start command's output is not in the log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    _scan_files_and_database(probe)
    _report(probe, "start log of a command printing its environment")
