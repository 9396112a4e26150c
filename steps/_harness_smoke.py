"""THROWAWAY: steps of features/harness_smoke.feature, proving the harness before the CLI lands."""

from typing import Any

from behave import when

from pgship.testing.spec import attachments


@when('a table "{name}" is created')
def create_table(context: Any, name: str) -> None:
    context.world.query(f"CREATE TABLE {name} (id int)")
    attachments.attach_text("statement", f"CREATE TABLE {name} (id int) on {context.world.database_url}")
