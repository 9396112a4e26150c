"""Steps about fleets: one release deployed to many tenant databases (or schemas) at once.

The scenario's own database is the catalog: the fleet file in the workspace finds the tenants with
a query on it (``pg_database`` for a database per tenant, ``pg_namespace`` for a schema per
tenant), exactly as a team with thousands of tenants would. Tenant databases are created on the
scenario's server, named after the scenario's database, and dropped at cleanup.
"""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import psycopg
from behave import given, then, when
from psycopg import sql

from pgship.testing.spec import attachments
from pgship.testing.spec.commands import CommandResult
from pgship.testing.spec.workspace import SAMPLE_APP
from steps.support import version_list, wait_until

FLEET_FILE = "pgship.fleet.toml"


# -- the fleet ------------------------------------------------------------------------
def tenants(context: Any) -> dict[int, str]:
    """Tenant number -> its database name (or schema name, for a schema-per-tenant fleet)."""
    return context.world.facts.setdefault("tenants", {})


def tenant_url(context: Any, number: int) -> str:
    world = context.world
    if world.facts.get("tenant_kind") == "schema":
        return world.database_url
    return world.server.url_for(tenants(context)[number])


def tenant_table(context: Any, number: int, table: str) -> str:
    if context.world.facts.get("tenant_kind") == "schema":
        return f'"{tenants(context)[number]}".{table}'
    return table


def tenant_query(context: Any, number: int, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(tenant_url(context, number), autocommit=True) as conn:
        cursor = conn.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def tenant_versions(context: Any, number: int) -> list[str]:
    table = tenant_table(context, number, "schema_migrations")
    found = tenant_query(context, number, f"SELECT to_regclass('{table}') IS NOT NULL")[0][0]
    if not found:
        return []
    rows = tenant_query(context, number, f"SELECT version FROM {table}")
    return sorted((row[0] for row in rows), key=lambda v: tuple(int(p) for p in v.split(".")))


def release_versions(number: int) -> list[str]:
    return [migration.version for migration in SAMPLE_APP.release(number)]


def write_fleet_file(context: Any, text: str) -> None:
    path = context.world.workspace.root / FLEET_FILE
    path.write_text(text, encoding="utf-8")
    attachments.attach_text(FLEET_FILE, text)


def fleet_run(context: Any, *options: str) -> CommandResult:
    """``pgship migrate --fleet --json`` in the scenario's workspace, with a Markdown summary attached."""
    summary = context.world.workspace.root / "fleet-summary.md"
    summary.unlink(missing_ok=True)
    result = context.world.cli.run(
        "migrate", "--fleet", "--markdown", str(summary), *options, json_output=True
    )
    if summary.is_file():
        attachments.attach_text("fleet report (Markdown, as a CI job summary shows it)", summary.read_text())
    context.world.facts["fleet_run"] = result
    return result


def fleet_document(context: Any) -> dict[str, Any]:
    return context.world.facts["fleet_run"].json()


def target_of(document: dict[str, Any], number: int) -> dict[str, Any]:
    name = f"tenant-{number}"
    for target in document["targets"]:
        if target["name"] == name:
            return target
    raise AssertionError(f"the report has no target {name}: {[t['name'] for t in document['targets']]}")


@given("a fleet of {count:d} tenant databases at release {number:d}, the first of them the canary")
def fleet_of_databases(context: Any, count: int, number: int) -> None:
    world = context.world
    prefix = f"{world.database_name}_t"
    admin = psycopg.connect(world.server.admin_url, autocommit=True)
    world.cleanup.closeable(admin, "admin connection for tenant databases")
    for index in range(1, count + 1):
        name = f"{prefix}{index}"
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        world.cleanup.callback(
            f"tenant database {name}",
            lambda name=name: admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            ),
        )
        tenants(context)[index] = name
    world.facts["tenant_kind"] = "database"
    pattern = prefix.replace("_", "\\\\_") + "%"
    write_fleet_file(
        context,
        'groups = ["canary", "wave-1"]\n\n'
        "# every tenant database on the server; tenant-1 is the canary\n"
        "[[query]]\n"
        'name = "tenants"\n'
        'sql = """\n'
        "SELECT datname AS database, 'tenant-' || substring(datname from '_t([0-9]+)$') AS name,\n"
        "       CASE WHEN datname ~ '_t1$' THEN 'canary' ELSE 'wave-1' END AS group\n"
        f"FROM pg_database WHERE datname LIKE '{pattern}'\n"
        "ORDER BY length(datname), datname\n"
        '"""\n',
    )
    ship(context, number)
    if number:
        result = fleet_run(context)
        assert result.exit_code == 0, f"setting up the fleet at release {number} failed:\n{result.output}"


