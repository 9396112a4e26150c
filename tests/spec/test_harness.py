"""The harness's own guarantees: isolation, cleanup, backend choice, scrubbing, command capture."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from pgship.testing.spec.backends import BackendChoiceError, choose_backend
from pgship.testing.spec.cleanup import CleanupError, CleanupRegistry
from pgship.testing.spec.commands import SUBPROCESS, format_transcript
from pgship.testing.spec.databases import ScenarioDatabases
from pgship.testing.spec.secrets import MASK, Scrubber, password_of
from pgship.testing.spec.session import SpecSession
from pgship.testing.spec.workspace import SAMPLE_APP, sha256_of_migration_text


# -- backend choice ---------------------------------------------------------------
def test_backend_defaults_to_embedded() -> None:
    assert choose_backend({}, {}).name == "embedded"


def test_userdata_wins_over_environment() -> None:
    choice = choose_backend(
        {"db": "container", "image": "pgship-local/postgres:15"}, {"PGSHIP_TEST_DB": "url"}
    )
    assert (choice.name, choice.image) == ("container", "pgship-local/postgres:15")


def test_container_image_defaults_to_official_postgres() -> None:
    assert choose_backend({}, {"PGSHIP_TEST_DB": "container"}).image == "postgres:16"


def test_url_backend_needs_a_url_and_never_describes_it() -> None:
    with pytest.raises(BackendChoiceError, match="DATABASE_URL"):
        choose_backend({"db": "url"}, {})
    choice = choose_backend({"db": "url"}, {"DATABASE_URL": "postgresql://u:hunter22@db/x"})
    assert "hunter22" not in choice.describe()


def test_the_pgbouncer_backend_defaults_to_transaction_pooling_and_refuses_other_modes() -> None:
    choice = choose_backend({"db": "embedded+pgbouncer"}, {})
    assert (choice.name, choice.pool_mode) == ("embedded+pgbouncer", "transaction")
    assert "PgBouncer in transaction" in choice.describe()
    assert choose_backend({"db": "embedded+pgbouncer", "pool": "session"}, {}).pool_mode == "session"
    assert choose_backend({}, {"PGSHIP_TEST_DB": "embedded+pgbouncer"}).pool_mode == "transaction"
    with pytest.raises(BackendChoiceError, match="transaction, session"):
        choose_backend({"db": "embedded+pgbouncer", "pool": "statement"}, {})
    assert choose_backend({"db": "embedded"}, {}).pool_mode is None


def test_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(BackendChoiceError, match="embedded, container, url"):
        choose_backend({"db": "sqlite"}, {})


def test_the_postgresql_major_comes_from_userdata_or_the_environment_and_is_checked() -> None:
    assert choose_backend({}, {}).pg is None
    assert choose_backend({"pg": "14"}, {"PGSHIP_TEST_PG": "18"}).pg == 14
    assert choose_backend({}, {"PGSHIP_TEST_PG": "18"}).describe() == "embedded (PostgreSQL 18 with contrib)"
    assert choose_backend({"db": "container", "pg": "15"}, {}).image == "postgres:15"
    with pytest.raises(BackendChoiceError, match="14, 15, 16, 17, 18"):
        choose_backend({"pg": "13"}, {})


# -- isolation --------------------------------------------------------------------
def test_each_scenario_gets_an_empty_clone_and_it_is_dropped_after(spec_session: SpecSession) -> None:
    first = spec_session.begin_scenario()
    first.query("CREATE TABLE leftover (id int)")
    second = spec_session.begin_scenario()
    try:
        assert second.database_name != first.database_name
        assert not second.table_exists("leftover")
    finally:
        spec_session.end_scenario(first)
        spec_session.end_scenario(second)
    spec_session.databases.settle()  # type: ignore[union-attr]  # drops run in the background
    with psycopg.connect(spec_session.server.admin_url) as conn:  # type: ignore[union-attr]
        names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert first.database_name not in names and second.database_name not in names
    assert not first.workspace.root.exists()


def test_a_database_with_open_connections_is_still_dropped(spec_session: SpecSession) -> None:
    world = spec_session.begin_scenario()
    lingering = psycopg.connect(world.database_url)
    try:
        spec_session.end_scenario(world)
        spec_session.databases.settle()  # type: ignore[union-attr]
    finally:
        lingering.close()
    with psycopg.connect(spec_session.server.admin_url) as conn:  # type: ignore[union-attr]
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (world.database_name,)
        ).fetchone()
    assert found is None


def test_a_run_never_drops_a_database_it_did_not_create(spec_session: SpecSession) -> None:
    databases: ScenarioDatabases = spec_session.databases  # type: ignore[assignment]
    with pytest.raises(ValueError, match="did not create"):
        databases.drop("postgres")


def test_prefetch_hands_out_a_fresh_database_each_time_and_drops_them_all(spec_session: SpecSession) -> None:
    server = spec_session.server
    assert server is not None
    databases = ScenarioDatabases(server, strategy="file_copy", prefetch=True)
    databases.prepare_template()
    try:
        taken = [databases.take() for _ in range(3)]
        assert len(set(taken)) == 3
        for name in taken:
            with psycopg.connect(databases.url(name), autocommit=True) as conn:
                conn.execute("CREATE TABLE mine (id int)")  # each one is usable, and private
            databases.release(name)
        databases.settle()
    finally:
        databases.close()
    with psycopg.connect(server.admin_url) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (databases.prefix + "%",)
        )
        assert left.fetchall() == []


def test_both_clone_strategies_give_an_empty_database(spec_session: SpecSession) -> None:
    server = spec_session.server
    assert server is not None
    for strategy in ("file_copy", "wal_log"):
        databases = ScenarioDatabases(server, strategy=strategy)
        databases.prepare_template()
        try:
            name = databases.create()
            with psycopg.connect(databases.url(name)) as conn:
                assert conn.execute(
                    "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
                ).fetchone() == (0,)
        finally:
            databases.close()


# -- cleanup ----------------------------------------------------------------------
IGNORES_SIGTERM = "; ".join(
    [
        "import signal, time",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
        "print('ready', flush=True)",
        "time.sleep(60)",
    ]
)


def boom() -> None:
    raise RuntimeError("boom")


def test_cleanup_stops_processes_even_when_one_action_fails() -> None:
    registry = CleanupRegistry(grace_seconds=2)
    stubborn = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"  # SIGTERM is ignored now
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    registry.process(stubborn)
    registry.callback("a release that breaks", boom)
    registry.process(polite)
    with pytest.raises(CleanupError, match="a release that breaks: RuntimeError: boom"):
        registry.close()
    assert stubborn.wait(timeout=0) == -9  # killed after the grace period
    assert polite.poll() is not None
    assert len(registry) == 0
    stubborn.stdout.close()


# -- secrets ----------------------------------------------------------------------
def test_scrubber_masks_the_password_plain_encoded_and_in_any_url() -> None:
    scrub = Scrubber(["p@ss/word!"])
    text = "pw p@ss/word! enc p%40ss%2Fword%21 other postgresql://bob:s3cret@db:5432/x password=abc123"
    cleaned = scrub(text)
    for secret in ("p@ss/word!", "p%40ss%2Fword%21", "s3cret", "abc123"):
        assert secret not in cleaned
    assert cleaned.count(MASK) == 4


def test_password_of_a_url_is_decoded() -> None:
    assert password_of("postgresql://u:p%40ss@h/db") == "p@ss"
    assert password_of("postgresql://u@h/db") is None


def test_command_transcript_names_the_database_but_not_its_password(spec_session: SpecSession) -> None:
    world = spec_session.begin_scenario()
    try:
        world.workspace.ship_release(1)
        result = world.cli.run("status", mode=SUBPROCESS)
        password = password_of(world.database_url)
        assert password and password in " ".join(result.argv)  # the command really got it...
        transcript = format_transcript(result, Scrubber([password]))
        assert password not in transcript  # ...and the report never shows it
        assert world.database_name in transcript and "$ pgship status" in transcript
        assert "pending" in transcript
    finally:
        spec_session.end_scenario(world)


# -- the sample application ---------------------------------------------------------
def test_releases_grow_by_one_migration_and_skip_versions() -> None:
    versions = [m.version for m in SAMPLE_APP.release(5)]
    assert versions == ["001", "002", "003", "005", "010"]
    assert [m.version for m in SAMPLE_APP.release(2)] == ["001", "002"]


def test_checksum_ignores_bom_and_line_endings() -> None:
    text = "CREATE TABLE t (id int);\nSELECT 1;\n"
    assert sha256_of_migration_text("\ufeff" + text.replace("\n", "\r\n")) == sha256_of_migration_text(text)


def test_settings_in_the_developers_shell_do_not_reach_in_process_commands(
    spec_session: SpecSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSHIP_TABLE", "somebody_elses_table")
    monkeypatch.setenv("PGSHIP_MIGRATIONS_DIR", "/nowhere")
    world = spec_session.begin_scenario()
    try:
        world.workspace.ship_release(1)
        result = world.cli.run("migrate", json_output=True)
        assert result.exit_code == 0, result.output
        assert world.table_exists("schema_migrations") and not world.table_exists("somebody_elses_table")
    finally:
        spec_session.end_scenario(world)
    assert os.environ["PGSHIP_TABLE"] == "somebody_elses_table"  # and the shell's settings are back


# -- background commands and the scenario files ---------------------------------------
def test_a_background_command_is_recorded_like_a_finished_one(spec_session: SpecSession) -> None:
    world = spec_session.begin_scenario()
    seen = []
    world.cli.on_result = seen.append
    try:
        world.workspace.ship_release(2)
        proc = world.cli.start("migrate", json_output=True)
        result = world.cli.finish(proc)
        assert result.exit_code == 0 and result.mode == SUBPROCESS, result.output
        assert result.json()["applied"][-1]["version"] == "002"
        assert result.display() == "pgship migrate --json"
        assert world.cli.history[-1] is result and seen == [result]
    finally:
        spec_session.end_scenario(world)


def test_a_killed_background_command_reports_the_signal(spec_session: SpecSession) -> None:
    world = spec_session.begin_scenario()
    try:
        proc = world.cli.start("wait", "-d", "postgresql://nobody@127.0.0.1:9/none", "--timeout", "30")
        proc.kill()
        assert world.cli.finish(proc).exit_code == -9
    finally:
        spec_session.end_scenario(world)


def test_every_catalogue_phrase_is_matched_by_its_step_type_and_nothing_else() -> None:
    import re

    from pgship.testing.spec.scenario_files import BAD_INPUTS, EXTRA_MIGRATIONS, phrase_pattern

    for catalogue in (EXTRA_MIGRATIONS, BAD_INPUTS):
        pattern = re.compile(f"(?:{phrase_pattern(catalogue)})")
        assert all(pattern.fullmatch(phrase) for phrase in catalogue)
        assert not pattern.fullmatch("a migration that does something else")


def test_the_old_runner_leaves_its_own_kind_of_tracking_table(spec_session: SpecSession) -> None:
    from pgship.testing.spec.legacy_runner import migrate_like_the_old_runner

    world = spec_session.begin_scenario()
    try:
        migrate_like_the_old_runner(world.database_url, SAMPLE_APP.release(2))
        columns = world.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'schema_migrations' "
            "ORDER BY ordinal_position"
        )
        assert [c["column_name"] for c in columns] == ["version", "name", "applied_at"]
        assert [row["version"] for row in world.tracking_rows()] == ["001", "002"]
        assert world.table_exists("customers")
    finally:
        spec_session.end_scenario(world)


def test_runs_adding_to_one_report_list_every_postgresql_version_and_backend() -> None:
    from pgship.testing.spec.allure_formatter import merged_environment

    earlier = "Python=3.11.7\nPostgreSQL=14.23, 15.19\nBackend=embedded (PostgreSQL 14 with contrib)\n"
    current = {"PostgreSQL": "16.15", "Backend": "embedded (PostgreSQL 16 with contrib)", "pgship": "0.1.0"}
    merged = merged_environment(earlier, current)
    assert merged["PostgreSQL"] == "14.23, 15.19, 16.15"
    assert merged["Backend"] == "embedded (PostgreSQL 14 with contrib), embedded (PostgreSQL 16 with contrib)"
    assert merged["pgship"] == "0.1.0"
    assert merged_environment("PostgreSQL=16.15\n", {"PostgreSQL": "16.15"})["PostgreSQL"] == "16.15"
