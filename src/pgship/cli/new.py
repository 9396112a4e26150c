"""``pgship new NAME``: create the next migration file (:func:`pgship.scaffold.create_migration`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pgship.cli.context import Context
from pgship.errors import ExitCode
from pgship.migrations import TEMPLATE_NAME
from pgship.output import Output
from pgship.scaffold import NewMigration, create_migration

DESCRIPTION = (
    f"Create <next version>_NAME.sql from {TEMPLATE_NAME} in the migrations directory (or a\n"
    "built-in template). The version is one more than the newest, with the same width."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="what the migration does, e.g. add_orders_table")


def relative(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (shorter, and what people type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def render_new(out: Output, created: NewMigration) -> None:
    out.line(f"Created {relative(created.path)}")
    out.line("Write the schema change in it, then check it with `pgship verify` and `pgship plan`.")


def run(ctx: Context) -> int:
    created = create_migration(ctx.settings.migrations_dir, ctx.args.name)
    for warning in created.warnings:
        ctx.out.warn(warning)
    if ctx.out.as_json:
        ctx.out.document(
            {
                **ctx.header(),
                "version": created.version,
                "file": str(created.path),
                "template": str(created.template) if created.template else "built-in",
                "created_directory": created.created_directory,
            }
        )
    else:
        render_new(ctx.out, created)
    return ExitCode.OK