@given("one database holding {count:d} tenant schemas")
def fleet_of_schemas(context: Any, count: int) -> None:
    world = context.world
    for index in range(1, count + 1):
        name = f"tenant_{index}"
        world.query(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)).as_string(None))
        tenants(context)[index] = name
    world.facts["tenant_kind"] = "schema"
    write_fleet_file(
        context,
        "# every tenant schema of the application's database\n"
        "[[query]]\n"
        'name = "tenant schemas"\n'
        'sql = """\n'
        "SELECT nspname AS schema, replace(nspname, '_', '-') AS name\n"
        "FROM pg_namespace WHERE nspname LIKE 'tenant\\\\_%' ORDER BY nspname\n"
        '"""\n',
    )


def ship(context: Any, number: int, broken: tuple[str, ...] = ()) -> None:
    context.world.workspace.ship_release(number, broken=broken)
    context.world.facts["shipped_release"] = number
    context.world.facts["release_before"] = {n: tenant_versions(context, n) for n in tenants(context)}


@given("tenant {number:d} already has an orders table, made by hand")
def tenant_has_orders(context: Any, number: int) -> None:
    tenant_query(context, number, "CREATE TABLE orders (id int)")


@given("tenant {number:d} is busy: a transaction is writing to its customers table")
def tenant_busy(context: Any, number: int) -> None:
    conn = psycopg.connect(tenant_url(context, number))
    context.world.cleanup.closeable(conn, f"tenant {number}'s open transaction")
    conn.execute("INSERT INTO customers (name) VALUES ('a customer in the middle of signing up')")
    context.world.facts["busy"] = (number, conn)


@given("tenant {number:d} does not accept connections")
def tenant_closed(context: Any, number: int) -> None:
    name = tenants(context)[number]
    context.world.query(
        sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(name)).as_string(None)
    )


@given("tenants {numbers} have been deployed release {number:d} on their own")
def tenants_deployed_alone(context: Any, numbers: str, number: int) -> None:
    world = context.world
    world.workspace.ship_release(number)
    for tenant in (int(n) for n in version_list(numbers)):
        result = world.cli.run("-d", tenant_url(context, tenant), "migrate", json_output=True)
        assert result.exit_code == 0, result.output


@given("the fleet file names a tenant by a URL with its password")
def fleet_file_with_password(context: Any) -> None:
    url = context.world.server.url_for(tenants(context)[1])
    path = context.world.workspace.root / FLEET_FILE
    path.write_text(f'[[target]]\nname = "tenant-1"\nurl = "{url}"\n', encoding="utf-8")
    attachments.attach_text(FLEET_FILE, path.read_text())  # the scrubber masks the password here


# -- deploying ------------------------------------------------------------------------
@given("release {number:d} is shipped to the fleet")
def shipped_to_fleet(context: Any, number: int) -> None:
    ship(context, number)


@when("release {number:d} is deployed to the fleet")
def deploy_to_fleet(context: Any, number: int) -> None:
    ship(context, number)
    fleet_run(context)


@when("release {number:d} is deployed to the fleet, continuing past failed tenants")
def deploy_to_fleet_continuing(context: Any, number: int) -> None:
    ship(context, number)
    fleet_run(context, "--on-error", "continue")


@when("release {number:d}, in which migration {version} fails, is deployed to the fleet")
def deploy_broken_to_fleet(context: Any, number: int, version: str) -> None:
    ship(context, number, broken=(version,))
    fleet_run(context, "--on-error", "continue")


@when("the release is deployed to the fleet")
def deploy_shipped_to_fleet(context: Any) -> None:
    fleet_run(context)


@when("the same fleet deploy is run again")
def deploy_again(context: Any) -> None:
    fleet_run(context)


