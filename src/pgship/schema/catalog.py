"""Reading a database's schema from the system catalogs into a :class:`Snapshot`.

The only I/O of the schema comparison. Everything is read in one read-only,
repeatable-read transaction (one consistent picture, nothing written) with an
empty ``search_path``, so the server prints every name it decompiles
schema-qualified, the same way in any database. Left out: system schemas
(``pg_*``, ``information_schema``), objects that belong to an extension (the
extension itself is compared), and pgship's tracking table and its lease table
(``<table>_lease``, the lock through a transaction pooler) with everything on
them (their rows are pgship's bookkeeping, and a legacy table upgraded in place
legitimately differs from one pgship created).

Not compared: owners and privileges (roles are the server's, not the
migrations'), comments, statistics, table data.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pgship.database import one_row
from pgship.schema.model import Key, SchemaObject, Snapshot

if TYPE_CHECKING:
    import psycopg

    from pgship.history import TrackingTable

_USER_SCHEMA = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"


def _not_extension_member(catalog: str, oid: str) -> str:
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {oid} AND e.deptype = 'e')"
    )


_TABLES = f"""
SELECT n.nspname, c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
       pg_get_partkeydef(c.oid), c.relispartition, pg_get_expr(c.relpartbound, c.oid),
       ARRAY(SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid
             ORDER BY i.inhseqno),
       c.reloptions
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'f') AND {_USER_SCHEMA} AND c.oid <> ALL (%(tracking)s::oid[])
   AND {_not_extension_member("pg_class", "c.oid")}
"""

_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') AND {_USER_SCHEMA}
   AND c.oid <> ALL (%(tracking)s::oid[]) AND {_not_extension_member("pg_class", "c.oid")}
"""

# Indexes that implement a primary key, unique or exclusion constraint are compared as that constraint.
_INDEXES = f"""
SELECT n.nspname, ci.relname, ct.relkind, nt.nspname, ct.relname, pg_get_indexdef(i.indexrelid),
       i.indisunique, i.indisvalid
  FROM pg_index i
  JOIN pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ci.relnamespace
  JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace nt ON nt.oid = ct.relnamespace
 WHERE {_USER_SCHEMA} AND i.indrelid <> ALL (%(tracking)s::oid[])
   AND {_not_extension_member("pg_class", "ct.oid")}
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                   AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
"""

# NOT NULL (PostgreSQL 18 catalogs them as constraints) is a column attribute here, on every version;
# constraint triggers are compared as triggers.
_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, ty.typname, k.conname, k.contype, pg_get_constraintdef(k.oid), k.convalidated
  FROM pg_constraint k
  JOIN pg_namespace n ON n.oid = k.connamespace
  LEFT JOIN pg_class c ON c.oid = k.conrelid
  LEFT JOIN pg_type ty ON ty.oid = k.contypid
 WHERE {_USER_SCHEMA} AND k.contype NOT IN ('n', 't') AND k.conrelid <> ALL (%(tracking)s::oid[])
   AND (c.oid IS NULL OR {_not_extension_member("pg_class", "c.oid")})
   AND (ty.oid IS NULL OR {_not_extension_member("pg_type", "ty.oid")})
"""

_VIEWS = f"""
SELECT n.nspname, c.relname, c.relkind, pg_get_viewdef(c.oid), c.reloptions
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND {_USER_SCHEMA} AND {_not_extension_member("pg_class", "c.oid")}
"""

_FUNCTIONS = f"""
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
       pg_get_function_result(p.oid), CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_USER_SCHEMA} AND {_not_extension_member("pg_proc", "p.oid")}
