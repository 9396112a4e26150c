"""Helpers shared by the step modules; no step definitions here.

behave executes every file in steps/ as a step module; a step module that
another one imported would register its steps twice, so shared code lives here.
The custom step types registered below turn the scenario-file catalogue's
phrases into step parameters, so a misspelt phrase is an undefined step in
``behave --dry-run`` rather than a failure at run time.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from behave import register_type
from parse import with_pattern

from pgship.testing.spec import attachments
from pgship.testing.spec.commands import IN_PROCESS, SUBPROCESS, CommandResult
from pgship.testing.spec.scenario_files import (
    BAD_INPUTS,
    EXTRA_MIGRATIONS,
    BadInput,
    ExtraMigrations,
    phrase_pattern,
)
from pgship.testing.spec.world import TRACKING_TABLE

_LIST_SEPARATOR = re.compile(r"\s*(?:,|\band\b)\s*")


@with_pattern(phrase_pattern(EXTRA_MIGRATIONS))
def _extra_migrations(text: str) -> ExtraMigrations:
    return EXTRA_MIGRATIONS[text]


@with_pattern(phrase_pattern(BAD_INPUTS))
def _bad_input(text: str) -> BadInput:
    return BAD_INPUTS[text]


register_type(ExtraMigrations=_extra_migrations, BadInput=_bad_input)


def version_list(text: str) -> list[str]:
    """``"003, 005 and 010"`` -> ``["003", "005", "010"]``."""
    return [part for part in _LIST_SEPARATOR.split(text.strip()) if part]


def version_key(version: str) -> tuple[int, ...]:
    """Versions compare numerically part by part (``040`` equals ``40``)."""
    return tuple(int(part) for part in version.split("."))


# One row per schema object with its full definition: equal fingerprints = the same schema.
# The tracking table is left out (its rows and shape are checked on their own), and so is
# golang-migrate's, which pgship keeps under <tracking table>_golang_migrate when it takes over.
SCHEMA_FINGERPRINT = """
WITH rel AS (
    SELECT c.oid, c.relkind, c.relname, n.nspname
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
      AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND c.relname NOT IN (%(tracking)s::text, %(tracking)s::text || '_golang_migrate')
)
SELECT 'relation ' || rel.relkind::text AS kind, rel.nspname || '.' || rel.relname AS name,
       coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                   || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                                   || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''),
                                   ', ' ORDER BY a.attnum)
                 FROM pg_attribute AS a
                 LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
       || CASE WHEN rel.relkind IN ('v', 'm') THEN ' AS ' || pg_get_viewdef(rel.oid) ELSE '' END AS definition
FROM rel
UNION ALL
SELECT 'index', i.indexrelid::regclass::text,
       pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid THEN '' ELSE ' INVALID' END
FROM pg_index AS i JOIN rel ON rel.oid = i.indrelid
UNION ALL
SELECT 'constraint', rel.relname || '.' || con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint AS con JOIN rel ON rel.oid = con.conrelid
UNION ALL
SELECT 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid)
FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prokind IN ('f', 'p')
UNION ALL
SELECT 'type', t.typname, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
FROM pg_enum AS e JOIN pg_type AS t ON t.oid = e.enumtypid
GROUP BY t.typname
ORDER BY 1, 2
"""


def schema_snapshot(context: Any) -> list[dict[str, Any]]:
    """Every table, view, sequence, index, constraint, function and enum with its definition."""
    return context.world.query(SCHEMA_FINGERPRINT, {"tracking": TRACKING_TABLE})


def applied_versions(context: Any) -> list[str]:
    return [str(row["version"]) for row in context.world.tracking_rows()]  # golang-migrate's are numbers


def rows_for_version(context: Any, version: str) -> list[dict[str, Any]]:
    """Tracking rows whose version equals ``version`` numerically (``011`` and ``11`` alike)."""
    return [
        row
        for row in context.world.tracking_rows()
        if version_key(str(row["version"])) == version_key(version)
    ]


def file_of_version(context: Any, version: str) -> Path:
    """The release's migration file with this version."""
    for path in context.world.workspace.migrations_dir.glob("*.sql"):
        head = path.name.partition("_")[0]
        if head.replace(".", "").isdigit() and version_key(head) == version_key(version):
            return path
    raise AssertionError(f"the release has no migration file with version {version}")


