"""The fleet file, run-time query rows, waves and shards: pure parsing and selection."""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path

import pytest

from pgship.errors import ExitCode, UsageError
from pgship.fleet.targets import (
    FleetSpec,
    Source,
    Target,
    TargetQuery,
    fleet_from_pyproject,
    parse_fleet,
    parse_shard,
    plan_waves,
    read_fleet_file,
    select_shard,
    shard_of,
    targets_from_rows,
)

FLEET = """
groups = ["canary", "wave-1", "wave-2"]

[[target]]
name = "billing"
url_env = "BILLING_DATABASE_URL"
group = "canary"

[[target]]
name = "eu"
service = "eu-primary"
group = "wave-2"

[[target]]
name = "us"
url = "postgresql://app@db.us.example.com:5432/app"
group = "wave-1"

[[target]]
name = "tenant-a"
url_env = "TENANTS_URL"
schema = "tenant_a"
group = "wave-1"

[[query]]
name = "tenants"
url_env = "CATALOG_URL"
sql = "SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%'"
group = "wave-2"
"""


def parse(text: str) -> FleetSpec:
    return parse_fleet(tomllib.loads(text), "pgship.fleet.toml")


def test_a_fleet_file_names_targets_by_variable_service_or_passwordless_url():
    spec = parse(FLEET)
    assert [t.name for t in spec.targets] == ["billing", "eu", "us", "tenant-a"]
    assert spec.targets[0].source == Source(url_env="BILLING_DATABASE_URL")
    assert spec.targets[1].source == Source(service="eu-primary")
    assert spec.targets[2].source.url == "postgresql://app@db.us.example.com:5432/app"
    assert spec.groups == ("canary", "wave-1", "wave-2")
    assert spec.queries == (
        TargetQuery(
            "tenants",
            "SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%'",
            Source(url_env="CATALOG_URL"),
            "wave-2",
        ),
    )


def test_a_schema_target_keeps_its_tracking_table_in_its_schema():
    tenant = parse(FLEET).targets[3]
    assert tenant.schema == "tenant_a"
    assert tenant.tracking_table("schema_migrations") == "tenant_a.schema_migrations"
    assert Target("x").tracking_table("app.schema_migrations") == "app.schema_migrations"
    # never a table shared by the tenants of one database, whatever --table says
    assert tenant.tracking_table("app.schema_migrations") == "tenant_a.schema_migrations"
    assert Target("t", schema="t1", table="ops.history").tracking_table("x") == "t1.history"


@pytest.mark.parametrize(
    "line",
    [
        'url = "postgresql://app:s3cret@db:5432/app"',
        'url = "postgres://app:@db/app"',
        'url = "host=db password=s3cret dbname=app"',
        'url = "host=db PASSWORD = s3cret"',
        'password = "s3cret"',
        'url = "postgresql://app@db/app?password=s3cret"',
        'url = "postgresql://app@db/app?sslmode=require&sslpassword=s3cret"',
        'url = "POSTGRESQL://app:s3cret@db/app"',
    ],
)
def test_a_file_with_a_password_anywhere_is_refused_and_never_repeats_it(line):
    text = f'[[target]]\nname = "x"\n{line}\n'
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert caught.value.exit_code == ExitCode.INVALID
    assert "password" in caught.value.message
    assert "s3cret" not in caught.value.message + caught.value.hint


def test_a_password_hidden_in_a_query_or_an_unknown_key_is_refused_too():
    with pytest.raises(UsageError, match="password"):
        parse('[[query]]\nsql = "SELECT 1"\nurl = "postgresql://u:pw@h/db"\n')
    with pytest.raises(UsageError, match="password"):
        parse('[[target]]\nname = "x"\nurl_env = "X"\n[target.extra]\nnote = "postgresql://u:pw@h/db"\n')


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no \\[\\[target\\]\\] and no \\[\\[query\\]\\]"),
        ('[[target]]\nname = "a"\n', "no connection"),
        ('[[target]]\nname = "a"\nurl_env = "A"\nservice = "b"\n', "both given"),
        ('[[target]]\nname = "a"\nurl_env = "postgresql://h/db"\n', "not an environment variable name"),
        ('[[target]]\nname = "a"\nurl_env = "A"\n[[target]]\nname = "a"\nurl_env = "B"\n', "used twice"),
        ('[[target]]\nname = "a"\nurl_env = "A"\nschema = "x; DROP"\n', "not a plain identifier"),
        ('[[target]]\nname = "a b"\nurl_env = "A"\n', "name is missing"),
        ('[[target]]\nname = "a"\nurl_env = "A"\nhost = "db"\n', "unknown key"),
        ('targets = []\n[[target]]\nname = "a"\nurl_env = "A"\n', "unknown key"),
        ('[[query]]\nname = "q"\n', "sql is missing"),
        ('groups = "canary"\n[[target]]\nname = "a"\nurl_env = "A"\n', "groups must be a list"),
    ],
)
def test_bad_fleet_files_are_refused_with_the_file_and_the_reason(text, reason):
    with pytest.raises(UsageError, match=reason) as caught:
        parse(text)
    assert caught.value.message.startswith("pgship.fleet.toml: ")
    assert caught.value.hint


