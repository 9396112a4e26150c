"""Steps about deploying through a connection pooler (PgBouncer in front of the database).

The pooler is a real PgBouncer the run starts once per pool mode (``SpecSession.pooler``).
With ``-D db=embedded+pgbouncer`` every scenario's database URL goes through it already;
otherwise a "through the connection pooler" step points the scenario's pgship at one (in
transaction mode). A step that names the *transaction* pooler always uses one in
transaction mode, whatever the run's pool mode, because that is what it is about.
"""

from __future__ import annotations

import signal
from typing import Any

from behave import given, then, when

from pgship.testing.spec import attachments
from steps.health import start_health_endpoint
from steps.support import (
    finish_subprocess_deploy,
    remember_state_before_deploy,
    wait_for_migration_in_flight,
    wait_until,
)


def _through_pooler(context: Any, mode: str) -> None:
    world = context.world
    if world.pooler_mode == mode:
        return
    url = context.spec.pooler(mode).url_for(world.database_name)
    world.database_url = url
    world.cli.database_url = url
    world.pooler_mode = mode


def _pooled_mode(context: Any) -> str:
    return context.world.pooler_mode or "transaction"


# -- where deploys connect -------------------------------------------------------------------
@given("deploys reach the database through the connection pooler")
def through_the_pooler(context: Any) -> None:
    _through_pooler(context, _pooled_mode(context))


@given("deploys reach the database through a transaction pooler")
def through_a_transaction_pooler(context: Any) -> None:
    _through_pooler(context, "transaction")


@given("deploys reach the database through a transaction pooler, with a lease of {seconds:d} seconds")
def through_a_transaction_pooler_with_lease(context: Any, seconds: int) -> None:
    _through_pooler(context, "transaction")
    context.world.facts["deploy_options"] = ("--lease-ttl", str(seconds), "--lock-wait", "60")


def _options(context: Any) -> tuple[str, ...]:
    return tuple(context.world.facts.get("deploy_options", ()))


# -- deploying -------------------------------------------------------------------------------
@when("two deploys of the release start at the same moment")
def two_deploys(context: Any) -> None:
    world = context.world
    remember_state_before_deploy(context)
    runners = [
        world.cli.start("migrate", "--lock-wait", "60", *_options(context), json_output=True)
        for _ in range(2)
    ]
    world.facts["deploys"] = [world.cli.finish(runner, timeout=120) for runner in runners]


@when("the deploy is killed while migration {version} waits for the shop's transaction")
def killed_while_waiting(context: Any, version: str) -> None:
    world = context.world
    remember_state_before_deploy(context)
    runner = world.cli.start("migrate", *_options(context), json_output=True)
    session = wait_for_migration_in_flight(context, version, runner)
    world.facts["killed_session"] = session
    runner.send_signal(signal.SIGKILL)
    result = finish_subprocess_deploy(context, runner)
    assert result.exit_code == -signal.SIGKILL, f"pgship was not killed: exit {result.exit_code}"
    [lease] = world.query(
        "SELECT holder, expires_at, clock_timestamp() AS killed_at FROM schema_migrations_lease "
        "WHERE name = 'migrate'"
    )
    # PgBouncer closes the dead client's server connection; the server notices within a second
    # (client_connection_check_interval) and rolls back. Until then the transaction could still
    # commit if its lock came free, which the lease allows: it is still the lease's holder.
    wait_until(
        lambda: not world.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (session["pid"],)),
        what="the server to end the killed deploy's session",
    )
    attachments.attach_json("the killed deploy's lease", lease)
    world.facts["dead_lease"] = lease
    world.facts["killed_pid"] = runner.pid


@when("the shop's transaction commits")
def shop_transaction_commits(context: Any) -> None:
    context.world.facts["shop_write"].commit()


@when("the release is deployed again through the pooler")
def deployed_again_through_the_pooler(context: Any) -> None:
    remember_state_before_deploy(context)
    runner = context.world.cli.start("migrate", *_options(context), json_output=True)
    finish_subprocess_deploy(context, runner)


# -- outcomes --------------------------------------------------------------------------------
@then("the deploys say they went through the pooler")
def deploys_say_pooler(context: Any) -> None:
    mode = context.world.pooler_mode
    for result in context.world.facts["deploys"]:
        connection = result.json()["connection"]
        assert connection["mode"] == mode, f"expected a {mode} pooler, got {connection}"
        assert connection["lock"] == ("lease" if mode == "transaction" else "advisory"), connection


@then("the killed deploy's lease lasted no longer than {seconds:d} seconds after it died")
def dead_lease_bounded(context: Any, seconds: int) -> None:
    lease = context.world.facts["dead_lease"]
    assert f"pid {context.world.facts['killed_pid']}" in lease["holder"], lease
    left = (lease["expires_at"] - lease["killed_at"]).total_seconds()
    assert left <= seconds + 0.5, f"the dead deploy's lease still had {left:.1f} s to run"


@then("the next deploy applied nothing before that lease expired")
def nothing_before_expiry(context: Any) -> None:
    expires_at = context.world.facts["dead_lease"]["expires_at"]
    before = {row["version"] for row in context.world.facts["rows_before"]}
    rows = context.world.query("SELECT version::text AS version, applied_at FROM schema_migrations")
    new = [row for row in rows if row["version"] not in before]
    assert new, "the next deploy applied nothing"
    early = [row["version"] for row in new if row["applied_at"] < expires_at]
    assert not early, f"migrations {early} were applied while the killed deploy's lease was still valid"


@then("the deploy is refused with exit code {code:d}, naming the direct URL option")
def refused_naming_direct_url(context: Any, code: int) -> None:
    result = context.world.facts["deploy"]
    assert result.exit_code == code, f"expected exit code {code}, got {result.exit_code}:\n{result.output}"
    assert "--direct-url" in result.output, result.output


@when("the release is deployed with the database's direct URL")
def deployed_with_direct_url(context: Any) -> None:
    remember_state_before_deploy(context)
    result = context.world.cli.run("migrate", "--direct-url", context.world.direct_url, json_output=True)
    context.world.facts["deploy"] = result


@given("the health endpoint of release {number:d} is running through the pooler")
def health_through_pooler(context: Any, number: int) -> None:
    start_health_endpoint(context, number, url=context.world.database_url)


@given("the next release changes the customers table, and adds a table after that")
def next_release_changes_customers(context: Any) -> None:
    workspace = context.world.workspace
    for path in (
        workspace.write(
            "011_add_customer_nickname.sql",
            "CREATE TABLE customer_notes (id int);\nALTER TABLE customers ADD COLUMN nickname text;\n",
        ),
        workspace.write("012_add_order_notes.sql", "CREATE TABLE order_notes (id int);\n"),
    ):
        attachments.attach_sql(path)