def ensure_release_applied(context: Any, number: int) -> None:
    """Bring the scenario database to release ``number`` the way a user would: ``pgship migrate``."""
    context.world.workspace.ship_release(number)
    context.world.facts["shipped_release"] = number
    result = context.world.cli.run("migrate", json_output=True)
    assert result.exit_code == 0, f"setting up release {number} failed:\n{result.output}"


def remember_state_before_deploy(context: Any) -> None:
    """What a deploy's outcome is compared with: tracking rows and schema, and the pending files' SQL."""
    world = context.world
    world.facts["rows_before"] = world.tracking_rows()
    world.facts["schema_before"] = schema_snapshot(context)
    applied = {version_key(version) for version in applied_versions(context)}
    folder = world.workspace.migrations_dir
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        head = path.name.partition("_")[0]
        if not head.replace(".", "").isdigit() or version_key(head) not in applied:
            attachments.attach_sql(path)


def deploy(context: Any, *options: str, mode: str = IN_PROCESS, timeout: float = 120) -> CommandResult:
    """Deploy the shipped release: ``pgship migrate --json`` on the scenario's database."""
    remember_state_before_deploy(context)
    result = context.world.cli.run("migrate", *options, json_output=True, mode=mode, timeout=timeout)
    context.world.facts["deploy"] = result
    return result


def start_deploy(context: Any) -> subprocess.Popen[str]:
    """Start ``pgship migrate --json`` as a real process (stopped at cleanup if still running)."""
    remember_state_before_deploy(context)
    return context.world.cli.start("migrate", json_output=True)


def wait_until(condition: Callable[[], Any], *, what: str, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def pgship_sessions(context: Any) -> list[dict[str, Any]]:
    """pgship's sessions on the scenario's database, as the server sees them."""
    return context.world.query(
        "SELECT pid, state, wait_event_type, wait_event, backend_xid::text AS xid, "
        "now() - xact_start AS in_transaction_for, query FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'pgship' AND pid <> pg_backend_pid()"
    )


def wait_for_migration_in_flight(context: Any, version: str, proc: subprocess.Popen[str]) -> dict[str, Any]:
    """Wait until pgship is inside migration ``version``'s transaction, has written, and waits on a lock.

    Evidence, attached to the report: the session's current statement is one of
    the file's statements, and it holds a transaction id (it has changed something).
    """
    statements = file_of_version(context, version).read_text(encoding="utf-8")

    def in_flight() -> dict[str, Any] | None:
        if proc.poll() is not None:
            stdout, stderr = proc.communicate()
            raise AssertionError(
                f"pgship ended (exit {proc.returncode}) before migration {version} was in "
                f"flight:\n{stdout}\n{stderr}"
            )
        for session in pgship_sessions(context):
            query = (session["query"] or "").strip().rstrip(";")
            if session["state"] == "active" and session["xid"] and query and query in statements:
                return session
        return None

    session = wait_until(in_flight, what=f"migration {version} to be in flight")
    attachments.attach_json(f"pg_stat_activity: migration {version} in flight", session)
    context.world.facts["in_flight"] = session
    return session


def finish_subprocess_deploy(context: Any, proc: subprocess.Popen[str]) -> CommandResult:
    result = context.world.cli.finish(proc)
    context.world.facts["deploy"] = result
    return result


__all__ = [
    "SUBPROCESS",
    "applied_versions",
    "deploy",
    "ensure_release_applied",
    "file_of_version",
    "finish_subprocess_deploy",
    "pgship_sessions",
    "remember_state_before_deploy",
    "rows_for_version",
    "schema_snapshot",
    "start_deploy",
    "version_key",
    "version_list",
    "wait_for_migration_in_flight",
    "wait_until",
]
