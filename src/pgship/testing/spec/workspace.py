"""A scenario's working directory, and the sample application whose releases the scenarios ship.

"Release N" is the sample application's first N migration files, in version
order. Its versions have gaps (001, 002, 003, 005, 010) and later files depend
on earlier ones, so applying them out of order would fail loudly. Scenarios
that need a bad file swap in a broken variant of one version.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

_SAMPLE_PACKAGE = "pgship.testing.spec"


@dataclass(frozen=True)
class SampleMigration:
    """One file of the sample application."""

    version: str
    name: str
    filename: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the text, BOM removed, line endings normalised (docs/ARCHITECTURE.md, "Contracts")."""
        return sha256_of_migration_text(self.sql)


def sha256_of_migration_text(text: str) -> str:
    """The checksum rule of the tracking table, computed independently of pgship's own code."""
    normalised = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _read_sample(folder: str) -> dict[str, SampleMigration]:
    root = resources.files(_SAMPLE_PACKAGE).joinpath(folder)
    found: dict[str, SampleMigration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, _, rest = entry.name.partition("_")
        found[version] = SampleMigration(
            version, rest.removesuffix(".sql"), entry.name, entry.read_text("utf-8")
        )
    return found


@dataclass(frozen=True)
class ExpectedFailure:
    """How a broken variant fails: the line of the failing statement and the server's message."""

    line: int
    sqlstate: str
    message: str


#: the broken variants' failures, as PostgreSQL reports them
EXPECTED_FAILURES = {
    "003": ExpectedFailure(line=10, sqlstate="42703", message='column "status" does not exist'),
}


class SampleApp:
    """The sample shop's migrations, read from the package."""

    def __init__(self) -> None:
        good = _read_sample("sample_app")
        self.migrations: list[SampleMigration] = sorted(good.values(), key=lambda m: _version_key(m.version))
        self.broken: dict[str, SampleMigration] = _read_sample("sample_app/broken")

    def release(self, number: int) -> list[SampleMigration]:
        """The first ``number`` migrations."""
        if not 0 <= number <= len(self.migrations):
            raise ValueError(f"the sample app has releases 0..{len(self.migrations)}, not {number}")
        return self.migrations[:number]

    def by_version(self, version: str) -> SampleMigration:
        for migration in self.migrations:
            if _version_key(migration.version) == _version_key(version):
                return migration
        raise KeyError(f"the sample app has no migration {version}")

    def broken_variant(self, version: str) -> SampleMigration:
        try:
            return self.broken[version]
        except KeyError:
            raise KeyError(f"the sample app has no failing variant of migration {version}") from None


SAMPLE_APP = SampleApp()


class Workspace:
    """A temporary project directory with a migrations folder, removed after the scenario."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix="pgship-spec-"))
        self.migrations_dir = self.root / "migrations"
        self.migrations_dir.mkdir(parents=True, exist_ok=True)

    def write(self, filename: str, sql: str) -> Path:
        """Put one migration file into the migrations folder (replacing any file of that name)."""
        path = self.migrations_dir / filename
        path.write_text(sql, encoding="utf-8")
        return path

    def ship_release(self, number: int, *, broken: tuple[str, ...] = ()) -> list[SampleMigration]:
        """Make the migrations folder hold exactly release ``number``; ``broken`` versions fail."""
        for old in self.migrations_dir.glob("*.sql"):
            old.unlink()
        shipped: list[SampleMigration] = []
        for migration in SAMPLE_APP.release(number):
            chosen = (
                SAMPLE_APP.broken_variant(migration.version) if migration.version in broken else migration
            )
            self.write(chosen.filename, chosen.sql)
            shipped.append(chosen)
        return shipped

    def path_of(self, migration: SampleMigration) -> Path:
        return self.migrations_dir / migration.filename

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
