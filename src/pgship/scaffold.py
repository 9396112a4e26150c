"""``pgship new`` as a library function: the next migration file, from the directory's template.

Computes the next version (one more than the newest, with the same width), fills the template
(``TEMPLATE.sql`` in the migrations directory, else :data:`BUILTIN_TEMPLATE`) and writes the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pgship.errors import UsageError
from pgship.migrations import TEMPLATE_NAME, discover, next_version, validate_new_name

BUILTIN_TEMPLATE = """\
-- {{version}}_{{name}}: <one line on what this changes and why>
--
-- pgship runs this whole file in one transaction, together with its row in the
-- tracking table: if any statement fails, nothing of it is applied.
-- * Never edit this file once it is applied anywhere; write a new migration.
-- * Keep it small: one schema change per migration.
-- * Build indexes on existing tables with CREATE INDEX CONCURRENTLY, in a file of
--   its own whose first line is: -- pgship:no-transaction
-- * Add NOT NULL columns with a DEFAULT, or in steps (expand, backfill, contract).

"""


@dataclass(frozen=True)
class NewMigration:
    """The file :func:`create_migration` wrote."""

    version: str
    path: Path
    template: Path | None  # None: the built-in template
    created_directory: bool
    warnings: list[str] = field(default_factory=list)  # about the directory's other files


def fill_template(template: str, version: str, name: str, today: date) -> str:
    return (
        template.replace("{{version}}", version)
        .replace("{{name}}", name)
        .replace("{{date}}", today.isoformat())
    )


def create_migration(directory: Path, name: str, *, today: date | None = None) -> NewMigration:
    """Write ``<next version>_<name>.sql`` in ``directory`` (created if missing); a name that cannot
    be a migration's is a :class:`~pgship.errors.UsageError`, and nothing is written."""
    reason = validate_new_name(name)
    if reason:
        raise UsageError(reason, hint="Example: pgship new add_orders_table")
    created_directory = False
    if not directory.exists():
        directory.mkdir(parents=True)
        created_directory = True
    discovery = discover(directory)
    version = next_version(discovery)
    path = directory / f"{version}_{name}.sql"
    template_path = directory / TEMPLATE_NAME
    template = template_path.read_text(encoding="utf-8") if template_path.is_file() else None
    chosen = BUILTIN_TEMPLATE if template is None else template
    text = fill_template(chosen, version, name, today or date.today())
    path.write_text(text, encoding="utf-8")
    return NewMigration(
        version=version,
        path=path,
        template=template_path if template is not None else None,
        created_directory=created_directory,
        warnings=list(discovery.warnings),
    )


__all__ = ["BUILTIN_TEMPLATE", "NewMigration", "create_migration", "fill_template"]
