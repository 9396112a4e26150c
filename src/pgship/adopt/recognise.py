"""Recognising another tool's tracking table and reading its history into pgship's terms. Pure.

Each reader (:func:`golang_migrate`, :func:`dbmate`, :func:`goose`, :func:`flyway`) turns the
rows of its tool's table into a :class:`ForeignHistory`: the versions applied, or a refusal
saying why the history does not fit pgship's model. :mod:`pgship.adopt.takeover` reads the rows
from the database and copies them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pgship.migrations import Version

GOLANG_MIGRATE = "golang-migrate"
DBMATE = "dbmate"
GOOSE = "goose"
FLYWAY = "Flyway"

#: where each tool keeps its history by default (golang-migrate and dbmate share pgship's name)
DEFAULT_TABLES = {"schema_migrations": (GOLANG_MIGRATE, DBMATE), "goose_db_version": (GOOSE,),
                  "flyway_schema_history": (FLYWAY,)}  # fmt: skip
_GOOSE_COLUMNS = frozenset({"id", "version_id", "is_applied", "tstamp"})
_FLYWAY_COLUMNS = frozenset(
    {"installed_rank", "version", "description", "type", "script", "checksum", "installed_by",
     "installed_on", "execution_time", "success"}
)  # fmt: skip
#: Flyway row types that do not leave their version applied (undone, or deleted by ``flyway repair``)
_FLYWAY_REMOVALS = frozenset({"DELETE", "UNDO_SQL", "UNDO_JDBC", "UNDO_SCRIPT"})


@dataclass(frozen=True, slots=True)
class ForeignRow:
    """A version the other tool's table names as applied."""

    version: Version
    name: str | None = None
    applied_at: datetime | None = None


@dataclass(frozen=True)
class ForeignRefusal:
    """Why the other tool's history cannot be taken over without a person's decision."""

    versions: list[str]
    message: str
    hint: str


@dataclass(frozen=True)
class ForeignHistory:
    """Another tool's tracking table, as read: what it says is applied, and whether pgship can take it."""

    tool: str
    schema: str | None
    table: str
    rows: tuple[ForeignRow, ...] = ()
    through: Version | None = None  # every version up to this one is applied (golang-migrate, BASELINE)
    refusal: ForeignRefusal | None = None
    refused_versions: tuple[Version, ...] = ()  # dropped when a person's baseline overrides the refusal
    warnings: tuple[str, ...] = ()
    unreadable: tuple[str, ...] = ()
    in_place: bool = False  # the table becomes pgship's by adding columns (dbmate), not by a copy
    set_aside: str | None = None  # the table has pgship's name and is renamed to this (golang-migrate)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table

    @property
    def description(self) -> str:
        return f"{self.tool}'s tracking table {self.qualified}"

    def baselined(self) -> ForeignHistory:
        """The history when ``pgship baseline`` overrides the refusal: refused versions are not applied."""
        refused = {v.key for v in self.refused_versions}
        return replace(
            self,
            rows=tuple(r for r in self.rows if r.version.key not in refused),
            through=None if self.through is not None and self.through.key in refused else self.through,
            refusal=None,
            refused_versions=(),
        )


@dataclass
class _Reading:
    rows: list[ForeignRow] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def add(self, text: Any, name: str | None = None, applied_at: datetime | None = None) -> Version | None:
        try:
            version = Version.parse(str(text).strip())
        except ValueError:
            self.unreadable.append(str(text))
            return None
        self.rows.append(ForeignRow(version, name, applied_at))
        return version


def shape(columns: Collection[str]) -> str | None:
    """Which tool builds a table with these columns (None: pgship's, the old runner's, or unknown)."""
    names = set(columns)
    if names == {"version", "dirty"}:
        return GOLANG_MIGRATE
    if names == {"version"}:
        return DBMATE
    if names >= _GOOSE_COLUMNS and "version" not in names:
        return GOOSE
    if names >= _FLYWAY_COLUMNS:
        return FLYWAY
    return None


