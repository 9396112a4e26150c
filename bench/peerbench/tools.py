"""The tools under comparison: how each one is installed, invoked and checked.

Every tool gets the same database (fresh per apply), the same SQL, and its own
file format. A tool's ``applied_query`` counts the migrations it recorded, so a
run is only counted when the tool recorded all of them and the schema holds
every object (see :mod:`workload`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from peerbench.measure import ensure_gnu_time
from peerbench.workload import WorkloadFiles

BENCH_DIR = Path(__file__).resolve().parent.parent
TOOLS_DIR = BENCH_DIR / ".tools"
NPM_MANIFEST_DIR = BENCH_DIR / "npm"
PY_REQUIREMENTS = BENCH_DIR / "requirements-peers.txt"
PSQL_LOOP = Path(__file__).resolve().parent / "psql_loop.sh"
MINIMAL_RUNNER = Path(__file__).resolve().parent / "minimal_runner.py"

PYTHON_FLOOR = (
    "import os, psycopg\n"
    "with psycopg.connect(os.environ['DATABASE_URL']) as conn:\n"
    "    conn.execute('SELECT 1').fetchone()\n"
)


@dataclass(frozen=True)
class Target:
    """One fresh database and the files to apply to it."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    files: WorkloadFiles
    psql: Path

    def url(self, scheme: str = "postgresql", query: str = "") -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"{scheme}://{auth}@{self.host}:{self.port}/{quote(self.dbname)}{query}"

    def env(self) -> dict[str, str]:
        """A clean environment: none of the caller's PG* settings leak into a tool."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        base.update(
            PGHOST=self.host,
            PGPORT=str(self.port),
            PGUSER=self.user,
            PGPASSWORD=self.password,
            PGDATABASE=self.dbname,
            PGSSLMODE="disable",
            DATABASE_URL=self.url(),
        )
        return base


Command = Callable[[Target], list[str]]


@dataclass(frozen=True)
class Tool:
    key: str
    label: str
    apply: Command
    applied_query: str
    noop: Command | None = None
    status: Command | None = None
    env: Callable[[Target], dict[str, str]] = Target.env
    large: bool = False  # also run at sizes above 1000 by default
    version: str = ""


@dataclass
class Toolbox:
    """Paths and versions of everything installed, for commands and the report."""

    pgship: Path | None = None
    dbmate_bin: Path | None = None
    dbmate_npm: Path | None = None
    yoyo: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)


# -- installing the peers ------------------------------------------------------------


def _pinned_npm_version(package: str) -> str:
    manifest = json.loads((NPM_MANIFEST_DIR / "package.json").read_text())
    return str(manifest["dependencies"][package])


def _output(command: list[str], **kwargs: object) -> str:
    """What a command printed, or "" when it failed or is not installed (yet)."""
    if not shutil.which(command[0]):
        return ""
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    return (result.stdout + result.stderr).strip() if result.returncode == 0 else ""


def ensure_dbmate(log: Callable[[str], None]) -> tuple[Path, Path, str]:
    """Install the pinned npm ``dbmate`` into bench/.tools (once): (Go binary, npm wrapper, version)."""
    wanted = _pinned_npm_version("dbmate")
    binary = TOOLS_DIR / "node_modules" / "@dbmate" / "linux-x64" / "bin" / "dbmate"
    wrapper = TOOLS_DIR / "node_modules" / ".bin" / "dbmate"

    def installed() -> bool:
        return all(f"version {wanted}" in _output([str(p), "--version"]) for p in (binary, wrapper))

    if not installed():
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed to install dbmate (apt-get install npm)")
        log(f"installing dbmate {wanted} into {TOOLS_DIR} (npm)")
        TOOLS_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(NPM_MANIFEST_DIR / name, TOOLS_DIR / name)
        # npm ci refuses this lock file: npm records only the current platform's optional
        # binary package, then finds the others missing. npm install honours the lock.
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TOOLS_DIR, check=True
        )
        if not installed():
            raise SystemExit(f"dbmate {wanted} did not install into {TOOLS_DIR}")
    return binary, wrapper, wanted


def _pins(requirements: Path) -> dict[str, str]:
    pins = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def ensure_yoyo(log: Callable[[str], None]) -> tuple[Path, str]:
    """Install the pinned yoyo-migrations into its own venv in bench/.tools (once)."""
    pins = _pins(PY_REQUIREMENTS)
    env_dir = TOOLS_DIR / "venv"
    python = env_dir / "bin" / "python"
    probe = (
        "import importlib.metadata as m, json, sys; "
        "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    )

    def installed() -> bool:
        found = _output([str(python), "-c", probe, *pins]) if python.exists() else ""
        return bool(found) and json.loads(found) == pins

    if not installed():
        log(f"installing {', '.join(f'{n}=={v}' for n, v in pins.items())} into {env_dir} (pip)")
        if not python.exists():
            venv.EnvBuilder(with_pip=True).create(env_dir)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(PY_REQUIREMENTS),
            ],
            check=True,
        )
        if not installed():
            raise SystemExit(f"yoyo-migrations did not install into {env_dir}")
    return env_dir / "bin" / "yoyo", pins["yoyo-migrations"]


def find_pgship() -> Path | None:
    """The ``pgship`` console script next to this interpreter, if the CLI exists yet."""
    script = Path(sys.executable).parent / "pgship"
    if not script.exists():
        return None
    probe = subprocess.run([sys.executable, "-c", "import pgship.cli"], capture_output=True, check=False)
    return script if probe.returncode == 0 else None


def install_peers(log: Callable[[str], None]) -> Toolbox:
    ensure_gnu_time(log)
    box = Toolbox()
    box.dbmate_bin, box.dbmate_npm, box.versions["dbmate"] = ensure_dbmate(log)
    box.yoyo, box.versions["yoyo-migrations"] = ensure_yoyo(log)
    box.pgship = find_pgship()
    if box.pgship is not None:
        # as `pip install` does for an installed package (and for psycopg, which the Python floor
        # imports): an editable checkout run with PYTHONDONTWRITEBYTECODE would recompile every run
        import pgship

        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(Path(pgship.__file__).parent)],
            check=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        )
        box.versions["pgship"] = _output([sys.executable, "-c", "import pgship; print(pgship.__version__)"])
    box.versions["python"] = sys.version.split()[0]
    box.versions["node"] = _output(["node", "--version"])
    return box


# -- the tools -----------------------------------------------------------------------


def tools(box: Toolbox, *, psql_version: str) -> list[Tool]:
    """Every tool this machine can run, the floor first."""
    migrations_count = "SELECT count(*) FROM schema_migrations"

    def psql(target: Target, *args: str) -> list[str]:
        return [str(target.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", *args]

    found: list[Tool] = [
        Tool(
            key="floor",
            label="floor: one psql session",
            apply=lambda t: psql(t, "-f", str(t.files.floor)),
            applied_query=migrations_count,
            large=True,
            version=psql_version,
        )
    ]
    if box.pgship is not None:
        pgship = str(box.pgship)
        found.append(
            Tool(
                key="pgship",
                label="pgship migrate",
                apply=lambda t: [pgship, "-d", t.url(), "-m", str(t.files.numbered), "migrate"],
                noop=lambda t: [pgship, "-d", t.url(), "-m", str(t.files.numbered), "migrate"],
                status=lambda t: [pgship, "-d", t.url(), "-m", str(t.files.numbered), "status"],
                applied_query=migrations_count,
                large=True,
                version=box.versions.get("pgship", ""),
            )
        )
    psycopg_version = "psycopg " + _output(
        [sys.executable, "-c", "import psycopg; print(psycopg.__version__)"]
    )
    for key, label, flags in (
        ("psycopg-min", "minimal psycopg runner", []),
        ("psycopg-1rt", "minimal psycopg runner, 1 round trip/migration", ["--one-round-trip"]),
        ("psycopg-pipeline", "minimal psycopg runner, pipeline mode", ["--pipeline"]),
    ):

        def minimal(t: Target, flags: list[str] = flags) -> list[str]:
            return [sys.executable, str(MINIMAL_RUNNER), *flags, str(t.files.numbered)]

        found.append(
            Tool(
                key=key,
                label=label,
                apply=minimal,
                noop=minimal if not flags else None,
                applied_query=migrations_count,
                large=True,
                version=psycopg_version,
            )
        )
    for key, label, executable in (
        ("dbmate", "dbmate (Go binary)", box.dbmate_bin),
        ("dbmate-npm", "dbmate (npm wrapper)", box.dbmate_npm),
    ):
        if executable is None:
            continue
        command = [str(executable), "--no-dump-schema"]

        def dbmate_dir(t: Target, command: list[str] = command) -> list[str]:
            return [*command, "--migrations-dir", str(t.files.dbmate)]

        found.append(
            Tool(
                key=key,
                label=label,
                apply=lambda t, d=dbmate_dir: [*d(t), "migrate"],
                noop=lambda t, d=dbmate_dir: [*d(t), "migrate"],
                status=lambda t, d=dbmate_dir: [*d(t), "status"],
                env=lambda t: {**t.env(), "DATABASE_URL": t.url("postgres", "?sslmode=disable")},
                applied_query=migrations_count,
                version=box.versions.get("dbmate", ""),
            )
        )
    if box.yoyo is not None:
        yoyo = str(box.yoyo)

        def yoyo_command(t: Target, verb: str) -> list[str]:
            return [
                yoyo,
                verb,
                "--batch",
                "--no-config-file",
                "--database",
                t.url("postgresql+psycopg"),
                str(t.files.yoyo),
            ]

        found.append(
            Tool(
                key="yoyo",
                label="yoyo apply",
                apply=lambda t: yoyo_command(t, "apply"),
                noop=lambda t: yoyo_command(t, "apply"),
                status=lambda t: yoyo_command(t, "list"),
                applied_query="SELECT count(*) FROM _yoyo_migration",
                version=box.versions.get("yoyo-migrations", ""),
            )
        )
    found.append(
        Tool(
            key="psql-loop",
            label="psql -f per file (bash loop)",
            apply=lambda t: ["bash", str(PSQL_LOOP), str(t.files.numbered)],
            noop=lambda t: ["bash", str(PSQL_LOOP), str(t.files.numbered)],
            env=lambda t: {**t.env(), "PSQL": str(t.psql)},
            applied_query=migrations_count,
            version=psql_version,
        )
    )
    return found


# Reference points for the no-op rerun and status: the least any Python tool,
# and any process that talks to PostgreSQL at all, can cost.
def python_floor(target: Target) -> list[str]:
    return [sys.executable, "-c", PYTHON_FLOOR]


def psql_floor(target: Target) -> list[str]:
    return [str(target.psql), "-X", "-q", "-tA", "-c", "SELECT 1"]
