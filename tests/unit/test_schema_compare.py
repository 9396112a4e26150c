"""The schema comparison is pure: snapshots built by hand, no database."""

from __future__ import annotations

import json

from pgship.schema import SchemaObject, Snapshot, compare
from pgship.schema.compare import version_mismatch


def snapshot(*objects: SchemaObject, version: str = "16.4") -> Snapshot:
    result = Snapshot(server_version=version)
    for obj in objects:
        result.add(obj)
    return result


def schema(name: str = "public") -> SchemaObject:
    return SchemaObject("schema", name, name)


def table(name: str, **attributes: object) -> SchemaObject:
    return SchemaObject(
        "table", f"public.{name}", name, {"row_security": "off", **attributes}, ("schema", "public")
    )


def column(table_name: str, name: str, **attributes: object) -> SchemaObject:
    values = {"type": "text", "not_null": False, "default": None, **attributes}
    return SchemaObject(
        "column", f"public.{table_name}.{name}", name, values, ("table", f"public.{table_name}")
    )


def index(name: str, table_name: str = "users", **attributes: object) -> SchemaObject:
    values = {
        "table": f"public.{table_name}",
        "unique": False,
        "definition": f"CREATE INDEX {name} ON public.{table_name} USING btree (email)",
        "valid": True,
        **attributes,
    }
    return SchemaObject("index", f"public.{name}", name, values, ("table", f"public.{table_name}"))


def enum(name: str, values: list[str]) -> SchemaObject:
    return SchemaObject("enum", f"public.{name}", name, {"values": values}, ("schema", "public"))


def messages(live: Snapshot, migrations: Snapshot) -> list[str]:
    return [d.message for d in compare(live, migrations).differences]


BASE = (
    schema(),
    table("users"),
    column("users", "id", type="bigint", not_null=True),
    column("users", "email"),
)


def test_identical_snapshots_are_equal():
    result = compare(snapshot(*BASE), snapshot(*BASE))
    assert result.equal and result.differences == []
    assert result.to_dict()["summary"] == {"only_live": 0, "only_migrations": 0, "changed": 0}


def test_a_column_added_by_hand_reads_as_one_actionable_line():
    live = snapshot(*BASE, column("users", "nickname"))
    result = compare(live, snapshot(*BASE))
    assert [d.message for d in result.differences] == [
        "column users.nickname exists only in the live database (added by hand?)"
    ]
    difference = result.differences[0]
    assert (difference.kind, difference.name, difference.change) == (
        "column",
        "public.users.nickname",
        "only_live",
    )


def test_an_object_only_the_migrations_create_is_reported_missing_from_live():
    assert messages(snapshot(*BASE), snapshot(*BASE, index("users_email_idx"))) == [
        "index users_email_idx is missing from the live database (the migrations create it; dropped by hand?)"
    ]


def test_a_whole_table_made_by_hand_is_one_line_not_one_per_column():
    extra = (table("audit"), column("audit", "id"), column("audit", "what"), index("audit_idx", "audit"))
    assert messages(snapshot(*BASE, *extra), snapshot(*BASE)) == [
        "table audit exists only in the live database (created by hand?)"
    ]


def test_nullability_default_and_type_changes_say_which_side_has_what():
    live = snapshot(
        schema(),
        table("users"),
        column("users", "email", type="character varying(100)", not_null=True, default="'x'::text"),
    )
    migrations = snapshot(schema(), table("users"), column("users", "email"))
    assert messages(live, migrations) == [
        "column users.email: type is character varying(100) in live, text in the migrations",
        "column users.email: live is NOT NULL, the migrations allow NULL",
        "column users.email: live has DEFAULT 'x'::text, the migrations set none",
    ]
    assert messages(migrations, live) == [
        "column users.email: type is text in live, character varying(100) in the migrations",
        "column users.email: live allows NULL, the migrations make it NOT NULL",
        "column users.email: live has no default, the migrations set DEFAULT 'x'::text",
    ]


def test_an_index_made_non_unique_by_hand():
    live = snapshot(*BASE, index("users_email_idx", unique=False))
    migrations = snapshot(*BASE, index("users_email_idx", unique=True))
    assert messages(live, migrations) == [
        "index users_email_idx: live is not UNIQUE, the migrations make it UNIQUE"
    ]


def test_an_invalid_index_says_how_to_rebuild_it():
    (message,) = messages(
        snapshot(*BASE, index("users_email_idx", valid=False)), snapshot(*BASE, index("users_email_idx"))
    )
    assert (
        message.startswith("index users_email_idx: live is INVALID")
        and "REINDEX INDEX CONCURRENTLY" in message
    )


def test_a_different_index_definition_shows_both_definitions():
    live = index(
        "users_email_idx", definition="CREATE INDEX users_email_idx ON public.users USING hash (email)"
    )
    result = compare(snapshot(*BASE, live), snapshot(*BASE, index("users_email_idx")))
    (difference,) = result.differences
    assert difference.message == "index users_email_idx: definition differs:"
    assert difference.detail == (
        "live:       CREATE INDEX users_email_idx ON public.users USING hash (email)",
        "migrations: CREATE INDEX users_email_idx ON public.users USING btree (email)",
    )