# -- reading each tool's rows (pure) ---------------------------------------------------------------
def golang_migrate(schema: str | None, table: str, rows: Sequence[tuple[Any, bool]]) -> ForeignHistory:
    """golang-migrate's ``(version, dirty)`` rows: one row, every version up to it applied."""
    base = ForeignHistory(GOLANG_MIGRATE, schema, table)
    if not rows:  # golang-migrate empties the table when every migration is migrated down
        return base
    qualified = base.qualified
    if len(rows) > 1:
        versions = sorted(str(v) for v, _ in rows)
        return replace(
            base,
            refusal=ForeignRefusal(
                versions,
                f"golang-migrate's tracking table {qualified} holds {len(rows)} rows "
                f"({', '.join(versions)}); golang-migrate keeps exactly one, so which version the "
                "database is at is unclear",
                "Check which version the schema is at, then record it with golang-migrate's "
                "`migrate force V` (one row again), or adopt the database directly with `pgship baseline V`.",
            ),
        )
    [(raw, dirty)] = rows
    reading = _Reading()
    version = reading.add(raw)
    if version is None:
        return replace(base, unreadable=tuple(reading.unreadable))
    if dirty:
        return replace(
            base,
            rows=tuple(reading.rows),
            through=version,
            refused_versions=(version,),
            refusal=ForeignRefusal(
                [str(version)],
                f"golang-migrate's tracking table {qualified} is dirty at version {version}: migration "
                f"{version} failed part-way, so nobody knows which of its changes are in the database",
                f"Fix the database by hand first: finish what migration {version} started, or undo it. "
                f"Then record where it stands, either with golang-migrate (`migrate force {version}` if "
                "finished, `migrate force <the version before it>` if undone) and run pgship again, or "
                f"with pgship directly: `pgship baseline {version}` if finished, `pgship baseline <the "
                "version before it>` if undone.",
            ),
        )
    return replace(base, rows=tuple(reading.rows), through=version)


def dbmate(schema: str | None, table: str, versions: Iterable[Any]) -> ForeignHistory:
    """dbmate's rows: one per applied version."""
    reading = _Reading()
    for text in versions:
        reading.add(text)
    return ForeignHistory(
        DBMATE, schema, table, rows=tuple(reading.rows), unreadable=tuple(reading.unreadable)
    )


def goose(
    schema: str | None, table: str, rows: Sequence[tuple[int, Any, bool, datetime | None]]
) -> ForeignHistory:
    """goose's ``(id, version_id, is_applied, tstamp)`` rows: applied if a version's latest row says so."""
    latest: dict[int, tuple[int, bool, datetime | None]] = {}
    for row_id, version_id, is_applied, tstamp in sorted(rows, key=lambda r: r[0]):
        if int(version_id) == 0:  # goose's own bootstrap row
            continue
        latest[int(version_id)] = (row_id, bool(is_applied), tstamp)
    reading = _Reading()
    applied = sorted((row_id, vid, at) for vid, (row_id, ok, at) in latest.items() if ok)
    for _, version_id, at in sorted(applied, key=lambda item: item[1]):
        reading.add(version_id, applied_at=at)
    base = ForeignHistory(GOOSE, schema, table, rows=tuple(reading.rows))
    # goose applies a missing older version after newer ones only with --allow-missing (out of order)
    late = [
        (vid, newer)
        for index, (_, vid, _) in enumerate(applied)
        for newer in [max((v for _, v, _ in applied[:index]), default=None)]
        if newer is not None and vid < newer
    ]
    if late:
        versions = [str(vid) for vid, _ in late]
        described = ", ".join(f"{vid} after {newer}" for vid, newer in late)
        newest = max(vid for _, vid, _ in applied)
        return replace(
            base,
            refused_versions=(),
            refusal=ForeignRefusal(
                versions,
                f"goose's tracking table {base.qualified} shows migrations applied out of order "
                f"({described}, with --allow-missing); pgship keeps one history in version order and "
                "cannot tell whether the later files depended on what ran after them",
                f"Check that the schema is what version {newest} expects, then adopt the database with "
                f"`pgship baseline {newest}`.",
            ),
        )
    return base


