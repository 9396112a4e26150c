"""``pgship new`` as a library function (pgship.scaffold): the next version, the template, nothing
written for a bad name. The CLI only prints what it returns."""

from __future__ import annotations

from datetime import date

import pytest

from pgship.errors import UsageError
from pgship.scaffold import BUILTIN_TEMPLATE, create_migration

TODAY = date(2026, 1, 2)


def test_the_first_migration_is_created_with_the_built_in_template_and_the_directory(tmp_path):
    directory = tmp_path / "db" / "migrations"
    created = create_migration(directory, "add_accounts", today=TODAY)
    assert created.created_directory and created.template is None
    assert created.path == directory / f"{created.version}_add_accounts.sql"
    assert created.path.read_text() == BUILTIN_TEMPLATE.replace("{{version}}", created.version).replace(
        "{{name}}", "add_accounts"
    )


def test_the_next_version_keeps_the_width_and_the_directory_template_is_filled(tmp_path):
    (tmp_path / "0009_a.sql").write_text("SELECT 1;\n")
    (tmp_path / "TEMPLATE.sql").write_text("-- {{version}} {{name}} {{date}}\n")
    created = create_migration(tmp_path, "add_b", today=TODAY)
    assert created.version == "0010" and not created.created_directory
    assert created.template == tmp_path / "TEMPLATE.sql"
    assert (tmp_path / "0010_add_b.sql").read_text() == "-- 0010 add_b 2026-01-02\n"


def test_an_empty_template_file_is_used_as_it_is(tmp_path):
    (tmp_path / "TEMPLATE.sql").write_text("")
    created = create_migration(tmp_path, "empty", today=TODAY)
    assert created.path.read_text() == "" and created.template == tmp_path / "TEMPLATE.sql"


def test_a_bad_name_is_a_usage_error_and_writes_nothing(tmp_path):
    directory = tmp_path / "missing"
    with pytest.raises(UsageError) as raised:
        create_migration(directory, "no spaces allowed", today=TODAY)
    assert "pgship new add_orders_table" in (raised.value.hint or "")
    assert not directory.exists()


def test_the_cli_prints_what_the_library_created(cli, migrations):
    (migrations.path / "001_a.sql").write_text("SELECT 1;\n")
    result = cli("-m", str(migrations), "new", "add_b")
    assert result.code == 0, result.output
    assert "Created " in result.stdout and result.stdout.rstrip().endswith("`pgship plan`.")
    assert (migrations.path / "002_add_b.sql").is_file()
