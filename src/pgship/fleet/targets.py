"""What a fleet is: targets (a database, or a schema in one), their groups and their order. Pure.

A fleet is described in the repository, in ``pgship.fleet.toml`` or a ``[tool.pgship.fleet]``
table of ``pyproject.toml``. A committed file never holds a password: targets name the
environment variable that holds their URL (``url_env``), a libpq service (``service``), or a
URL without a password (the password then comes from ``PGPASSWORD`` or ``~/.pgpass``). A file
with a password anywhere in it is refused (exit 2) before anything connects.

Targets can also be enumerated when the command runs, by a SQL query on a catalog database
(``[[query]]`` entries, or ``--fleet-query``): each row is one target, by its columns
``database`` (or ``datname``), ``schema`` (or ``nspname``), ``name`` and ``group``.

This module only parses and selects; connecting and running the queries is
:mod:`pgship.fleet.execute`'s job.

One file although over 400 lines: most of it is the fleet file's grammar and the refusals
that guard it (unknown keys, duplicates, a password anywhere), which read best beside the
parser they guard; ordering waves and picking a shard are a few lines on the same types.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgship import config
from pgship.database import redact
from pgship.errors import UsageError

FLEET_FILE = config.FLEET_FILE  # the default lives with every other default
DEFAULT_GROUP = "default"
CANARY_GROUP = "canary"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_NAME = re.compile(r"^[A-Za-z0-9_.:/@+-]{1,200}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL_WITH_PASSWORD = re.compile(r"postgres(?:ql)?://[^/@\s]*:[^@\s]*@", re.I)
_KEYWORD_PASSWORD = re.compile(r"\b(?:ssl)?password\s*=", re.I)  # key=value or ?password= in a URL
_TARGET_KEYS = {"name", "url_env", "service", "url", "database", "schema", "group", "table"}
_QUERY_KEYS = {"name", "url_env", "service", "url", "sql", "group", "table"}
_TOP_KEYS = {"groups", "canary", "target", "query"}


@dataclass(frozen=True)
class Source:
    """Where a connection comes from: exactly one of an environment variable, a service, a URL.

    ``None`` everywhere means the command's own database (``-d``, ``DATABASE_URL`` or PG*).
    """

    url_env: str | None = None
    service: str | None = None
    url: str | None = None

    def describe(self) -> str:
        if self.url_env:
            return f"${self.url_env}"
        if self.service:
            return f"service={self.service}"
        if self.url:
            return redact(self.url)
        return "the command's database"


@dataclass(frozen=True)
class Target:
    """One database (or one schema in a database) that gets the release, with its own tracking table."""

    name: str
    source: Source = field(default_factory=Source)
    database: str | None = None  # overrides the source's database name (targets found by a query)
    schema: str | None = None  # schema-per-tenant: migrations run with search_path = this schema
    group: str = DEFAULT_GROUP
    table: str | None = None  # tracking table; default: the command's, in ``schema`` when set

    def tracking_table(self, default: str) -> str:
        """The tracking table's name for this target: always in the tenant's schema for a schema target.

        A schema-qualified default (``--table app.schema_migrations``) keeps only its name there:
        tenants sharing one tracking table would each see the others' rows as their own history.
        """
        name = self.table or default
        if self.schema:
            return f"{self.schema}.{name.rpartition('.')[2]}"
        return name


@dataclass(frozen=True)
class TargetQuery:
    """Targets enumerated at run time by a query on a catalog database."""

    name: str
    sql: str
    source: Source = field(default_factory=Source)
    group: str = DEFAULT_GROUP
    table: str | None = None


@dataclass(frozen=True)
class FleetSpec:
    """A fleet as written: fixed targets, queries to run, and the order of groups."""

    targets: tuple[Target, ...] = ()
    queries: tuple[TargetQuery, ...] = ()
    groups: tuple[str, ...] = ()  # the order groups run in; unlisted groups follow, in first-seen order
    canary: str | None = CANARY_GROUP  # runs first and alone; a failure there starts no other group
    origin: str = "command line"


@dataclass(frozen=True)
class Wave:
    """A group of targets that may run at the same time; the waves run one after another."""

    group: str
    targets: tuple[Target, ...]
    canary: bool = False


# -- reading ------------------------------------------------------------------------
def parse_fleet(data: Mapping[str, Any], origin: str) -> FleetSpec:
    """A :class:`FleetSpec` from a parsed TOML document (``origin`` names it in errors)."""
    _refuse_passwords(data, origin, ())
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _bad(
            origin, f"unknown key(s) {', '.join(sorted(unknown))}", f"Known keys: {_known(_TOP_KEYS)}."
        )
    groups = data.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and _NAME.match(g) for g in groups):
        raise _bad(origin, "groups must be a list of group names", 'Example: groups = ["canary", "wave-1"]')
    canary = data.get("canary", CANARY_GROUP)
    if canary is not False and not isinstance(canary, str):
        raise _bad(origin, "canary must be a group name, or false", 'Example: canary = "canary"')
    targets = tuple(
        _target(entry, origin, index) for index, entry in enumerate(_entries(data, "target", origin), 1)
    )
    queries = tuple(
        _query(entry, origin, index) for index, entry in enumerate(_entries(data, "query", origin), 1)
    )
    if not targets and not queries:
        raise _bad(
            origin,
            "the fleet has no [[target]] and no [[query]]",
            "Name each database in a [[target]] (url_env = or service =), "
            "or enumerate them with a [[query]].",
        )
    duplicates = _duplicates([t.name for t in targets])
    if duplicates:
        raise _bad(
            origin, f"target name(s) used twice: {', '.join(duplicates)}", "Give each target its own name."
        )
    return FleetSpec(targets, queries, tuple(groups), canary or None, origin)


def read_fleet_file(path: Path) -> FleetSpec:
    """Parse ``pgship.fleet.toml`` (or any fleet file)."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(
            f"cannot read the fleet file {path}: {exc.strerror or exc}",
            hint="Pass --fleet FILE, or create pgship.fleet.toml.",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{path}: not valid TOML: {redact(str(exc))}", hint="Fix the file's syntax."
        ) from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text", hint="Save the fleet file as UTF-8.") from None
    return parse_fleet(data, str(path))


