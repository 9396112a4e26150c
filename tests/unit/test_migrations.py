"""Discovery, naming, ordering and checksums: everything decided before a database is involved."""

from __future__ import annotations

import os

import pytest

from pgship.errors import InvalidMigrations
from pgship.migrations import Version, checksum_of, discover, next_version, validate_new_name


def test_versions_compare_numerically_part_by_part():
    ordered = sorted(Version.parse(v) for v in ["10", "2", "040.1", "040", "001", "040.10", "040.2"])
    assert [v.text for v in ordered] == ["001", "2", "10", "040", "040.1", "040.2", "040.10"]


def test_zero_padding_does_not_make_a_different_version():
    assert Version.parse("040") == Version.parse("40")
    assert hash(Version.parse("040")) == hash(Version.parse("40"))
    assert Version.parse("040.0") == Version.parse("40")


@pytest.mark.parametrize("text", ["", "a1", "1.", ".1", "1..2", "1_2", "-1"])
def test_non_numeric_versions_are_rejected(text):
    with pytest.raises(ValueError):
        Version.parse(text)


def test_files_are_ordered_by_version_and_gaps_are_fine(migrations):
    for name in ["012_c.sql", "001_a.sql", "011_b.sql", "002.1_hotfix.sql"]:
        migrations.write(name, "SELECT 1;")
    found = discover(migrations.path)
    assert [m.filename for m in found.migrations] == [
        "001_a.sql",
        "002.1_hotfix.sql",
        "011_b.sql",
        "012_c.sql",
    ]


def test_template_other_files_and_subdirectories_are_ignored(migrations):
    migrations.write("001_a.sql", "SELECT 1;")
    migrations.write("TEMPLATE.sql", "-- template")
    migrations.write("README.md", "# docs")
    migrations.write(".002_hidden.sql", "SELECT 1;")
    (migrations.path / "archive").mkdir()
    (migrations.path / "archive" / "003_old.sql").write_text("SELECT 1;")
    found = discover(migrations.path)
    assert [m.filename for m in found.migrations] == ["001_a.sql"]
    assert found.warnings == []


def test_a_rollback_folder_is_ignored_with_a_forward_only_warning(migrations):
    migrations.write("001_a.sql", "SELECT 1;")
    (migrations.path / "rollback").mkdir()
    (migrations.path / "rollback" / "001_a_down.sql").write_text("DROP TABLE a;")
    found = discover(migrations.path)
    assert len(found.migrations) == 1
    assert len(found.warnings) == 1 and "forward-only" in found.warnings[0]