def test_the_fleet_file_is_read_from_disk_and_bad_toml_names_the_file(tmp_path: Path):
    good = tmp_path / "pgship.fleet.toml"
    good.write_text(FLEET)
    assert len(read_fleet_file(good).targets) == 4
    bad = tmp_path / "broken.toml"
    bad.write_text("[[target]\nname = 1\n")
    with pytest.raises(UsageError, match=r"broken\.toml: not valid TOML"):
        read_fleet_file(bad)
    with pytest.raises(UsageError, match="cannot read the fleet file"):
        read_fleet_file(tmp_path / "absent.toml")


def test_a_fleet_can_live_in_pyproject(tmp_path: Path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[tool.pgship]\ntable = "x"\n[[tool.pgship.fleet.target]]\nname = "a"\nurl_env = "A"\n'
    )
    spec = fleet_from_pyproject(pyproject)
    assert spec is not None and [t.name for t in spec.targets] == ["a"]
    assert "[tool.pgship.fleet]" in spec.origin
    pyproject.write_text('[tool.pgship]\ntable = "x"\n')
    assert fleet_from_pyproject(pyproject) is None


def test_query_rows_become_targets_by_column_name():
    query = TargetQuery("tenants", "SELECT ...", group="wave-2")
    rows = [("tenant_a", None, None), ("tenant_b", "eu", "canary")]
    targets = targets_from_rows(query, ["datname", "name", "group"], rows)
    assert [(t.name, t.database, t.group) for t in targets] == [
        ("tenant_a", "tenant_a", "wave-2"),
        ("eu", "tenant_b", "canary"),
    ]
    schemas = targets_from_rows(query, ["nspname"], [("tenant_a",), ("tenant_b",)])
    assert [(t.name, t.database, t.schema) for t in schemas] == [
        ("tenant_a", None, "tenant_a"),
        ("tenant_b", None, "tenant_b"),
    ]
    single = targets_from_rows(query, ["whatever"], [("db1",)])
    assert single[0].database == "db1"


def test_query_rows_that_cannot_be_targets_are_refused():
    query = TargetQuery("tenants", "SELECT ...")
    with pytest.raises(UsageError, match="none names a database or a schema"):
        targets_from_rows(query, ["a", "b"], [(1, 2)])
    with pytest.raises(UsageError, match="not a plain identifier"):
        targets_from_rows(query, ["schema"], [('x"; DROP TABLE y; --',)])
    with pytest.raises(UsageError, match="the same target twice"):
        targets_from_rows(query, ["database"], [("a",), ("a",)])


def test_waves_run_the_canary_first_then_the_listed_order_then_the_rest():
    targets = [
        Target("a", group="wave-2"),
        Target("b", group="misc"),
        Target("c", group="canary"),
        Target("d", group="wave-1"),
        Target("e", group="wave-2"),
    ]
    waves = plan_waves(targets, ["wave-1", "wave-2"], "canary")
    assert [(w.group, [t.name for t in w.targets], w.canary) for w in waves] == [
        ("canary", ["c"], True),
        ("wave-1", ["d"], False),
        ("wave-2", ["a", "e"], False),
        ("misc", ["b"], False),
    ]
    assert [w.canary for w in plan_waves(targets, [], None)] == [False] * 4


def test_shards_partition_the_fleet_stably_and_evenly():
    targets = [Target(f"tenant_{i:04d}") for i in range(2000)]
    slices = [select_shard(targets, k, 8) for k in range(1, 9)]
    assert sorted(t.name for s in slices for t in s) == sorted(t.name for t in targets)  # each exactly once
    assert all(180 < len(s) < 320 for s in slices), [len(s) for s in slices]
    # stable across processes and releases (sha256, not Python's salted hash): a CI matrix that ran
    # slice 6 of 8 yesterday runs the same targets today
    assert [shard_of(f"tenant_{i:04d}", 8) for i in range(6)] == [6, 5, 4, 2, 8, 1]
    assert Counter(shard_of(t.name, 1) for t in targets) == {1: 2000}


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "1", "", "-1/4"])
def test_a_bad_shard_is_refused(text):
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_a_shard_is_parsed():
    assert parse_shard("2/8") == (2, 8)
    assert parse_shard(" 1 / 1 ") == (1, 1)
