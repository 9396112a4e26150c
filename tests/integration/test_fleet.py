"""``pgship ... --fleet`` on a real PostgreSQL: many databases (and schemas), one combined report."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import MigrationsDir
from tests.integration.helpers import applied_versions, query, scalar, table_exists
from tests.toolkit import run_cli, spawn_cli

RELEASE = {f"{i:03d}_step{i}.sql": f"CREATE TABLE step{i} (id int);\n" for i in range(1, 6)}


@pytest.fixture
def make_databases(pg_server) -> Iterator[Callable[[int], list[str]]]:
    """Create N databases named fleet_<run>_<i>; all dropped afterwards."""
    created: list[str] = []
    run = secrets.token_hex(3)

    def make(count: int) -> list[str]:
        names = []
        with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
            for _ in range(count):
                name = f"fleet_{run}_{len(created):03d}"
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
                names.append(name)
        return names

    yield make
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def release(migrations: MigrationsDir) -> MigrationsDir:
    for name, text in RELEASE.items():
        migrations.write(name, text)
    return migrations


def like(names: list[str]) -> str:
    prefix = names[0].rsplit("_", 1)[0]
    return f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}\\_%' ORDER BY 1"


def fleet_cli(pg_server, release: MigrationsDir, *args: str, env: dict[str, str] | None = None):
    return run_cli("-d", pg_server.admin_url, "-m", str(release), *args, env=env)


def test_a_fleet_query_brings_every_database_to_the_release_and_a_rerun_is_a_no_op(
    pg_server, make_databases, release
):
    names = make_databases(6)
    first = fleet_cli(pg_server, release, "migrate", "--fleet-query", like(names), "--json")
    assert first.code == 0, first.output
    document = json.loads(first.stdout)
    assert document["status"] == "ok" and document["summary"] == {"ok": 6}
    assert [t["name"] for t in document["targets"]] == names
    assert all(t["version_before"] is None and t["version_after"] == "005" for t in document["targets"])
    for name in names:
        assert applied_versions(pg_server.url_for(name)) == ["001", "002", "003", "004", "005"]
    again = fleet_cli(pg_server, release, "migrate", "--fleet-query", like(names), "--json")
    assert again.code == 0
    assert json.loads(again.stdout)["summary"] == {"up_to_date": 6}


def test_a_fleet_file_names_targets_by_environment_variable_and_schema(
    pg_server, make_databases, release, tmp_path: Path, monkeypatch
):
    db_a, db_b, shared = make_databases(3)
    (tmp_path / "pgship.fleet.toml").write_text(
        'groups = ["canary", "tenants"]\n'
        '[[target]]\nname = "a"\nurl_env = "FLEET_A_URL"\ngroup = "canary"\n'
        '[[target]]\nname = "b"\nurl_env = "FLEET_B_URL"\ngroup = "tenants"\n'
        '[[target]]\nname = "acme"\nurl_env = "FLEET_SHARED_URL"\nschema = "acme"\ngroup = "tenants"\n'
        '[[target]]\nname = "globex"\nurl_env = "FLEET_SHARED_URL"\nschema = "globex"\ngroup = "tenants"\n'
    )
    monkeypatch.chdir(tmp_path)
    env = {
        "FLEET_A_URL": pg_server.url_for(db_a),
        "FLEET_B_URL": pg_server.url_for(db_b),
        "FLEET_SHARED_URL": pg_server.url_for(shared),
    }
    result = run_cli("-m", str(release), "migrate", "--fleet", "--json", env=env)
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert [t["name"] for t in document["targets"]] == ["a", "b", "acme", "globex"]
    assert document["targets"][2]["table"] == "acme.schema_migrations"
    assert document["targets"][0]["location"] == f"{pg_server.user}@127.0.0.1:{pg_server.port}/{db_a}"
    assert document["targets"][2]["location"].endswith(f"/{shared} schema acme")
    assert pg_server.password not in result.output
    shared_url = pg_server.url_for(shared)
    for schema in ("acme", "globex"):  # each tenant's tables and tracking table in its own schema
        assert applied_versions(shared_url, f"{schema}.schema_migrations") == [
            "001",
            "002",
            "003",
            "004",
            "005",
        ]
        assert table_exists(shared_url, f"{schema}.step5")
    assert not table_exists(shared_url, "public.step1") and not table_exists(shared_url, "schema_migrations")
    status = run_cli("-m", str(release), "status", "--fleet", "--check", "--json", env=env)
    assert status.code == 0, status.output
    assert json.loads(status.stdout)["summary"]["at_release"] == 4


def test_a_failed_canary_leaves_every_wave_untouched(pg_server, make_databases, release, tmp_path: Path):
    canary, *wave = make_databases(4)
    query(pg_server.url_for(canary), "CREATE TABLE step3 (id int)")  # 003 fails there
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        f"[[query]]\nsql = \"SELECT datname, CASE WHEN datname = '{canary}' THEN 'canary' ELSE 'wave-1' "
        f"END AS group FROM pg_database WHERE datname LIKE '{canary.rsplit('_', 1)[0]}\\\\_%' ORDER BY 1\"\n"
    )
    result = fleet_cli(pg_server, release, "migrate", "--fleet", str(fleet_file), "--on-error", "continue")
    assert result.code == 1, result.output
    assert f"Failed: {canary}." in result.stdout
    assert "Stopped early: the canary failed" in result.stdout
    assert applied_versions(pg_server.url_for(canary)) == ["001", "002"]
    for name in wave:
        assert not table_exists(pg_server.url_for(name), "schema_migrations")


def test_one_broken_tenant_does_not_stop_the_others_with_on_error_continue(
    pg_server, make_databases, release
):
    names = make_databases(5)
    broken = names[2]
    query(pg_server.url_for(broken), "CREATE TABLE step4 (id int)")
    result = fleet_cli(
        pg_server, release, "migrate", "--fleet-query", like(names), "--on-error", "continue", "--json"
    )
    assert result.code == 1, result.output
    document = json.loads(result.stdout)
    assert document["failed"] == [broken]
    failure = document["targets"][2]
    assert failure["status"] == "failed" and failure["version_after"] == "003"
    assert failure["error"]["file"] == "004_step4.sql" and failure["error"]["sqlstate"] == "42P07"
    for name in names:
        expected = ["001", "002", "003"] if name == broken else ["001", "002", "003", "004", "005"]
        assert applied_versions(pg_server.url_for(name)) == expected


def test_an_unreachable_target_is_reported_and_does_not_hide_the_others(
    pg_server, make_databases, release, tmp_path: Path
):
    (good,) = make_databases(1)
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        '[[target]]\nname = "gone"\nurl_env = "FLEET_GONE_URL"\n'
        '[[target]]\nname = "unset"\nurl_env = "FLEET_UNSET_URL"\n'
        '[[target]]\nname = "good"\nurl_env = "FLEET_GOOD_URL"\n'
    )
    env = {
        # nobody listens there (a missing database would be "rejected", exit 6: not worth a retry)
        "FLEET_GONE_URL": "postgresql://app@127.0.0.1:9/gone",
        "FLEET_GOOD_URL": pg_server.url_for(good),
    }
    result = fleet_cli(
        pg_server, release, "migrate", "--fleet", str(fleet_file), "--on-error", "continue", "--json", env=env
    )
    assert result.code == 3, result.output  # every failure is "unreachable": the single-database code
    document = json.loads(result.stdout)
    assert {t["name"]: t["status"] for t in document["targets"]} == {
        "gone": "unreachable",
        "unset": "unreachable",
        "good": "ok",
    }
    assert "FLEET_UNSET_URL is not set" in document["targets"][1]["error"]["message"]
    status = fleet_cli(pg_server, release, "status", "--fleet", str(fleet_file), "--json", env=env)
    assert status.code == 3
    assert json.loads(status.stdout)["summary"] == {
        "at_release": 1,
        "behind": 0,
        "drifted": 0,
        "ahead": 0,
        "unreachable": 2,
        "error": 0,
    }


def test_status_counts_behind_and_drifted_targets_for_monitoring(pg_server, make_databases, release):
    names = make_databases(4)
    assert fleet_cli(pg_server, release, "migrate", "--fleet-query", like(names)).code == 0
    query(pg_server.url_for(names[1]), "DELETE FROM schema_migrations WHERE version = '005'")
    query(
        pg_server.url_for(names[2]), "UPDATE schema_migrations SET checksum = 'edited' WHERE version = '002'"
    )
    result = fleet_cli(pg_server, release, "status", "--fleet-query", like(names), "--check", "--json")
    assert result.code == 5, result.output
    document = json.loads(result.stdout)
    assert document["summary"]["at_release"] == 2
    assert document["summary"]["behind"] == 1 and document["summary"]["drifted"] == 1
    assert document["in_sync"] is False and document["failed"] == [names[1], names[2]]
    assert document["targets"][1]["pending"] == ["005"]
    verify = fleet_cli(pg_server, release, "verify", "--fleet-query", like(names), "--json")
    assert verify.code == 2
    assert json.loads(verify.stdout)["failed"] == [names[2]]
    plan = fleet_cli(pg_server, release, "plan", "--fleet-query", like(names), "--json")
    targets = json.loads(plan.stdout)["targets"]
    assert targets[1]["would_apply"] == ["005"] and targets[0]["would_apply"] == []


def test_shards_split_the_fleet_and_together_cover_it_once(pg_server, make_databases, release):
    names = make_databases(8)
    seen: list[str] = []
    for k in (1, 2, 3):
        result = fleet_cli(
            pg_server, release, "migrate", "--fleet-query", like(names), "--shard", f"{k}/3", "--json"
        )
        assert result.code == 0, result.output
        document = json.loads(result.stdout)
        assert document["fleet"]["shard"] == f"{k}/3"
        seen += [t["name"] for t in document["targets"] if t["status"] == "ok"]
    assert sorted(seen) == names


def test_two_fleet_runs_at_once_apply_each_migration_once_on_every_target(pg_server, make_databases, release):
    names = make_databases(6)
    runs = [
        spawn_cli(
            "-d",
            pg_server.admin_url,
            "-m",
            str(release),
            "migrate",
            "--fleet-query",
            like(names),
            "--parallel",
            "3",
            "--json",
        )
        for _ in range(2)
    ]
    documents = []
    for proc in runs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        documents.append(json.loads(out))
    for name in names:
        url = pg_server.url_for(name)
        assert scalar(url, "SELECT count(*) FROM schema_migrations") == 5
        assert scalar(url, "SELECT count(DISTINCT version) FROM schema_migrations") == 5
        applied = [v for d in documents for t in d["targets"] if t["name"] == name for v in t["applied"]]
        assert sorted(applied) == ["001", "002", "003", "004", "005"]  # between them, each exactly once


def test_no_password_in_any_fleet_output_and_a_file_with_one_is_refused(
    pg_server, make_databases, release, tmp_path: Path
):
    names = make_databases(2)
    password = pg_server.password
    summary = tmp_path / "summary.md"
    query(pg_server.url_for(names[1]), "CREATE TABLE step2 (id int)")
    outputs = []
    for extra in ([], ["--json"]):
        result = fleet_cli(
            pg_server,
            release,
            "migrate",
            "--fleet-query",
            like(names),
            "--on-error",
            "continue",
            "--markdown",
            str(summary),
            *extra,
            env={"GITHUB_STEP_SUMMARY": str(tmp_path / "step.md")},
        )
        assert result.code == 1
        outputs.append(result.output)
    bad = tmp_path / "fleet.toml"
    bad.write_text(f'[[target]]\nname = "x"\nurl = "{pg_server.url_for(names[1])}"\n')
    query(pg_server.url_for(names[1]), "DROP TABLE step2")
    refused = fleet_cli(pg_server, release, "migrate", "--fleet", str(bad))
    assert refused.code == 2 and "holds a password" in refused.stderr
    outputs.append(refused.output)
    for text in [*outputs, summary.read_text(), (tmp_path / "step.md").read_text()]:
        assert password not in text
    assert "| " + names[1] + " | default | failed |" in summary.read_text()
    assert "pgship migrate --fleet" in (tmp_path / "step.md").read_text()
    assert applied_versions(pg_server.url_for(names[1])) == ["001"]  # the refused run changed nothing


def test_bad_fleet_input_is_refused_before_any_target_changes(pg_server, make_databases, release, tmp_path):
    (name,) = make_databases(1)
    for args, message in [
        (["--fleet", str(tmp_path / "absent.toml")], "cannot read the fleet file"),
        (["--fleet-query", "SELECT nope FROM nowhere"], "fleet query 'query' failed"),
        (["--fleet-query", like([name]), "--shard", "4/3"], "--shard"),
        (["--fleet-query", like([name]), "--fleet", "x.toml"], "both name the targets"),
    ]:
        result = fleet_cli(pg_server, release, "migrate", *args)
        assert result.code == 2, (args, result.output)
        assert message in result.stderr, result.stderr
    assert not table_exists(pg_server.url_for(name), "schema_migrations")


def test_one_fleet_spans_two_servers_as_two_machines_would(
    pg_server, make_databases, release, tmp_path: Path
):
    """Targets on two PostgreSQL servers (two ports standing for two machines), one run, one report."""
    from pgship.testing import EmbeddedPostgres

    (here,) = make_databases(1)
    with EmbeddedPostgres() as other:
        there = other.create_database(prefix="fleet_remote")
        fleet_file = tmp_path / "fleet.toml"
        fleet_file.write_text(
            'groups = ["canary", "region-b"]\n'
            '[[target]]\nname = "region-a"\ngroup = "canary"\nurl_env = "FLEET_A_URL"\n'
            '[[target]]\nname = "region-b"\ngroup = "region-b"\nurl_env = "FLEET_B_URL"\n'
        )
        env = {"FLEET_A_URL": pg_server.url_for(here), "FLEET_B_URL": other.url_for(there)}
        result = fleet_cli(pg_server, release, "migrate", "--fleet", str(fleet_file), "--json", env=env)
        assert result.code == 0, result.output
        document = json.loads(result.stdout)
        assert {t["name"]: t["version_after"] for t in document["targets"]} == {
            "region-a": "005",
            "region-b": "005",
        }
        assert applied_versions(pg_server.url_for(here)) == ["001", "002", "003", "004", "005"]
        assert applied_versions(other.url_for(there)) == ["001", "002", "003", "004", "005"]
        assert other.password not in result.output and pg_server.password not in result.output
        status = fleet_cli(
            pg_server, release, "status", "--fleet", str(fleet_file), "--check", "--json", env=env
        )
        assert status.code == 0, status.output
