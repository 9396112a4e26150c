"""Comparing two snapshots object by object, and saying what differs in words a person can act on.

Pure: two :class:`~pgship.schema.model.Snapshot` values in, a
:class:`~pgship.schema.model.SchemaDiff` out. What legitimately differs
between any two databases (OIDs, the database's name, catalog order) never
reaches a snapshot; what differs only in layout (whitespace in a definition) is
normalised here, so a report lists only changes someone made.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any

from pgship.schema.model import Difference, SchemaDiff, SchemaObject, Snapshot, sort_key

ONLY_LIVE = "only_live"
ONLY_MIGRATIONS = "only_migrations"
CHANGED = "changed"

_LABELS = {
    "type": "type",
    "default": "default",
    "identity": "identity",
    "generated": "generated expression",
    "collation": "collation",
    "definition": "definition",
    "table": "table",
    "version": "version",
    "schema": "schema",
    "command": "command",
    "mode": "mode",
    "roles": "roles",
    "using": "USING expression",
    "with_check": "WITH CHECK expression",
    "enabled": "state",
    "start": "start value",
    "increment": "increment",
    "min": "minimum",
    "max": "maximum",
    "cache": "cache",
    "cycle": "cycle",
    "owned_by": "owner column",
    "base_type": "base type",
    "attributes": "attributes",
    "returns": "return type",
    "function_kind": "kind",
    "options": "storage options",
    "row_security": "row-level security",
    "persistence": "persistence",
    "table_kind": "kind",
    "partition_key": "partition key",
    "partition_of": "partition of",
    "inherits": "inherits from",
    "not_null": "NOT NULL",
}


def compare(live: Snapshot, migrations: Snapshot) -> SchemaDiff:
    """Every difference between the live database and what the migrations build, in report order."""
    differences: list[Difference] = []
    for key in sorted(set(live.objects) | set(migrations.objects), key=sort_key):
        in_live, in_migrations = live.objects.get(key), migrations.objects.get(key)
        if in_live is not None and in_migrations is not None:
            differences.extend(_attribute_differences(in_live, in_migrations, live, migrations))
        elif in_live is not None:
            if not _implied_by_parent(in_live, live, migrations):
                differences.append(_only_live(in_live, live))
        elif in_migrations is not None and not _implied_by_parent(in_migrations, migrations, live):
            differences.append(_only_migrations(in_migrations, migrations))
    diff = SchemaDiff(
        differences=differences,
        live_counts=live.counts(),
        migrations_counts=migrations.counts(),
        live_version=live.server_version,
        migrations_version=migrations.server_version,
    )
    mismatch = version_mismatch(live.server_version, migrations.server_version)
    if mismatch:
        diff.warnings.append(mismatch)
    return diff


def version_mismatch(live_version: str, replay_version: str) -> str | None:
    """A warning when the two servers' major versions differ (they print definitions differently)."""
    live_major, replay_major = _major(live_version), _major(replay_version)
    if not live_major or not replay_major or live_major == replay_major:
        return None
    return (
        f"the live database runs PostgreSQL {live_major}, the replay ran on PostgreSQL {replay_major}: "
        "each server prints definitions its own way, so some differences may be form only. For an exact "
        f"comparison replay on PostgreSQL {live_major} (--replay-url, or --replay-pg-version if embedded)."
    )


def _major(version: str) -> str:
    match = re.match(r"\s*(\d+)", version or "")
    return match.group(1) if match else ""


def _implied_by_parent(obj: SchemaObject, side: Snapshot, other: Snapshot) -> bool:
    """A column of a table that exists on one side only is already said by the table's line."""
    return obj.parent is not None and obj.parent in side.objects and obj.parent not in other.objects


# -- wording -----------------------------------------------------------------------
def describe(obj: SchemaObject, snapshot: Snapshot) -> str:
    """``column users.nickname``, ``check constraint tasks_points_check on tasks``, ``index users_idx``."""
    return f"{_kind_label(obj)} {_display_name(obj, snapshot)}"


def _kind_label(obj: SchemaObject) -> str:
    if obj.kind == "constraint":
        return f"{obj.attributes.get('type', '')} constraint".strip()
    if obj.kind == "function":
        return str(obj.attributes.get("function_kind") or "function")
    return obj.kind


def _display_name(obj: SchemaObject, snapshot: Snapshot) -> str:
    parent = snapshot.objects.get(obj.parent) if obj.parent else None
    owner = _short(parent.name) if parent is not None else ""
    if obj.kind == "column" and owner:
        return f"{owner}.{obj.local}"
    if obj.kind in ("constraint", "trigger", "policy") and owner:
        return f"{obj.local} on {owner}"
    return _short(obj.name)


def _short(name: str) -> str:
    """Names in ``public`` read better without it; other schemas stay explicit."""
    return name[len("public.") :] if name.startswith("public.") else name


def _only_live(obj: SchemaObject, live: Snapshot) -> Difference:
    why = {"extension": "installed by hand?", "column": "added by hand?"}.get(obj.kind, "created by hand?")
    return Difference(
        kind=obj.kind,
        name=obj.name,
        change=ONLY_LIVE,
        message=f"{describe(obj, live)} exists only in the live database ({why})",
        live=obj.attributes,
    )