@when(
    "a fleet deploy of release {number:d}, one tenant at a time, "
    "is interrupted while tenant {tenant:d} is mid-migration"
)
def interrupted_fleet_deploy(context: Any, number: int, tenant: int) -> None:
    world = context.world
    ship(context, number)
    busy_tenant, busy = world.facts["busy"]
    assert busy_tenant == tenant, "the interrupted tenant is the busy one"
    options = ("--parallel", "1", "--lock-timeout", "60", "--lock-retries", "0")
    proc = world.cli.start("migrate", "--fleet", *options, json_output=True)
    name = tenants(context)[tenant]

    def waiting_on_the_busy_table() -> list[dict[str, Any]]:
        if proc.poll() is not None:
            raise AssertionError(f"the fleet deploy ended early:\n{proc.communicate()}")
        return world.query(
            "SELECT pid, wait_event_type, query FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'pgship' AND wait_event_type = 'Lock'",
            (name,),
        )

    sessions = wait_until(
        waiting_on_the_busy_table, what=f"the fleet deploy to be mid-migration on tenant {tenant}"
    )
    attachments.attach_json(
        f"tenant {tenant}: the fleet deploy's migration waits for the busy table", sessions
    )
    proc.send_signal(signal.SIGTERM)  # what Ctrl-C, a cancelled CI job or `kubectl delete` sends
    assert proc.stderr is not None
    said = proc.stderr.readline()  # pgship says it is stopping before the migration in flight ends
    assert "stopping (interrupted)" in said, f"pgship did not acknowledge the interrupt: {said!r}"
    busy.commit()  # the migration in flight can finish now
    world.facts["fleet_run"] = world.cli.finish(proc)


@when("two fleet deploys of release {number:d} start at the same moment")
def two_fleet_deploys(context: Any, number: int) -> None:
    world = context.world
    ship(context, number)
    busy_tenant, busy = world.facts["busy"]
    runs = [world.cli.start("migrate", "--fleet", "--lock-timeout", "60", json_output=True) for _ in range(2)]
    name = tenants(context)[busy_tenant]

    def both_on_the_busy_tenant() -> list[dict[str, Any]] | None:
        sessions = world.query(
            "SELECT pid, wait_event_type, query FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'pgship'",
            (name,),
        )
        held = [s for s in sessions if s["wait_event_type"] == "Lock"]
        return sessions if len(sessions) == 2 and held else None

    sessions = wait_until(both_on_the_busy_tenant, what=f"both fleet deploys to reach tenant {busy_tenant}")
    attachments.attach_json(
        f"tenant {busy_tenant}: both fleet deploys there at once (pg_stat_activity)", sessions
    )
    busy.commit()
    world.facts["fleet_runs"] = [world.cli.finish(proc) for proc in runs]


@when("release {number:d} is deployed to the fleet in {count:d} shards")
def deploy_in_shards(context: Any, number: int, count: int) -> None:
    ship(context, number)
    context.world.facts["fleet_runs"] = [
        fleet_run(context, "--shard", f"{k}/{count}") for k in range(1, count + 1)
    ]


@then("every shard's deploy succeeds")
def every_shard_succeeds(context: Any) -> None:
    for result in context.world.facts["fleet_runs"]:
        assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"


@then("each tenant was deployed by exactly one shard")
def one_shard_each(context: Any) -> None:
    deployed = Counter(
        target["name"]
        for run in context.world.facts["fleet_runs"]
        for target in run.json()["targets"]
        if target["status"] == "ok"
    )
    assert deployed == {f"tenant-{n}": 1 for n in tenants(context)}, deployed


@when("the fleet's health is checked")
def fleet_health(context: Any) -> None:
    result = context.world.cli.run("status", "--fleet", json_output=True)
    context.world.facts["fleet_run"] = result


# -- outcomes ---------------------------------------------------------------------------
@then("the fleet deploy succeeds")
def fleet_succeeds(context: Any) -> None:
    result = context.world.facts["fleet_run"]
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"


@then("the fleet deploy fails with exit code {code:d}")
@then("the fleet deploy is refused with exit code {code:d}")
@then("the fleet command exits with code {code:d}")
def fleet_exits(context: Any, code: int) -> None:
    result = context.world.facts["fleet_run"]
    assert result.exit_code == code, f"expected {code}, got {result.exit_code}:\n{result.output}"


@then("both fleet deploys succeed")
def both_succeed(context: Any) -> None:
    for result in context.world.facts["fleet_runs"]:
        assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"


@then("the fleet report names tenant {number:d} as failed at migration {version}")
def report_names_failure(context: Any, number: int, version: str) -> None:
    document = fleet_document(context)
    assert document["failed"] == [f"tenant-{number}"], document["failed"]
    error = target_of(document, number)["error"]
    assert error["version"] == version, error


