"""Where settings come from (pgship.config): flag > environment > pyproject > default, for every one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgship import config

ENV = {
    "PGSHIP_REPLAY_URL": "postgresql://replay@h/db",
    "PGSHIP_DIRECT_URL": "postgresql://direct@h/db",
    "PGSHIP_APPLIED_BY": "ci-job-42",
    "PGSHIP_RELEASE_ID": "abc123",
}


@pytest.mark.parametrize(
    ("read", "variable"),
    [
        (config.replay_url, "PGSHIP_REPLAY_URL"),
        (config.direct_url, "PGSHIP_DIRECT_URL"),
        (config.applied_by, "PGSHIP_APPLIED_BY"),
        (config.release_id, "PGSHIP_RELEASE_ID"),
    ],
)
def test_an_explicit_option_wins_over_the_environment(read, variable):
    assert read("from-the-flag", ENV) == "from-the-flag"
    assert read(None, ENV) == ENV[variable]
    assert read("", ENV) == ENV[variable]  # an empty option is no option
    assert read(None, {variable: ""}) is None  # an empty variable is unset
    assert read(None, {}) is None


def test_applied_by_option_is_not_overridden_by_the_environment():
    # the runner used to let PGSHIP_APPLIED_BY silently replace an explicit --applied-by
    assert config.applied_by("release-7", {"PGSHIP_APPLIED_BY": "someone-else"}) == "release-7"


def test_the_environment_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("PGSHIP_REPLAY_URL", "postgresql://now@h/db")
    assert config.replay_url() == "postgresql://now@h/db"
    monkeypatch.delenv("PGSHIP_REPLAY_URL")
    assert config.replay_url() is None


def test_debug_secrets_and_the_step_summary():
    assert config.debug({"PGSHIP_DEBUG": "1"}) is True
    assert config.debug({"PGSHIP_DEBUG": "yes"}) is False and config.debug({}) is False
    assert config.secret_from_env("MY_TOKEN", {"MY_TOKEN": "s3cret"}) == "s3cret"
    assert config.secret_from_env("MY_TOKEN", {"MY_TOKEN": ""}) is None
    assert config.step_summary({"GITHUB_STEP_SUMMARY": "/tmp/summary.md"}) == Path("/tmp/summary.md")
    assert config.step_summary({}) is None


def test_settings_flag_beats_environment_beats_pyproject_beats_default(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.pgship]\nmigrations_dir = "db/m"\ntable = "from_toml"\n')
    environ = {"PGSHIP_MIGRATIONS_DIR": "env/m", "PGSHIP_TABLE": "from_env"}
    flags = config.resolve(migrations_dir="flag/m", table="from_flag", environ=environ, cwd=tmp_path)
    assert (flags.migrations_dir, flags.table) == (tmp_path / "flag/m", "from_flag")
    env = config.resolve(environ=environ, cwd=tmp_path)
    assert (env.migrations_dir, env.table) == (tmp_path / "env/m", "from_env")
    toml = config.resolve(environ={}, cwd=tmp_path)
    assert (toml.migrations_dir, toml.table) == (tmp_path / "db/m", "from_toml")
    (tmp_path / "pyproject.toml").unlink()
    default = config.resolve(environ={}, cwd=tmp_path)
    assert default.migrations_dir == tmp_path / config.DEFAULT_MIGRATIONS_DIR
    assert default.table == "schema_migrations"


def test_the_cli_takes_the_replay_url_from_the_environment_and_scrubs_it(cli, migrations, monkeypatch):
    # no server listens on port 9: the replay fails to connect there, its password scrubbed
    migrations.write("001_a.sql", "SELECT 1;\n")
    monkeypatch.setenv("PGSHIP_REPLAY_URL", "postgresql://app:Sup3rSecret@127.0.0.1:9/app")
    result = cli("-m", str(migrations), "verify", "--no-database", "--replay")
    assert result.code != 0
    assert result.stdout.startswith("1 migration files are valid (newest 001).\n")  # then the replay
    assert 'server at "127.0.0.1", port 9 failed' in result.stderr, result.output
    assert result.code == 3  # unreachable, worth retrying: never "a bug in pgship"
    assert "cannot connect to the replay server" in result.stderr and "bug" not in result.stderr
    assert "Sup3rSecret" not in result.output


def test_the_runner_records_an_explicit_applied_by_over_the_environment(monkeypatch):
    from pgship.runner import applied_by_identity

    monkeypatch.setenv("PGSHIP_APPLIED_BY", "ci-job-42")
    assert applied_by_identity("release-7") == "release-7"
    assert applied_by_identity(None) == "ci-job-42"
    monkeypatch.delenv("PGSHIP_APPLIED_BY")
    assert "@" in applied_by_identity(None)  # user@host