def _only_migrations(obj: SchemaObject, migrations: Snapshot) -> Difference:
    return Difference(
        kind=obj.kind,
        name=obj.name,
        change=ONLY_MIGRATIONS,
        message=f"{describe(obj, migrations)} is missing from the live database "
        "(the migrations create it; dropped by hand?)",
        migrations=obj.attributes,
    )


def _attribute_differences(
    live_obj: SchemaObject, migrations_obj: SchemaObject, live: Snapshot, migrations: Snapshot
) -> list[Difference]:
    found = []
    subject = describe(migrations_obj, migrations)
    names = list(migrations_obj.attributes) + [
        a for a in live_obj.attributes if a not in migrations_obj.attributes
    ]
    for attribute in names:
        live_value = live_obj.attributes.get(attribute)
        migrations_value = migrations_obj.attributes.get(attribute)
        if _normalised(live_value) == _normalised(migrations_value):
            continue
        if live_obj.kind == "enum" and attribute == "values":
            found.extend(_enum_differences(live_obj, subject, live_value or [], migrations_value or []))
            continue
        phrase, detail = _phrase(live_obj.kind, attribute, live_value, migrations_value)
        found.append(
            Difference(
                kind=live_obj.kind,
                name=live_obj.name,
                change=CHANGED,
                message=f"{subject}: {phrase}",
                attribute=attribute,
                live=live_value,
                migrations=migrations_value,
                detail=tuple(detail),
            )
        )
    return found


def _normalised(value: Any) -> Any:
    """Whitespace is layout, not meaning: servers and people indent definitions differently."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    return value


def _enum_differences(
    obj: SchemaObject, subject: str, live: list[str], migrations: list[str]
) -> list[Difference]:
    def difference(message: str) -> Difference:
        return Difference(
            kind=obj.kind,
            name=obj.name,
            change=CHANGED,
            message=f"{subject}: {message}",
            attribute="values",
            live=live,
            migrations=migrations,
        )

    found = [
        difference(
            f"value '{value}' exists only in the live database (added by hand with ALTER TYPE ... ADD VALUE?)"
        )
        for value in live
        if value not in migrations
    ]
    found += [
        difference(f"value '{value}' is missing from the live database (the migrations add it)")
        for value in migrations
        if value not in live
    ]
    if not found:
        found.append(
            difference(
                f"values are in another order: live ({', '.join(live)}), migrations ({', '.join(migrations)})"
            )
        )
    return found


def _phrase(kind: str, attribute: str, live: Any, migrations: Any) -> tuple[str, list[str]]:
    """What differs, in a sentence, plus detail lines for long definitions."""
    special = _SPECIAL.get((kind, attribute))
    if special is not None:
        return special(live, migrations), []
    label = _LABELS.get(attribute, attribute.replace("_", " "))
    if _is_long(live) or _is_long(migrations):
        return f"{label} differs (- migrations, + live):", _text_diff(migrations, live)
    if isinstance(live, str) and isinstance(migrations, str) and len(live) + len(migrations) > 60:
        return f"{label} differs:", [f"live:       {live}", f"migrations: {migrations}"]
    return f"{label} is {_value(live)} in live, {_value(migrations)} in the migrations", []


def _is_long(value: Any) -> bool:
    return isinstance(value, str) and ("\n" in value.strip() or len(value) > 160)


def _text_diff(migrations: Any, live: Any) -> list[str]:
    before = str(migrations or "").strip().splitlines()
    after = str(live or "").strip().splitlines()
    lines = difflib.unified_diff(before, after, fromfile="migrations", tofile="live", lineterm="", n=1)
    return [line for line in lines if not line.startswith(("---", "+++"))]


def _value(value: Any) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _not_null(live: Any, migrations: Any) -> str:
    if live:
        return "live is NOT NULL, the migrations allow NULL"
    return "live allows NULL, the migrations make it NOT NULL"


def _unique(live: Any, migrations: Any) -> str:
    if live:
        return "live is UNIQUE, the migrations do not make it UNIQUE"
    return "live is not UNIQUE, the migrations make it UNIQUE"


def _valid(live: Any, migrations: Any) -> str:
    if not live:
        return (
            "live is INVALID (left by a failed CREATE INDEX CONCURRENTLY?): queries ignore it and "
            "a unique one still checks new rows; rebuild it with REINDEX INDEX CONCURRENTLY"
        )
    return "live is valid, the migrations leave it INVALID"


def _validated(live: Any, migrations: Any) -> str:
    if not live:
        return "live is NOT VALID (existing rows were never checked), the migrations validate it"
    return "live is validated, the migrations leave it NOT VALID"


def _default(live: Any, migrations: Any) -> str:
    if live is None:
        return f"live has no default, the migrations set DEFAULT {migrations}"
    if migrations is None:
        return f"live has DEFAULT {live}, the migrations set none"
    return f"default is {live} in live, {migrations} in the migrations"


_SPECIAL: dict[tuple[str, str], Callable[[Any, Any], str]] = {
    ("column", "not_null"): _not_null,
    ("domain", "not_null"): _not_null,
    ("column", "default"): _default,
    ("domain", "default"): _default,
    ("index", "unique"): _unique,
    ("index", "valid"): _valid,
    ("constraint", "validated"): _validated,
}
