"""The schema as plain data: what a catalog snapshot holds and what a comparison finds.

No database here: :mod:`pgship.schema.catalog` fills a :class:`Snapshot` from
a server, :mod:`pgship.schema.compare` turns two of them into a
:class:`SchemaDiff`. Objects are named, never numbered (OIDs differ between
any two databases), and their attributes are JSON values, so a snapshot can be
stored, sent and compared anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Every kind of object compared, in the order reports list them (containers before contents).
KINDS = (
    "schema",
    "extension",
    "enum",
    "domain",
    "composite type",
    "sequence",
    "table",
    "column",
    "constraint",
    "index",
    "view",
    "materialized view",
    "function",
    "trigger",
    "policy",
)

Key = tuple[str, str]  # (kind, qualified name)


@dataclass(frozen=True, eq=True)
class SchemaObject:
    """One named object and the attributes that matter for comparing it.

    ``name`` is unique within its kind (``public.users``, ``public.users.email``,
    ``public.touch_updated_at()``); ``local`` is the object's own name and
    ``parent`` the object it belongs to (a column's table, a table's schema), so
    a report can say "table audit exists only in live" once instead of listing
    each of its columns too.
    """

    kind: str
    name: str
    local: str
    attributes: dict[str, Any] = field(default_factory=dict, hash=False)
    parent: Key | None = None

    @property
    def key(self) -> Key:
        return (self.kind, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "local": self.local,
            "attributes": self.attributes,
            "parent": list(self.parent) if self.parent else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchemaObject:
        parent = data.get("parent")
        return cls(
            data["kind"],
            data["name"],
            data["local"],
            dict(data["attributes"]),
            tuple(parent) if parent else None,
        )


@dataclass
class Snapshot:
    """Every user object of one database (not system schemas, extension members or the tracking table)."""

    server_version: str = ""
    objects: dict[Key, SchemaObject] = field(default_factory=dict)

    def add(self, obj: SchemaObject) -> None:
        self.objects[obj.key] = obj

    def get(self, kind: str, name: str) -> SchemaObject | None:
        return self.objects.get((kind, name))

    def counts(self) -> dict[str, int]:
        found = {kind: 0 for kind in KINDS}
        for kind, _ in self.objects:
            found[kind] = found.get(kind, 0) + 1
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "server_version": self.server_version,
            "objects": [self.objects[key].to_dict() for key in sorted(self.objects, key=sort_key)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Snapshot:
        snapshot = cls(server_version=data.get("server_version", ""))
        for item in data.get("objects", []):
            snapshot.add(SchemaObject.from_dict(item))
        return snapshot


@dataclass(frozen=True)
class Difference:
    """One thing that is not the same in the live database and in what the migrations build.

    ``change`` is ``only_live`` (made by hand?), ``only_migrations`` (dropped by
    hand, or never applied) or ``changed`` (``attribute`` differs: ``live`` vs
    ``migrations``). ``message`` says it in words; ``detail`` adds lines such as
    a diff of two definitions.
    """

    kind: str
    name: str
    change: str
    message: str
    attribute: str | None = None
    live: Any = None
    migrations: Any = None
    detail: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "change": self.change,
            "attribute": self.attribute,
            "live": self.live,
            "migrations": self.migrations,
            "message": self.message,
            "detail": list(self.detail),
        }


@dataclass
class SchemaDiff:
    """The result of comparing a live database with a replay of the migrations."""

    differences: list[Difference] = field(default_factory=list)
    live_counts: dict[str, int] = field(default_factory=dict)
    migrations_counts: dict[str, int] = field(default_factory=dict)
    live_version: str = ""
    migrations_version: str = ""
    warnings: list[str] = field(default_factory=list)
    replay: Any = None  # a pgship.replay.ReplayResult when the expected side came from a replay
    timings_ms: dict[str, int] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not self.differences

    def summary(self) -> dict[str, int]:
        counts = {"only_live": 0, "only_migrations": 0, "changed": 0}
        for difference in self.differences:
            counts[difference.change] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """A JSON document with no host, user or URL in it (safe for a health response)."""
        replay = None
        if self.replay is not None:
            replay = {k: v for k, v in self.replay.to_dict().items() if k != "location"}
        return {
            "equal": self.equal,
            "summary": self.summary(),
            "differences": [d.to_dict() for d in self.differences],
            "warnings": list(self.warnings),
            "live_server_version": self.live_version,
            "replay_server_version": self.migrations_version,
            "objects_compared": {
                "live": _nonzero(self.live_counts),
                "migrations": _nonzero(self.migrations_counts),
            },
            "replay": replay,
            "timings_ms": dict(self.timings_ms),
        }


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {kind: count for kind, count in counts.items() if count}


def sort_key(key: Key) -> tuple[int, str]:
    """Report order: by kind (containers first), then by name."""
    kind, name = key
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), name)