def test_long_definitions_are_shown_as_a_diff_from_the_migrations_to_live():
    body = "CREATE FUNCTION public.touch()\n RETURNS trigger\nAS $f$\nBEGIN\n  NEW.at := {};\nEND\n$f$\n"
    function = {"function_kind": "function", "returns": "trigger"}

    def touch(value: str) -> SchemaObject:
        return SchemaObject(
            "function", "public.touch()", "touch()", {**function, "definition": body.format(value)}
        )

    (difference,) = compare(snapshot(touch("clock_timestamp()")), snapshot(touch("now()"))).differences
    assert difference.message == "function touch(): definition differs (- migrations, + live):"
    assert (
        "-  NEW.at := now();" in difference.detail and "+  NEW.at := clock_timestamp();" in difference.detail
    )


def test_whitespace_in_definitions_is_layout_not_a_difference():
    view = {"definition": " SELECT id,\n    email\n   FROM public.users;", "options": []}
    reflowed = {"definition": "SELECT id, email FROM public.users;", "options": []}
    live = snapshot(SchemaObject("view", "public.v", "v", reflowed))
    assert compare(live, snapshot(SchemaObject("view", "public.v", "v", view))).equal


def test_enum_values_added_or_missing_are_named_one_by_one():
    live = snapshot(enum("mood", ["ok", "meh", "great"]))
    migrations = snapshot(enum("mood", ["ok", "great", "bad"]))
    assert messages(live, migrations) == [
        "enum mood: value 'meh' exists only in the live database "
        "(added by hand with ALTER TYPE ... ADD VALUE?)",
        "enum mood: value 'bad' is missing from the live database (the migrations add it)",
    ]


def test_enum_values_in_another_order_are_a_difference():
    (message,) = messages(snapshot(enum("mood", ["b", "a"])), snapshot(enum("mood", ["a", "b"])))
    assert message == "enum mood: values are in another order: live (b, a), migrations (a, b)"


def test_constraints_triggers_and_policies_are_named_with_their_table():
    def check(validated: bool) -> SchemaObject:
        return SchemaObject(
            "constraint",
            "public.users.users_email_check",
            "users_email_check",
            {"type": "check", "definition": "CHECK ((email <> ''::text))", "validated": validated},
            ("table", "public.users"),
        )

    policy = SchemaObject(
        "policy", "public.users.own_rows", "own_rows", {"command": "ALL"}, ("table", "public.users")
    )
    live = snapshot(*BASE, check(False), policy)
    migrations = snapshot(*BASE, check(True))
    assert messages(live, migrations) == [
        "check constraint users_email_check on users: live is NOT VALID (existing rows were never checked), "
        "the migrations validate it",
        "policy own_rows on users exists only in the live database (created by hand?)",
    ]


def test_other_schemas_stay_explicit_in_messages():
    live = snapshot(
        schema("billing"), SchemaObject("table", "billing.invoices", "invoices", {}, ("schema", "billing"))
    )
    assert messages(live, snapshot()) == [
        "schema billing exists only in the live database (created by hand?)"
    ]
    live.add(SchemaObject("table", "billing.refunds", "refunds", {}, ("schema", "billing")))
    assert messages(live, snapshot(schema("billing"), live.get("table", "billing.invoices"))) == [
        "table billing.refunds exists only in the live database (created by hand?)"
    ]


def test_differences_come_in_report_order_containers_first():
    live = snapshot(*BASE, column("users", "nickname"), enum("mood", ["ok"]), table("audit"))
    kinds = [d.kind for d in compare(live, snapshot(*BASE)).differences]
    assert kinds == ["enum", "table", "column"]


def test_different_major_versions_warn_that_differences_may_be_form_only():
    result = compare(snapshot(*BASE, version="15.8"), snapshot(*BASE, version="16.4 (Debian)"))
    assert result.equal
    assert result.warnings and "PostgreSQL 15" in result.warnings[0] and "--replay-url" in result.warnings[0]
    assert version_mismatch("16.1", "16.4") is None
    assert version_mismatch("", "16.4") is None


def test_the_json_document_is_serialisable_and_names_no_server():
    live = snapshot(*BASE, column("users", "nickname"))
    document = compare(live, snapshot(*BASE)).to_dict()
    text = json.dumps(document)
    assert document["equal"] is False and document["summary"]["only_live"] == 1
    assert document["differences"][0]["live"] == {"type": "text", "not_null": False, "default": None}
    assert "127.0.0.1" not in text and "postgresql://" not in text


def test_a_snapshot_survives_a_round_trip_through_json():
    original = snapshot(*BASE, index("users_email_idx"), enum("mood", ["a"]))
    restored = Snapshot.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored.objects == original.objects and restored.server_version == original.server_version
    assert compare(restored, original).equal