@pytest.mark.parametrize(
    "names",
    [["040_a.sql", "040_b.sql"], ["040_a.sql", "40_b.sql"], ["7.1_a.sql", "7.01_b.sql"]],
)
def test_two_files_with_one_version_are_an_error_naming_both(migrations, names):
    for name in names:
        migrations.write(name, "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    [problem] = error.value.problems
    assert all(name in problem.file for name in names)
    assert "share version" in problem.message


@pytest.mark.parametrize(
    "name", ["add_users.sql", "001-add-users.sql", "001_.sql", "001_add users.sql", "v1_a.sql"]
)
def test_a_misnamed_sql_file_is_an_error_with_the_convention(migrations, name):
    migrations.write(name, "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    [problem] = error.value.problems
    assert problem.file == name
    assert "<version>_<description>.sql" in problem.fix


def test_a_file_that_is_not_utf8_is_an_error_with_its_line(migrations):
    migrations.write("001_latin1.sql", "SELECT 1;\nSELECT 'caf\xe9';\n".encode("latin-1"))
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    [problem] = error.value.problems
    assert problem.file == "001_latin1.sql" and problem.line == 2
    assert "UTF-8" in problem.message


def test_an_unreadable_file_is_an_error(migrations):
    os.symlink(migrations.path / "nowhere.sql", migrations.path / "001_broken_link.sql")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    assert error.value.problems[0].file == "001_broken_link.sql"
    assert "cannot read" in error.value.problems[0].message


def test_a_missing_directory_is_an_error_that_says_how_to_point_at_it(tmp_path):
    with pytest.raises(InvalidMigrations) as error:
        discover(tmp_path / "nope")
    assert "does not exist" in error.value.message
    assert "--migrations-dir" in error.value.problems[0].fix


def test_all_problems_are_reported_at_once(migrations):
    migrations.write("bad.sql", "SELECT 1;")
    migrations.write("002_a.sql", "SELECT 1;")
    migrations.write("02_b.sql", "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    assert len(error.value.problems) == 2


def test_line_endings_and_bom_do_not_change_the_checksum():
    unix = "CREATE TABLE a (id int);\nSELECT 1;\n"
    assert checksum_of(unix) == checksum_of(unix.replace("\n", "\r\n"))
    assert checksum_of(unix) == checksum_of("\ufeff" + unix)
    assert checksum_of(unix) != checksum_of(unix.replace("int", "bigint"))


def test_discovered_checksum_ignores_crlf_on_disk(migrations):
    migrations.write("001_a.sql", b"SELECT 1;\r\nSELECT 2;\r\n")
    [migration] = discover(migrations.path).migrations
    assert migration.checksum == checksum_of("SELECT 1;\nSELECT 2;\n")


def test_next_version_keeps_the_width_of_the_newest(migrations):
    assert next_version(discover(migrations.path)) == "001"
    migrations.write("009_a.sql", "SELECT 1;")
    assert next_version(discover(migrations.path)) == "010"
    migrations.write("0100.2_b.sql", "SELECT 1;")
    assert next_version(discover(migrations.path)) == "0101"


@pytest.mark.parametrize(
    "name,valid",
    [
        ("add_orders", True),
        ("fix-1", True),
        ("Add Orders", False),
        ("_x", False),
        ("a/b", False),
        ("", False),
    ],
)
def test_new_migration_names_must_validate(name, valid):
    assert (validate_new_name(name) is None) == valid


def test_a_nul_byte_is_an_error_with_its_line_not_a_silently_truncated_file(migrations):
    migrations.write("001_nul.sql", b"CREATE TABLE a (id int);\n\x00\nDROP TABLE important;\n")
    with pytest.raises(InvalidMigrations) as caught:
        discover(migrations.path)
    (problem,) = caught.value.problems
    assert problem.file == "001_nul.sql" and problem.line == 2 and "NUL byte" in problem.message


def test_a_named_pipe_is_an_error_instead_of_a_read_that_never_returns(migrations):
    import threading

    pipe = migrations.path / "001_pipe.sql"
    os.mkfifo(pipe)

    def feed() -> None:  # if discovery read the pipe, it would get a migration instead of hanging
        with pipe.open("w") as writer:
            writer.write("SELECT 1;\n")

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with pytest.raises(InvalidMigrations) as caught:
            discover(migrations.path)
        assert "not a regular file" in caught.value.problems[0].message
    finally:
        release = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        feeder.join(5)
        os.close(release)


def test_file_names_are_shown_with_undecodable_bytes_and_control_characters_escaped(migrations):
    from pgship.migrations import printable_name

    os.close(os.open(os.fsencode(migrations.path) + b"/001_caf\xe9.sql", os.O_CREAT | os.O_WRONLY))
    with pytest.raises(InvalidMigrations) as caught:
        discover(migrations.path)
    assert caught.value.problems[0].file == "001_caf\\xe9.sql"
    assert printable_name("002_\x1b[2Jx.sql") == "002_\\x1b[2Jx.sql"
    assert printable_name("001_café.sql") == "001_café.sql"


# -- versions are ASCII digits (issue 12.10) --------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["٠٠١_arabic.sql", "００１_fullwidth.sql", "00१_devanagari.sql", "001.٢_mixed.sql"]
)
def test_a_version_written_with_non_ascii_digits_is_refused_saying_so(migrations, name):
    migrations.write(name, "SELECT 1;")
    migrations.write("002_fine.sql", "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    [problem] = error.value.problems
    assert problem.file == name
    assert "ASCII digits 0-9" in problem.message and "<version>_<description>.sql" in problem.fix


@pytest.mark.parametrize("text", ["٠٠١", "００１", "1.٢", "¹"])
def test_version_parse_accepts_only_ascii_digits(text):
    with pytest.raises(ValueError):
        Version.parse(text)


# -- messages (issue 13.13) -------------------------------------------------------------------------
def test_the_duplicate_version_message_names_the_files_once(migrations):
    migrations.write("040_a.sql", "SELECT 1;")
    migrations.write("40_b.sql", "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    [problem] = error.value.problems
    location_and_message = f"{problem.location()}: {problem.message}"
    assert location_and_message.count("040_a.sql") == 1 and location_and_message.count("40_b.sql") == 1
    assert problem.message == "2 files share version 040"


# -- never "a bug in pgship" for a file system oddity (issue 12.12) ---------------------------------
def test_a_symlink_that_points_at_itself_is_an_error_naming_it(migrations):
    os.symlink("001_loop.sql", migrations.path / "001_loop.sql")
    migrations.write("002_fine.sql", "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    [problem] = error.value.problems
    assert problem.file == "001_loop.sql" and "cannot read" in problem.message


def test_a_symlink_loop_named_like_a_directory_entry_is_an_error_too(migrations):
    os.symlink("rollback", migrations.path / "rollback")
    os.symlink("a_loop.sql", migrations.path / "a_loop.sql")
    migrations.write("001_fine.sql", "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover(migrations.path)
    assert [p.file for p in error.value.problems] == ["a_loop.sql"]


# -- every problem of every file in one run (issue 13.11) -------------------------------------------
def test_discovery_and_parse_problems_of_every_file_are_reported_together(migrations):
    from pgship.migrations import discover_and_parse

    migrations.write("add_notes.sql", "SELECT 1;")  # name
    migrations.write("001_latin1.sql", "SELECT 'caf\xe9';".encode("latin-1"))  # encoding
    migrations.write("002_a.sql", "SELECT 1;")
    migrations.write("02_b.sql", "SELEC 1;")  # duplicate, and a syntax error
    migrations.write("003_commit.sql", "SELECT 1;\nCOMMIT;\nSELECT 2;")
    migrations.write("004_syntax.sql", "CREAT TABLE t (id int);")
    migrations.write("005_empty.sql", "")
    migrations.write("006_meta.sql", "\\i other.sql\n")
    migrations.write("007_index.sql", "CREATE INDEX CONCURRENTLY i ON t (c);")
    migrations.write("008_fine.sql", "SELECT 1;")
    with pytest.raises(InvalidMigrations) as error:
        discover_and_parse(migrations.path)
    files = [p.file for p in error.value.problems]
    assert files == [
        "001_latin1.sql",
        "002_a.sql, 02_b.sql",
        "003_commit.sql",
        "004_syntax.sql",
        "005_empty.sql",
        "006_meta.sql",
        "007_index.sql",
        "02_b.sql",
        "add_notes.sql",
    ]


def test_discover_and_parse_returns_the_scripts_of_valid_files(migrations):
    from pgship.migrations import Version, discover_and_parse

    migrations.write("001_a.sql", "-- pgship:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);")
    discovery, scripts = discover_and_parse(migrations.path)
    assert [m.filename for m in discovery.migrations] == ["001_a.sql"]
    assert scripts[Version.parse("1")].no_transaction
