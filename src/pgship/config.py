"""Where settings come from: flags, then the environment, then ``[tool.pgship]`` in pyproject.toml.

Precedence, for every setting: **flag > environment > pyproject > default**. An option given on the
command line always wins; an environment variable fills in what no flag gave; ``[tool.pgship]``
(migrations_dir, table) what neither gave; then the built-in default.

Kept apart from argument parsing so the precedence is small, tested functions. This module owns every
default and every environment variable name pgship reads: nothing else reads ``os.environ`` for a
setting (libpq's PG* variables are libpq's).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pgship.errors import UsageError
from pgship.history import DEFAULT_TABLE

DEFAULT_MIGRATIONS_DIR = "docker/postgres/migrations"

# -- environment variables ------------------------------------------------------------
DATABASE_URL_ENV = "DATABASE_URL"
MIGRATIONS_DIR_ENV = "PGSHIP_MIGRATIONS_DIR"
TABLE_ENV = "PGSHIP_TABLE"
#: A scratch server for replays (verify --replay, diff, review --replay) instead of an embedded one.
REPLAY_URL_ENV = "PGSHIP_REPLAY_URL"
#: An address that bypasses a transaction pooler (--direct-url).
DIRECT_URL_ENV = "PGSHIP_DIRECT_URL"
#: Who is recorded in the tracking table's applied_by (after the database role).
#: the fleet file `--fleet` reads when given no path (else [tool.pgship.fleet] in pyproject.toml)
FLEET_FILE = "pgship.fleet.toml"
#: How long a migration lease lasts through a transaction pooler unless renewed (``--lease-ttl``)
LEASE_TTL_S = 30.0
APPLIED_BY_ENV = "PGSHIP_APPLIED_BY"
#: "1": unexpected errors show their traceback; library log lines are shown (scrubbed).
DEBUG_ENV = "PGSHIP_DEBUG"
#: The release being served or deployed (serve and deploy --release-id).
RELEASE_ID_ENV = "PGSHIP_RELEASE_ID"
#: The default name of the variable holding the health endpoint's bearer token (--token-env).
HEALTH_TOKEN_ENV = "PGSHIP_HEALTH_TOKEN"
#: GitHub Actions' job summary file: fleet runs append their Markdown report to it.
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
#: Health check defaults, here so `pgship --help` does not import the web stack to show them.
HEALTH_CACHE_TTL_S = 2.0
HEALTH_CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one invocation."""

    database_url: str | None
    migrations_dir: Path
    table: str
    database_source: str  # "flag", "DATABASE_URL", "PG* variables" or "none"

    @property
    def has_database(self) -> bool:
        """Whether a database was named explicitly (flag, DATABASE_URL or PGHOST/PGDATABASE)."""
        return self.database_source != "none"


def resolve(
    *,
    database_url: str | None = None,
    migrations_dir: str | None = None,
    table: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Combine flags (given here), environment variables and pyproject.toml, in that order."""
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    project = _pyproject_settings(cwd)

    if database_url:
        url, source = database_url, "flag"
    elif environ.get(DATABASE_URL_ENV):
        url, source = environ[DATABASE_URL_ENV], DATABASE_URL_ENV
    elif environ.get("PGHOST") or environ.get("PGDATABASE") or environ.get("PGSERVICE"):
        url, source = None, "PG* variables"
    else:
        url, source = None, "none"

    directory = migrations_dir or environ.get(MIGRATIONS_DIR_ENV) or project.get("migrations_dir")
    path = Path(directory or DEFAULT_MIGRATIONS_DIR)
    if not path.is_absolute():
        path = cwd / path
    return Settings(
        database_url=url,
        migrations_dir=path,
        table=table or environ.get(TABLE_ENV) or project.get("table") or DEFAULT_TABLE,
        database_source=source,
    )


def flag_or_env(flag: str | None, name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """An option given on the command line, else the environment variable ``name``; None when neither
    is set (an empty value counts as unset)."""
    if flag:
        return flag
    environ = os.environ if environ is None else environ
    return environ.get(name) or None


def replay_url(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """--replay-url, else ``PGSHIP_REPLAY_URL``; None: replay on an embedded PostgreSQL."""
    return flag_or_env(flag, REPLAY_URL_ENV, environ)


def direct_url(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """--direct-url, else ``PGSHIP_DIRECT_URL``; None: no way around a pooler."""
    return flag_or_env(flag, DIRECT_URL_ENV, environ)


def applied_by(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """Who applies: an explicit option wins over ``PGSHIP_APPLIED_BY``; None: the runner's default
    (``<os user>@<host>``)."""
    return flag_or_env(flag, APPLIED_BY_ENV, environ)


def release_id(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """--release-id, else ``PGSHIP_RELEASE_ID``; None: not set."""
    return flag_or_env(flag, RELEASE_ID_ENV, environ)


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret held by environment variable ``name`` (--token-env NAME); None when unset or empty.

    Secrets are never options: a command line is visible to every user of the machine."""
    return flag_or_env(None, name, environ)


def debug(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``PGSHIP_DEBUG=1`` asks for tracebacks and library log lines."""
    environ = os.environ if environ is None else environ
    return environ.get(DEBUG_ENV) == "1"


def step_summary(environ: Mapping[str, str] | None = None) -> Path | None:
    """The GitHub Actions job summary file, when running in a job that has one."""
    path = flag_or_env(None, STEP_SUMMARY_ENV, environ)
    return Path(path) if path else None


def _pyproject_settings(cwd: Path) -> dict[str, str]:
    path = cwd / "pyproject.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read {path}: {exc}", hint="Fix the file, or pass settings as flags."
        ) from None
    if "pgship" not in text:  # no [tool.pgship]: the project's file is none of pgship's business
        return {}
    import tomllib  # only for a pyproject.toml that mentions pgship: keeps it off most start-ups

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"cannot read {path}: {exc}", hint="Fix the file, or pass settings as flags."
        ) from None
    section = data.get("tool", {}).get("pgship", {})
    unknown = set(section) - {"migrations_dir", "table", "fleet"}  # fleet: read by pgship.fleet
    if unknown:
        raise UsageError(
            f"unknown setting(s) in [tool.pgship] of {path}: {', '.join(sorted(unknown))}",
            hint="Known settings: migrations_dir, table. The database URL belongs in DATABASE_URL, "
            "never in a committed file.",
        )
    return {key: str(value) for key, value in section.items() if key != "fleet"}