"""

_SEQUENCES = f"""
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,
       s.seqmax, s.seqcache, s.seqcycle,
       (SELECT d.refobjid::regclass::text || '.' || quote_ident(a.attname)
          FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0)
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMA} AND {_not_extension_member("pg_class", "c.oid")}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.refobjid = ANY (%(tracking)s::oid[]))
"""

_TYPES = f"""
SELECT n.nspname, t.typname, t.typtype,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
       ARRAY(SELECT quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE {_USER_SCHEMA} AND {_not_extension_member("pg_type", "t.oid")}
   AND (t.typtype IN ('e', 'd')
        OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
"""

_EXTENSIONS = """
SELECT e.extname, e.extversion, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
"""

_SCHEMAS = f"""
SELECT n.nspname FROM pg_namespace n
 WHERE {_USER_SCHEMA} AND {_not_extension_member("pg_namespace", "n.oid")}
"""

_POLICIES = f"""
SELECT n.nspname, c.relname, p.polname, p.polcmd, p.polpermissive,
       CASE WHEN p.polroles = '{{0}}' THEN ARRAY['public']
            ELSE ARRAY(SELECT r.rolname::text FROM pg_roles r WHERE r.oid = ANY (p.polroles) ORDER BY 1) END,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
  FROM pg_policy p
  JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMA} AND c.oid <> ALL (%(tracking)s::oid[]) AND {_not_extension_member("pg_class", "c.oid")}
"""

_TRIGGERS = f"""
SELECT n.nspname, c.relname, c.relkind, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND {_USER_SCHEMA} AND c.oid <> ALL (%(tracking)s::oid[])
   AND {_not_extension_member("pg_class", "c.oid")}
"""

_TABLE_KINDS = {"r": "table", "p": "partitioned table", "f": "foreign table"}
_RELATION_KINDS = {"r": "table", "p": "table", "f": "table", "v": "view", "m": "materialized view"}
_CONSTRAINT_TYPES = {
    "p": "primary key",
    "u": "unique",
    "c": "check",
    "f": "foreign key",
    "x": "exclusion",
}
_FUNCTION_KINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window function"}
_POLICY_COMMANDS = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}
_TRIGGER_STATES = {"O": "enabled", "D": "disabled", "R": "enabled on replicas only", "A": "always enabled"}
_IDENTITY = {"a": "ALWAYS", "d": "BY DEFAULT"}


def snapshot(conn: psycopg.Connection, table: TrackingTable | None = None) -> Snapshot:
    """Read every user object of the connected database. Writes nothing, takes no table locks.

    ``conn`` must be in autocommit mode (as :func:`pgship.database.connect` makes it): the
    snapshot opens its own read-only transaction.
    """
    tracking: list[int] = []
    if table is not None:
        from pgship.lease import lease_table

        names = [table.regclass_text(), lease_table(table).regclass_text()]
        row = conn.execute(
            "SELECT array_remove(ARRAY[to_regclass(%s)::oid, to_regclass(%s)::oid], NULL)", names
        ).fetchone()
        tracking = [int(oid) for oid in row[0]] if row else []
    params = {"tracking": tracking}
    result = Snapshot()
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SELECT pg_catalog.set_config('search_path', '', true)")
        conn.execute("SET LOCAL lock_timeout = '5s'; SET LOCAL statement_timeout = '60s'")
        result.server_version = str(one_row(conn.execute("SHOW server_version"))[0])

        def rows(query: str) -> list[tuple[Any, ...]]:
            return conn.execute(query, params).fetchall()

        _read_schemas(result, rows(_SCHEMAS))
        _read_extensions(result, rows(_EXTENSIONS))
        _read_types(result, rows(_TYPES))
        _read_tables(result, rows(_TABLES))
        _read_columns(result, rows(_COLUMNS))
        _read_sequences(result, rows(_SEQUENCES))
        _read_views(result, rows(_VIEWS))
        _read_indexes(result, rows(_INDEXES))
        _read_constraints(result, rows(_CONSTRAINTS))
        _read_functions(result, rows(_FUNCTIONS))
        _read_policies(result, rows(_POLICIES))
        _read_triggers(result, rows(_TRIGGERS))
    return result


# -- rows to objects ---------------------------------------------------------------
def _qualified(schema: str, name: str) -> str:
    return f"{schema}.{name}"


def _schema_key(schema: str) -> Key:
    return ("schema", schema)


def _read_schemas(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for (name,) in rows:
        result.add(SchemaObject("schema", name, name))


def _read_extensions(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for name, version, schema in rows:
        result.add(SchemaObject("extension", name, name, {"version": version, "schema": schema}))


def _read_types(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, name, typtype, labels, base_type, not_null, default, attributes in rows:
        qualified = _qualified(schema, name)
        if typtype == "e":
            result.add(SchemaObject("enum", qualified, name, {"values": list(labels)}, _schema_key(schema)))
        elif typtype == "d":
            details = {"base_type": base_type, "not_null": bool(not_null), "default": default}
            result.add(SchemaObject("domain", qualified, name, details, _schema_key(schema)))
        else:
            result.add(
                SchemaObject(
                    "composite type", qualified, name, {"attributes": list(attributes)}, _schema_key(schema)
                )
            )


def _read_tables(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for (
        schema,
        name,
        relkind,
        persistence,
        rls,
        forced,
        partkey,
        is_partition,
        bound,
        parents,
        options,
    ) in rows:
        security = "off" if not rls else ("on, forced for the owner" if forced else "on")
        details = {
            "table_kind": _TABLE_KINDS[relkind],
            "persistence": "unlogged" if persistence == "u" else "logged",
            "row_security": security,
            "partition_key": partkey,
            "partition_of": f"{parents[0]} {bound}" if is_partition and parents else None,
            "inherits": [] if is_partition else list(parents),
            "options": sorted(options or []),
        }
        result.add(SchemaObject("table", _qualified(schema, name), name, details, _schema_key(schema)))


def _read_columns(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, table, name, type_, not_null, default, identity, generated, collation in rows:
        table_name = _qualified(schema, table)
        details = {
            "type": type_,
            "not_null": bool(not_null),
            "default": None if generated else default,
            "identity": _IDENTITY.get(identity),
            "generated": default if generated else None,
            "collation": collation,
        }
        result.add(SchemaObject("column", f"{table_name}.{name}", name, details, ("table", table_name)))


def _read_sequences(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, name, type_, start, increment, minimum, maximum, cache, cycle, owned_by in rows:
        details = {
            "type": type_,
            "start": start,
            "increment": increment,
            "min": minimum,
            "max": maximum,
            "cache": cache,
            "cycle": bool(cycle),
            "owned_by": owned_by,
        }
        # A sequence owned by a column goes with the column: reported once if the column is missing.
        parent = _column_key(owned_by) if owned_by else _schema_key(schema)
        result.add(SchemaObject("sequence", _qualified(schema, name), name, details, parent))


def _column_key(owned_by: str) -> Key:
    return ("column", _unquote_qualified(owned_by))


def _unquote_qualified(text: str) -> str:
    """``public."Order".id`` as printed by the server -> ``public.Order.id`` as keyed here."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', text)
    return ".".join(quoted.replace('""', '"') if quoted else plain for quoted, plain in parts)


def _read_views(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, name, relkind, definition, options in rows:
        details = {"definition": definition, "options": sorted(options or [])}
        result.add(
            SchemaObject(
                _RELATION_KINDS[relkind], _qualified(schema, name), name, details, _schema_key(schema)
            )
        )


def _read_indexes(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, name, table_relkind, table_schema, table, definition, unique, valid in rows:
        table_name = _qualified(table_schema, table)
        details = {
            "table": table_name,
            "unique": bool(unique),
            # UNIQUE is its own attribute, so "made non-unique" reads as that and not as a new definition.
            "definition": definition.replace("CREATE UNIQUE INDEX", "CREATE INDEX", 1),
            "valid": bool(valid),
        }
        parent = (_RELATION_KINDS[table_relkind], table_name)
        result.add(SchemaObject("index", _qualified(schema, name), name, details, parent))


def _read_constraints(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, table, domain, name, contype, definition, validated in rows:
        owner = ("table", _qualified(schema, table)) if table else ("domain", _qualified(schema, domain))
        details = {
            "type": _CONSTRAINT_TYPES.get(contype, contype),
            # NOT VALID is its own attribute, so validating a constraint by hand reads as that.
            "definition": definition.removesuffix(" NOT VALID"),
            "validated": bool(validated),
        }
        result.add(SchemaObject("constraint", f"{owner[1]}.{name}", name, details, owner))


def _read_functions(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, name, arguments, prokind, returns, definition in rows:
        details = {
            "function_kind": _FUNCTION_KINDS.get(prokind, prokind),
            "returns": returns,
            "definition": definition,
        }
        qualified = f"{_qualified(schema, name)}({arguments})"
        result.add(SchemaObject("function", qualified, f"{name}({arguments})", details, _schema_key(schema)))


def _read_policies(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, table, name, command, permissive, roles, using, with_check in rows:
        table_name = _qualified(schema, table)
        details = {
            "command": _POLICY_COMMANDS.get(command, command),
            "mode": "permissive" if permissive else "restrictive",
            "roles": list(roles),
            "using": using,
            "with_check": with_check,
        }
        result.add(SchemaObject("policy", f"{table_name}.{name}", name, details, ("table", table_name)))


def _read_triggers(result: Snapshot, rows: list[tuple[Any, ...]]) -> None:
    for schema, table, relkind, name, definition, enabled in rows:
        table_name = _qualified(schema, table)
        details = {"definition": definition, "enabled": _TRIGGER_STATES.get(enabled, enabled)}
        parent = (_RELATION_KINDS.get(relkind, "table"), table_name)
        result.add(SchemaObject("trigger", f"{table_name}.{name}", name, details, parent))
