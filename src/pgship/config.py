"""Where settings come from: flags, then the environment, then ``[tool.pgship]`` in pyproject.toml.

Kept apart from argument parsing so the precedence is one small, tested function.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pgship.errors import UsageError
from pgship.history import DEFAULT_TABLE

DEFAULT_MIGRATIONS_DIR = "docker/postgres/migrations"
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
    elif environ.get("DATABASE_URL"):
        url, source = environ["DATABASE_URL"], "DATABASE_URL"
    elif environ.get("PGHOST") or environ.get("PGDATABASE") or environ.get("PGSERVICE"):
        url, source = None, "PG* variables"
    else:
        url, source = None, "none"

    directory = migrations_dir or environ.get("PGSHIP_MIGRATIONS_DIR") or project.get("migrations_dir")
    path = Path(directory or DEFAULT_MIGRATIONS_DIR)
    if not path.is_absolute():
        path = cwd / path
    return Settings(
        database_url=url,
        migrations_dir=path,
        table=table or environ.get("PGSHIP_TABLE") or project.get("table") or DEFAULT_TABLE,
        database_source=source,
    )


def _pyproject_settings(cwd: Path) -> dict[str, str]:
    path = cwd / "pyproject.toml"
    if not path.is_file():
        return {}
    import tomllib  # only when there is a pyproject.toml: keeps it off a plain run's start-up

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
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