def flyway(
    schema: str | None,
    table: str,
    rows: Sequence[tuple[int, str | None, str | None, str, bool, datetime | None]],
) -> ForeignHistory:
    """Flyway's ``(installed_rank, version, description, type, success, installed_on)`` rows."""
    latest: dict[str, tuple[str | None, str, bool, datetime | None]] = {}
    repeatables = 0
    for _, version, description, kind, success, installed_on in sorted(rows, key=lambda r: r[0]):
        if kind == "SCHEMA":  # "<< Flyway Schema Creation >>": Flyway created the schema, not a migration
            continue
        if version is None:
            repeatables += 1
            continue
        latest[version] = (description, kind, bool(success), installed_on)
    base = ForeignHistory(FLYWAY, schema, table)
    failed = [v for v, (_, kind, ok, _) in latest.items() if not ok and kind not in _FLYWAY_REMOVALS]
    reading = _Reading()
    through: Version | None = None
    for version, (description, kind, ok, at) in latest.items():
        if not ok or kind in _FLYWAY_REMOVALS:
            continue
        parsed = reading.add(version, (description or "").replace(" ", "_") or None, at)
        if parsed is not None and kind == "BASELINE" and (through is None or through < parsed):
            through = parsed
    reading.rows.sort(key=lambda r: r.version.key)
    warnings = (
        (
            f"{FLYWAY}'s history has {repeatables} run(s) of repeatable migrations (R__ files); pgship "
            "has no repeatable migrations and leaves what they made as it is",
        )
        if repeatables
        else ()
    )
    base = replace(
        base,
        rows=tuple(reading.rows),
        through=through,
        warnings=warnings,
        unreadable=tuple(reading.unreadable),
    )
    if failed:
        return replace(
            base,
            refused_versions=tuple(Version.parse(v) for v in failed if _is_version(v)),
            refusal=ForeignRefusal(
                failed,
                f"Flyway's history {base.qualified} records a failed migration: version "
                f"{', '.join(failed)} (success = false), so part of it may be in the database",
                "Fix the database by hand (finish or undo that migration), then either remove the failed "
                "row with `flyway repair` and run pgship again, or adopt the database directly with "
                "`pgship baseline V`, V being the version whose schema the database now has.",
            ),
        )
    return base


def _is_version(text: str) -> bool:
    try:
        Version.parse(text)
    except ValueError:
        return False
    return True


def applied_rows(foreign: ForeignHistory, files: Iterable[tuple[Version, str]]) -> list[ForeignRow]:
    """Every version the other tool counts as applied: its rows, plus each file up to ``through``. Pure.

    ``files`` are the release's ``(version, name)``: a row of a version that has a file takes the
    file's spelling of the version (``000003``, not golang-migrate's ``3``) and its name.
    """
    found = {row.version.key: row for row in foreign.rows}
    for version, name in files:
        row = found.get(version.key)
        if row is not None:
            found[version.key] = ForeignRow(version, name, row.applied_at)
        elif foreign.through is not None and version <= foreign.through:
            found[version.key] = ForeignRow(version, name)
    return sorted(found.values(), key=lambda row: row.version.key)


__all__ = [
    "DBMATE",
    "DEFAULT_TABLES",
    "FLYWAY",
    "GOLANG_MIGRATE",
    "GOOSE",
    "ForeignHistory",
    "ForeignRefusal",
    "ForeignRow",
    "applied_rows",
    "dbmate",
    "flyway",
    "golang_migrate",
    "goose",
    "shape",
]