@then("the fleet report says the canary failed and no wave was started")
def report_canary(context: Any) -> None:
    document = fleet_document(context)
    assert (document["stopped_because"] or "").startswith("the canary failed"), document["stopped_because"]
    waves = [t for t in document["targets"] if t["group"] != "canary"]
    assert waves and all(t["status"] == "skipped" for t in waves), [(t["name"], t["status"]) for t in waves]


@then("the fleet report lists tenants {numbers} as not finished")
def report_not_finished(context: Any, numbers: str) -> None:
    expected = [f"tenant-{n}" for n in version_list(numbers)]
    document = fleet_document(context)
    assert document["status"] == "interrupted", document["status"]
    assert document["not_finished"] == expected, document["not_finished"]


@then("every tenant is at release {number:d}")
def every_tenant_at(context: Any, number: int) -> None:
    for tenant in tenants(context):
        assert tenant_versions(context, tenant) == release_versions(number), (
            tenant,
            tenant_versions(context, tenant),
        )


@then("every tenant but tenant {skipped:d} is at release {number:d}")
def all_but_one(context: Any, skipped: int, number: int) -> None:
    for tenant in tenants(context):
        if tenant != skipped:
            assert tenant_versions(context, tenant) == release_versions(number), tenant


@then("tenant {tenant:d} is at release {number:d}")
@then("tenant {tenant:d} is still at release {number:d}")
def tenant_at(context: Any, tenant: int, number: int) -> None:
    assert tenant_versions(context, tenant) == release_versions(number), tenant_versions(context, tenant)


@then("tenants {numbers} were not touched")
def untouched(context: Any, numbers: str) -> None:
    before = context.world.facts["release_before"]
    for tenant in (int(n) for n in version_list(numbers)):
        assert tenant_versions(context, tenant) == before[tenant], (tenant, tenant_versions(context, tenant))


@then("no tenant of the later wave was changed")
def later_wave_untouched(context: Any) -> None:
    before = context.world.facts["release_before"]
    for tenant in list(tenants(context))[1:]:
        assert tenant_versions(context, tenant) == before[tenant], tenant


@then("tenant {tenant:d} finished the migration it was applying, {version}, and started no other")
def finished_in_flight(context: Any, tenant: int, version: str) -> None:
    before = context.world.facts["release_before"][tenant]
    assert tenant_versions(context, tenant) == [*before, version], tenant_versions(context, tenant)


@then("every tenant has each of migrations {versions} applied exactly once")
def exactly_once(context: Any, versions: str) -> None:
    for tenant in tenants(context):
        counts = Counter(tenant_versions(context, tenant))
        for version in version_list(versions):
            assert counts[version] == 1, (tenant, version, counts)
    applied = Counter(
        (target["name"], version)
        for run in context.world.facts["fleet_runs"]
        for target in run.json()["targets"]
        for version in target["applied"]
    )
    assert all(count == 1 for count in applied.values()), applied
    assert len(applied) == len(tenants(context)) * len(version_list(versions)), applied


@then("each tenant schema has the shop's tables and its own tracking table, at release {number:d}")
def schemas_at_release(context: Any, number: int) -> None:
    for tenant, schema in tenants(context).items():
        assert tenant_versions(context, tenant) == release_versions(number), tenant
        tables = {row["relname"] for row in context.world.query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'v')", (schema,))}  # fmt: skip
        assert {"customers", "orders", "customer_totals", "schema_migrations"} <= tables, (schema, tables)


@then("nothing was created outside the tenant schemas")
def nothing_outside(context: Any) -> None:
    rows = context.world.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT LIKE 'tenant\\_%%' AND n.nspname NOT LIKE 'pg\\_%%' "
        "AND n.nspname <> 'information_schema'"
    )
    assert rows == [], rows


@then(
    "the fleet's health counts {at:d} tenants at the release, "
    "{behind:d} behind and {unreachable:d} unreachable"
)
def health_counts(context: Any, at: int, behind: int, unreachable: int) -> None:
    summary = fleet_document(context)["summary"]
    assert (summary["at_release"], summary["behind"], summary["unreachable"]) == (at, behind, unreachable), (
        summary
    )


@then("the fleet's output does not contain the password")
def no_password(context: Any) -> None:
    from pgship.testing.spec.secrets import password_of

    password = password_of(context.world.server.admin_url)
    result = context.world.facts["fleet_run"]
    assert password and password not in result.output, "the password was printed"
