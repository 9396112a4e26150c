"""What a migration creates, read from PostgreSQL's parse tree: for the "already exists" hint. Pure.

Each object comes with a query that answers "does it exist?"; the caller runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgship.sqlscript import Script

#: One object: its name, a query answering "does it exist?", and the query's parameters.
Probe = tuple[str, str, tuple[Any, ...]]


def _regclass(relation: dict[str, Any]) -> str:
    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    name = quote(relation["relname"])
    return f"{quote(relation['schemaname'])}.{name}" if relation.get("schemaname") else name


def _names(parts: list[dict[str, Any]]) -> str:
    return ".".join('"' + p["String"]["sval"].replace('"', '""') + '"' for p in parts)


def objects_created(script: Script) -> list[Probe] | None:
    """What a migration creates, each as (name, a query answering "does it exist?", its parameters).

    Read from PostgreSQL's parse tree; None if a statement cannot be read. Pure.
    """

    from pglast import parser

    try:
        return _probes(script)
    except (KeyError, TypeError, ValueError, parser.ParseError):
        return None


def _probes(script: Script) -> list[Probe]:
    import json

    from pglast import parser

    relation = "SELECT to_regclass(%s) IS NOT NULL"
    probes: list[Probe] = []
    for statement in script.statements:
        tree = json.loads(parser.parse_sql_json(statement.text))
        for raw in tree.get("stmts", []):
            ((kind, node),) = raw["stmt"].items()
            if kind == "CreateStmt":
                probes.append((_regclass(node["relation"]), relation, (_regclass(node["relation"]),)))
            elif kind == "CreateTableAsStmt":
                name = _regclass(node["into"]["rel"])
                probes.append((name, relation, (name,)))
            elif kind == "ViewStmt":
                probes.append((_regclass(node["view"]), relation, (_regclass(node["view"]),)))
            elif kind == "CreateSeqStmt":
                probes.append((_regclass(node["sequence"]), relation, (_regclass(node["sequence"]),)))
            elif kind == "IndexStmt" and node.get("idxname"):
                name = _regclass(
                    {"relname": node["idxname"], "schemaname": node["relation"].get("schemaname")}
                )
                probes.append((name, relation, (name,)))
            elif kind == "CreateSchemaStmt" and node.get("schemaname"):
                probes.append(
                    (
                        node["schemaname"],
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = %s)",
                        (node["schemaname"],),
                    )
                )
            elif kind in ("CreateEnumStmt", "CreateDomainStmt"):
                name = _names(node["domainname"] if kind == "CreateDomainStmt" else node["typeName"])
                probes.append((name, "SELECT to_regtype(%s) IS NOT NULL", (name,)))
            elif kind == "CompositeTypeStmt":
                name = _regclass(node["typevar"])
                probes.append((name, "SELECT to_regtype(%s) IS NOT NULL", (name,)))
            elif kind == "CreateFunctionStmt":
                parts = [p["String"]["sval"] for p in node["funcname"]]
                probes.append(
                    (
                        ".".join(parts),
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
                        "ON n.oid = p.pronamespace WHERE p.proname = %s AND (%s::text IS NULL AND "
                        "n.nspname = ANY (current_schemas(false)) OR n.nspname = %s))",
                        (
                            parts[-1],
                            parts[0] if len(parts) > 1 else None,
                            parts[0] if len(parts) > 1 else None,
                        ),
                    )
                )
            elif kind == "CreateTrigStmt":
                probes.append(
                    (
                        node["trigname"],
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgname = %s "
                        "AND tgrelid = to_regclass(%s))",
                        (node["trigname"], _regclass(node["relation"])),
                    )
                )
            elif kind == "CreateExtensionStmt":
                probes.append(
                    (
                        node["extname"],
                        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = %s)",
                        (node["extname"],),
                    )
                )
            elif kind == "AlterTableStmt":
                for cmd in node.get("cmds", []):
                    command = cmd.get("AlterTableCmd", {})
                    if command.get("subtype") == "AT_AddColumn":
                        column = command["def"]["ColumnDef"]["colname"]
                        probes.append(
                            (
                                f"{_regclass(node['relation'])}.{column}",
                                "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = "
                                "to_regclass(%s) AND attname = %s AND NOT attisdropped)",
                                (_regclass(node["relation"]), column),
                            )
                        )
    return probes