def fleet_from_pyproject(path: Path) -> FleetSpec | None:
    """The ``[tool.pgship.fleet]`` table of a ``pyproject.toml``, if it has one."""
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None  # config.resolve reports an unreadable pyproject.toml
    section = data.get("tool", {}).get("pgship", {}).get("fleet")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise UsageError(
            f"{path}: [tool.pgship.fleet] must be a table", hint="See pgship.fleet.toml's format."
        )
    return parse_fleet(section, f"{path} [tool.pgship.fleet]")


def query_spec(sql: str) -> FleetSpec:
    """A fleet of one run-time query on the command's database (``--fleet-query SQL``)."""
    if not sql.strip():
        raise UsageError(
            "--fleet-query: the query is empty",
            hint="Example: --fleet-query \"SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%'\"",
        )
    return FleetSpec(queries=(TargetQuery("query", sql),), origin="--fleet-query")


def targets_from_rows(
    query: TargetQuery, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[Target]:
    """The targets a catalog query returned, one per row."""
    names = [c.lower() for c in columns]

    def column(*candidates: str) -> int | None:
        for candidate in candidates:
            if candidate in names:
                return names.index(candidate)
        return None

    database, schema = column("database", "datname", "dbname"), column("schema", "nspname", "schema_name")
    name_at, group_at = column("name", "target"), column("group", "wave")
    if database is None and schema is None:
        if len(names) == 1:
            database = 0
        else:
            raise UsageError(
                f"fleet query {query.name!r} returns columns {', '.join(names)}: "
                "none names a database or a schema",
                hint="Return a column named database (or datname) and/or schema (or nspname); "
                "optional: name, group.",
            )
    found: list[Target] = []
    for row in rows:
        db = _text(row, database)
        sch = _text(row, schema)
        if db is None and sch is None:
            continue
        if sch is not None and not _IDENTIFIER.match(sch):
            raise UsageError(
                f"fleet query {query.name!r} returned schema {sch!r}: not a plain identifier",
                hint="Schemas of a fleet use letters, digits and _ (at most 63).",
            )
        label = _text(row, name_at) or "/".join(part for part in (db, sch) if part)
        group = _text(row, group_at) or query.group
        found.append(Target(label, query.source, db, sch, group, query.table))
    duplicates = _duplicates([t.name for t in found])
    if duplicates:
        raise UsageError(
            f"fleet query {query.name!r} returned the same target twice: {', '.join(duplicates[:5])}",
            hint="Return each database (or schema) once, or a distinct name column.",
        )
    return found


# -- ordering and selecting ----------------------------------------------------------
def plan_waves(targets: Sequence[Target], groups: Sequence[str], canary: str | None) -> list[Wave]:
    """Targets grouped into waves: the canary group first, then ``groups`` in order, then the rest."""
    by_group: dict[str, list[Target]] = {}
    for target in targets:
        by_group.setdefault(target.group, []).append(target)
    order = [g for g in ([canary] if canary else []) if g in by_group]
    order += [g for g in groups if g in by_group and g not in order]
    order += [g for g in by_group if g not in order]
    return [Wave(g, tuple(by_group[g]), canary=(g == canary)) for g in order]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``: the second of eight slices (1-based, as a CI matrix counts)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 1/4", hint="K counts from 1 to N.")
    index, count = int(match[1]), int(match[2])
    if count < 1 or not 1 <= index <= count:
        raise UsageError(
            f"--shard {text}: K must be between 1 and N (N at least 1)", hint="Example: --shard 1/4"
        )
    return index, count


def shard_of(name: str, count: int) -> int:
    """The 1-based slice a target belongs to: a stable hash of its name, the same on every machine."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_shard(targets: Sequence[Target], index: int, count: int) -> list[Target]:
    return [t for t in targets if shard_of(t.name, count) == index]


# -- helpers --------------------------------------------------------------------------
def _entries(data: Mapping[str, Any], key: str, origin: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(origin, f"{key} must be a list of tables", f"Write each one as [[{key}]].")
    return value


def _source(entry: Mapping[str, Any], where: str, origin: str, *, required: bool) -> Source:
    given = [key for key in ("url_env", "service", "url") if entry.get(key) is not None]
    if len(given) > 1:
        raise _bad(origin, f"{where}: {' and '.join(given)} both given", "Name the connection one way only.")
    if not given:
        if required:
            raise _bad(
                origin,
                f"{where}: no connection",
                'Name the environment variable that holds its URL (url_env = "TENANT_A_URL") or a libpq '
                'service (service = "tenant-a"). Never write a password in this file.',
            )
        return Source()
    key = given[0]
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise _bad(origin, f"{where}: {key} must be a non-empty string", "")
    if key == "url_env" and not _ENV_NAME.match(value):
        raise _bad(
            origin,
            f"{where}: url_env {value!r} is not an environment variable name",
            'url_env names the variable, e.g. url_env = "TENANT_A_URL", not the URL itself.',
        )
    return Source(**{key: value})


def _target(entry: Mapping[str, Any], origin: str, index: int) -> Target:
    where = f"[[target]] #{index}"
    unknown = set(entry) - _TARGET_KEYS
    if unknown:
        raise _bad(
            origin, f"{where}: unknown key(s) {', '.join(sorted(unknown))}", f"Known: {_known(_TARGET_KEYS)}."
        )
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _bad(
            origin,
            f"{where}: name is missing or has characters other than letters, digits and _.:/@+-",
            'Example: name = "tenant-a"',
        )
    where = f"target {name!r}"
    source = _source(entry, where, origin, required=entry.get("database") is None)
    schema = _optional(entry, "schema", where, origin)
    if schema is not None and not _IDENTIFIER.match(schema):
        raise _bad(
            origin, f"{where}: schema {schema!r} is not a plain identifier", "Use letters, digits and _."
        )
    return Target(
        name,
        source,
        _optional(entry, "database", where, origin),
        schema,
        _optional(entry, "group", where, origin) or DEFAULT_GROUP,
        _optional(entry, "table", where, origin),
    )


def _query(entry: Mapping[str, Any], origin: str, index: int) -> TargetQuery:
    where = f"[[query]] #{index}"
    unknown = set(entry) - _QUERY_KEYS
    if unknown:
        raise _bad(
            origin, f"{where}: unknown key(s) {', '.join(sorted(unknown))}", f"Known: {_known(_QUERY_KEYS)}."
        )
    sql = entry.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise _bad(
            origin,
            f"{where}: sql is missing",
            "Example: sql = \"SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%'\"",
        )
    return TargetQuery(
        _optional(entry, "name", where, origin) or f"query-{index}",
        sql,
        _source(entry, where, origin, required=False),
        _optional(entry, "group", where, origin) or DEFAULT_GROUP,
        _optional(entry, "table", where, origin),
    )


def _optional(entry: Mapping[str, Any], key: str, where: str, origin: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(origin, f"{where}: {key} must be a non-empty string", "")
    return value


def _refuse_passwords(value: Any, origin: str, path: tuple[str, ...]) -> None:
    """Refuse any password in the file: as a key, in a URL, or in a key=value connection string."""
    where = ".".join(path) or "the file"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in ("password", "pgpassword", "passwd"):
                raise _password(origin, f"{where}.{key}")
            _refuse_passwords(item, origin, (*path, str(key)))
    elif isinstance(value, list):
        for number, item in enumerate(value, 1):
            _refuse_passwords(item, origin, (*path, str(number)))
    elif isinstance(value, str) and (_URL_WITH_PASSWORD.search(value) or _KEYWORD_PASSWORD.search(value)):
        raise _password(origin, where)


def _password(origin: str, where: str) -> UsageError:
    return UsageError(
        f"{origin}: {where} holds a password; a fleet file is committed to the repository and must not",
        hint="Remove it, and rotate that password: it is in your history now. Name the environment "
        'variable that holds the URL instead (url_env = "TENANT_A_URL"), a libpq service '
        '(service = "tenant-a", password in ~/.pgpass), or a URL without password plus PGPASSWORD.',
    )


def _bad(origin: str, message: str, hint: str) -> UsageError:
    return UsageError(f"{origin}: {message}", hint=hint or "Fix the fleet file and run again.")


def _known(keys: set[str]) -> str:
    return ", ".join(sorted(keys))


def _duplicates(names: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


def _text(row: Sequence[Any], index: int | None) -> str | None:
    if index is None or row[index] is None:
        return None
    text = str(row[index]).strip()
    return text or None


__all__ = [
    "CANARY_GROUP",
    "DEFAULT_GROUP",
    "FLEET_FILE",
    "FleetSpec",
    "Source",
    "Target",
    "TargetQuery",
    "Wave",
    "fleet_from_pyproject",
    "parse_fleet",
    "parse_shard",
    "plan_waves",
    "query_spec",
    "read_fleet_file",
    "select_shard",
    "shard_of",
    "targets_from_rows",
]
