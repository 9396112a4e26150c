"""`pgship diff`: the live database compared with what the migrations build, on a real PostgreSQL.

Each manual change an on-call engineer might make in an emergency is made by hand on a migrated
database, and diff must name it (and nothing else). Replays run in a scratch database on the test
server (--replay-url) to keep the suite fast; one test uses the default embedded replay server.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.conftest import ROOT
from tests.integration.helpers import query, tracking_rows

SAMPLE = ROOT / "docker" / "postgres" / "migrations"

SCHEMA = """\
CREATE TYPE task_state AS ENUM ('open', 'done');

CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    bio           text
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));

CREATE TABLE tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id    bigint NOT NULL REFERENCES users (id),
    title       text NOT NULL,
    state       task_state NOT NULL DEFAULT 'open',
    points      integer NOT NULL DEFAULT 10 CONSTRAINT tasks_points_positive CHECK (points >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_owner_idx ON tasks (owner_id);
"""

LOGIC = """\
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER tasks_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION touch();

CREATE VIEW open_tasks AS SELECT id, owner_id, title FROM tasks WHERE state = 'open';

ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tasks_owner ON tasks USING (owner_id = current_setting('app.user_id')::bigint);
"""

TOUCH_WITH_CLOCK = """\
CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END;
$$"""

# (what was done by hand, SQL, the differences diff must report: kind, name, change, attribute, message)
MANUAL_CHANGES = [
    (
        "column added",
        "ALTER TABLE users ADD COLUMN nickname text",
        [("column", "public.users.nickname", "only_live", None)],
        "column users.nickname exists only in the live database (added by hand?)",
    ),
    (
        "column type changed",
        "ALTER TABLE users ALTER COLUMN bio TYPE varchar(500)",
        [("column", "public.users.bio", "changed", "type")],
        "column users.bio: type is character varying(500) in live, text in the migrations",
    ),
    (
        "nullability changed",
        "ALTER TABLE users ALTER COLUMN bio SET NOT NULL",
        [("column", "public.users.bio", "changed", "not_null")],
        "column users.bio: live is NOT NULL, the migrations allow NULL",
    ),
    (
        "default changed",
        "ALTER TABLE tasks ALTER COLUMN points SET DEFAULT 1",
        [("column", "public.tasks.points", "changed", "default")],
        "column tasks.points: default is 1 in live, 10 in the migrations",
    ),
    (
        "index dropped",
        "DROP INDEX tasks_owner_idx",
        [("index", "public.tasks_owner_idx", "only_migrations", None)],
        "index tasks_owner_idx is missing from the live database (the migrations create it; dropped by "
        "hand?)",
    ),
    (
        "index made non-unique",
        "DROP INDEX users_email_idx; CREATE INDEX users_email_idx ON users (lower(email))",
        [("index", "public.users_email_idx", "changed", "unique")],
        "index users_email_idx: live is not UNIQUE, the migrations make it UNIQUE",
    ),
    (
        "index definition changed",
        "DROP INDEX tasks_owner_idx; CREATE INDEX tasks_owner_idx ON tasks (owner_id, state)",
        [("index", "public.tasks_owner_idx", "changed", "definition")],
        "index tasks_owner_idx: definition differs:",
    ),
    (
        "index left invalid",
        # what a failed CREATE INDEX CONCURRENTLY leaves behind
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'tasks_owner_idx'::regclass",
        [("index", "public.tasks_owner_idx", "changed", "valid")],
        "index tasks_owner_idx: live is INVALID",
    ),
    (
        "constraint dropped",
        "ALTER TABLE tasks DROP CONSTRAINT tasks_points_positive",
        [("constraint", "public.tasks.tasks_points_positive", "only_migrations", None)],
        "check constraint tasks_points_positive on tasks is missing from the live database",
    ),
    (
        "constraint re-added NOT VALID",
        "ALTER TABLE tasks DROP CONSTRAINT tasks_points_positive, "
        "ADD CONSTRAINT tasks_points_positive CHECK (points >= 0) NOT VALID",
        [("constraint", "public.tasks.tasks_points_positive", "changed", "validated")],
        "check constraint tasks_points_positive on tasks: live is NOT VALID",
    ),
    (
        "view changed",
        "CREATE OR REPLACE VIEW open_tasks AS SELECT id, owner_id, title FROM tasks "
        "WHERE state = 'open' AND points > 0",
        [("view", "public.open_tasks", "changed", "definition")],
        "view open_tasks: definition differs (- migrations, + live):",
    ),
    (
        "function body changed",
        TOUCH_WITH_CLOCK,
        [("function", "public.touch()", "changed", "definition")],
        "function touch(): definition differs (- migrations, + live):",
    ),
    (
        "enum value added",
        "ALTER TYPE task_state ADD VALUE 'archived'",
        [("enum", "public.task_state", "changed", "values")],
        "enum task_state: value 'archived' exists only in the live database",
    ),
    (
        "extension added",
        "CREATE EXTENSION hstore",
        [("extension", "hstore", "only_live", None)],
        "extension hstore exists only in the live database (installed by hand?)",
    ),
    (
        "policy added",
        "CREATE POLICY tasks_support ON tasks FOR SELECT USING (true)",
        [("policy", "public.tasks.tasks_support", "only_live", None)],
        "policy tasks_support on tasks exists only in the live database (created by hand?)",
    ),
    (
        "policy changed",
        "ALTER POLICY tasks_owner ON tasks USING (true)",
        [("policy", "public.tasks.tasks_owner", "changed", "using")],
        "policy tasks_owner on tasks: USING expression differs:",
    ),
    (
        "row-level security disabled",
        "ALTER TABLE tasks DISABLE ROW LEVEL SECURITY",
        [("table", "public.tasks", "changed", "row_security")],
        "table tasks: row-level security is off in live, on in the migrations",
    ),
    (
        "trigger dropped",
        "DROP TRIGGER tasks_touch ON tasks",
        [("trigger", "public.tasks.tasks_touch", "only_migrations", None)],
        "trigger tasks_touch on tasks is missing from the live database",
    ),
    (
        "trigger disabled",
        "ALTER TABLE tasks DISABLE TRIGGER tasks_touch",
        [("trigger", "public.tasks.tasks_touch", "changed", "enabled")],
        "trigger tasks_touch on tasks: state is disabled in live, enabled in the migrations",
    ),
    (
        "sequence changed",
        "ALTER TABLE users ALTER COLUMN id SET INCREMENT BY 10",
        [("sequence", "public.users_id_seq", "changed", "increment")],
        "sequence users_id_seq: increment is 10 in live, 1 in the migrations",
    ),
    (
        "table created",
        "CREATE TABLE audit (id bigint PRIMARY KEY, what text NOT NULL)",
        [("table", "public.audit", "only_live", None)],
        "table audit exists only in the live database (created by hand?)",
    ),
]


@pytest.fixture
def app(migrations):
    migrations.write("001_schema.sql", SCHEMA)
    migrations.write("002_logic.sql", LOGIC)
    return migrations


@pytest.fixture
def migrated(cli, database_url, app):
    result = cli("-d", database_url, "-m", str(app), "migrate")
    assert result.code == 0, result.output
    return database_url


def by_hand(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def diff(cli, url, migrations, pg_server, *extra):
    return cli("-d", url, "-m", str(migrations), "diff", "--replay-url", pg_server.admin_url, *extra)


def diff_json(cli, url, migrations, pg_server, *extra):
    result = cli(
        "-d", url, "-m", str(migrations), "--json", "diff", "--replay-url", pg_server.admin_url, *extra
    )
    return result.code, json.loads(result.stdout)


def test_a_database_migrated_by_pgship_has_no_differences(cli, migrated, app, pg_server):
    result = diff(cli, migrated, app, pg_server)
    assert result.code == 0, result.output
    assert "has the schema the migrations build" in result.stdout
    code, document = diff_json(cli, migrated, app, pg_server)
    assert code == 0 and document["equal"] is True and document["differences"] == []
    assert document["objects_compared"]["live"] == document["objects_compared"]["migrations"]
    assert document["objects_compared"]["live"]["policy"] == 1


def test_the_sample_migrations_diff_clean_against_the_default_embedded_replay(cli, database_url):
    assert cli("-d", database_url, "-m", str(SAMPLE), "migrate").code == 0
    result = cli("-d", database_url, "-m", str(SAMPLE), "diff")
    assert result.code == 0, result.output
    assert "has the schema the migrations build" in result.stdout


def test_diff_replays_on_the_live_servers_major_with_its_contrib_extensions(cli, migrations):
    """A PostgreSQL 15 production with pgcrypto, citext and a trigram index: the replay runs on 15."""
    from pgship.testing import EmbeddedPostgres

    migrations.write(
        "001_extensions.sql",
        "CREATE EXTENSION pgcrypto;\nCREATE EXTENSION citext;\nCREATE EXTENSION pg_trgm;\n",
    )
    migrations.write(
        "002_users.sql",
        "CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email citext UNIQUE,\n"
        "    name text NOT NULL);\nCREATE INDEX users_name_trgm ON users USING gin (name gin_trgm_ops);\n",
    )
    with EmbeddedPostgres(version=15) as live:
        assert cli("-d", live.admin_url, "-m", str(migrations), "migrate").code == 0
        result = cli("-d", live.admin_url, "-m", str(migrations), "diff")
        assert result.code == 0, result.output
        assert "embedded PostgreSQL 15.19, the major of postgres@127.0.0.1:" in result.stdout
        assert "the replay ran on PostgreSQL" not in result.output
        with psycopg.connect(live.admin_url, autocommit=True) as conn:
            conn.execute("DROP INDEX users_name_trgm")
        changed = cli("-d", live.admin_url, "-m", str(migrations), "diff")
        assert changed.code == 5 and "users_name_trgm" in changed.output, changed.output


def test_the_health_schema_check_replays_on_the_live_servers_major(migrations):
    from pgship.history import TrackingTable
    from pgship.migrations import discover
    from pgship.schema.check import SchemaCheck
    from pgship.testing import EmbeddedPostgres

    migrations.write("001_t.sql", "CREATE EXTENSION citext;\nCREATE TABLE t (email citext NOT NULL);\n")
    with EmbeddedPostgres(version=17) as live:
        with psycopg.connect(live.admin_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citext; CREATE TABLE t (email citext NOT NULL)")
        check = SchemaCheck(
            live.admin_url, discover(migrations.path), TrackingTable.parse("schema_migrations")
        )
        verdict = check.run()
        assert verdict.status == "pass", verdict
        assert check.replay is not None and check.replay.server_version.startswith("17.")


def test_a_replay_on_another_major_version_still_matches_but_warns(cli, database_url):
    """PostgreSQL 18 catalogs NOT NULL as constraints and prints some definitions differently."""
    assert cli("-d", database_url, "-m", str(SAMPLE), "migrate").code == 0
    result = cli("-d", database_url, "-m", str(SAMPLE), "diff", "--replay-pg-version", "18")
    assert result.code == 0, result.output
    assert "the live database runs PostgreSQL 16, the replay ran on PostgreSQL 18" in result.stderr


RICH_SCHEMA = """\
CREATE SCHEMA billing;
CREATE DOMAIN billing.money_cents AS bigint NOT NULL DEFAULT 0
    CONSTRAINT money_cents_positive CHECK (VALUE >= 0);
CREATE TYPE billing.address AS (street text, city text);
CREATE SEQUENCE billing.invoice_numbers START 1000 INCREMENT 5 CACHE 10;
CREATE TABLE billing.customers (
    id        bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name      text COLLATE "C" NOT NULL,
    address   billing.address,
    name_len  integer GENERATED ALWAYS AS (length(name)) STORED
);
CREATE TABLE billing.invoices (
    number       bigint NOT NULL DEFAULT nextval('billing.invoice_numbers'),
    customer_id  bigint NOT NULL REFERENCES billing.customers (id) DEFERRABLE INITIALLY DEFERRED,
    issued_on    date NOT NULL,
    total        billing.money_cents,
    PRIMARY KEY (number, issued_on)
) PARTITION BY RANGE (issued_on);
CREATE TABLE billing.invoices_2025 PARTITION OF billing.invoices
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE INDEX invoices_customer_idx ON billing.invoices (customer_id);
CREATE TABLE billing.bookings (room int, during tstzrange, EXCLUDE USING gist (during WITH &&));
CREATE UNLOGGED TABLE billing.scratch (id int) WITH (fillfactor = 70);
ALTER TABLE billing.customers ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY own ON billing.customers AS RESTRICTIVE FOR UPDATE TO PUBLIC
    USING (true) WITH CHECK (name <> '');
CREATE MATERIALIZED VIEW billing.totals AS
    SELECT customer_id, sum(total) AS total FROM billing.invoices GROUP BY 1;
CREATE UNIQUE INDEX totals_customer_idx ON billing.totals (customer_id);
CREATE VIEW billing.customer_names WITH (security_barrier) AS SELECT id, name FROM billing.customers;
CREATE FUNCTION billing.rename_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE billing.customers SET name = NEW.name WHERE id = NEW.id;
    RETURN NEW;
END;
$$;
CREATE TRIGGER customer_names_update INSTEAD OF UPDATE ON billing.customer_names
    FOR EACH ROW EXECUTE FUNCTION billing.rename_customer();
CREATE PROCEDURE billing.close_year(year int) LANGUAGE sql AS $$ SELECT year $$;
CREATE AGGREGATE billing.total_of(bigint) (SFUNC = int8pl, STYPE = bigint, INITCOND = '0');
"""


def test_every_kind_of_object_survives_the_round_trip_and_a_change_in_each_is_seen(
    cli, database_url, migrations, pg_server
):
    migrations.write("001_billing.sql", RICH_SCHEMA)
    assert cli("-d", database_url, "-m", str(migrations), "migrate").code == 0
    code, document = diff_json(cli, database_url, migrations, pg_server)
    assert code == 0, document["differences"]
    compared = document["objects_compared"]["live"]
    assert {"domain", "composite type", "materialized view", "policy", "trigger", "function"} <= set(compared)
    by_hand(
        database_url,
        "ALTER DOMAIN billing.money_cents SET DEFAULT 1;"
        "ALTER TABLE billing.scratch SET LOGGED;"
        "ALTER TABLE billing.customers NO FORCE ROW LEVEL SECURITY;"
        "CREATE TABLE billing.invoices_2026 PARTITION OF billing.invoices "
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    )
    code, document = diff_json(cli, database_url, migrations, pg_server)
    assert code == 5
    assert [d["message"] for d in document["differences"]] == [
        "domain billing.money_cents: default is 1 in live, 0 in the migrations",
        "table billing.customers: row-level security is on in live, "
        "on, forced for the owner in the migrations",
        "table billing.invoices_2026 exists only in the live database (created by hand?)",
        "table billing.scratch: persistence is logged in live, unlogged in the migrations",
    ]


@pytest.mark.parametrize(
    ("change", "sql", "expected", "message"), MANUAL_CHANGES, ids=[c[0] for c in MANUAL_CHANGES]
)
def test_each_manual_change_is_reported_and_nothing_else(
    cli, migrated, app, pg_server, change, sql, expected, message
):
    by_hand(migrated, sql)
    code, document = diff_json(cli, migrated, app, pg_server)
    assert code == 5
    found = [(d["kind"], d["name"], d["change"], d["attribute"]) for d in document["differences"]]
    assert found == expected
    assert document["differences"][0]["message"].startswith(message)
    text = diff(cli, migrated, app, pg_server)
    assert text.code == 5 and message in text.stdout


def test_definitions_that_differ_are_shown_as_a_diff(cli, migrated, app, pg_server):
    by_hand(migrated, TOUCH_WITH_CLOCK)
    result = diff(cli, migrated, app, pg_server)
    assert "-    NEW.updated_at := now();" in result.stdout
    assert "+    NEW.updated_at := clock_timestamp();" in result.stdout


def test_after_a_fix_migration_diff_is_clean(cli, migrated, app, pg_server):
    """Keep the column added in an emergency, restore the index dropped by hand: one migration says so."""
    by_hand(migrated, "ALTER TABLE users ADD COLUMN nickname text; DROP INDEX tasks_owner_idx")
    assert diff(cli, migrated, app, pg_server).code == 5
    app.write(
        "003_adopt_hand_changes.sql",
        "-- 003: nickname was added by hand during incident 42; keep it.\n"
        "-- The owner index was dropped by hand: restore it.\n"
        "ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text;\n"
        "CREATE INDEX IF NOT EXISTS tasks_owner_idx ON tasks (owner_id);\n",
    )
    assert cli("-d", migrated, "-m", str(app), "migrate").code == 0
    result = diff(cli, migrated, app, pg_server)
    assert result.code == 0, result.output


def test_the_tracking_table_is_ignored_even_as_an_upgraded_legacy_table(cli, database_url, app, pg_server):
    by_hand(
        database_url,
        "CREATE TABLE schema_migrations (version integer, name text, applied_at timestamp DEFAULT now());"
        "CREATE INDEX schema_migrations_applied_idx ON schema_migrations (applied_at)",
    )
    assert cli("-d", database_url, "-m", str(app), "migrate").code == 0
    result = diff(cli, database_url, app, pg_server)
    assert result.code == 0, result.output


def test_pending_migrations_are_explained_and_target_compares_with_what_is_applied(
    cli, database_url, app, pg_server
):
    assert cli("-d", database_url, "-m", str(app), "migrate", "--target", "001").code == 0
    full = diff(cli, database_url, app, pg_server)
    assert full.code == 5
    assert "1 pending migration(s) (002)" in full.stderr and "pgship diff --target 001" in full.stderr
    assert "function touch() is missing from the live database" in full.stdout
    assert diff(cli, database_url, app, pg_server, "--target", "001").code == 0


def test_diff_changes_nothing_in_either_database(cli, migrated, app, pg_server):
    by_hand(migrated, "ALTER TABLE users ADD COLUMN nickname text")
    rows_before = tracking_rows(migrated)
    assert diff(cli, migrated, app, pg_server).code == 5
    assert tracking_rows(migrated) == rows_before
    assert query(migrated, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'") == [
        (5,)
    ]
    leftovers = query(
        pg_server.admin_url, "SELECT datname FROM pg_database WHERE starts_with(datname, 'pgship_replay')"
    )
    assert leftovers == []


def test_a_migration_set_that_does_not_replay_fails_diff_naming_the_file(cli, migrated, app, pg_server):
    app.write("003_broken.sql", "ALTER TABLE users RENAME COLUMN name TO full_name;\n")
    result = diff(cli, migrated, app, pg_server)
    assert result.code == 1
    assert "replay from an empty database failed at 003_broken.sql:1" in result.stderr


def test_diff_needs_a_live_database(cli, app, monkeypatch):
    for variable in ("DATABASE_URL", "PGHOST", "PGDATABASE", "PGSERVICE"):
        monkeypatch.delenv(variable, raising=False)
    result = cli("-m", str(app), "diff")
    assert result.code == 2 and "DATABASE_URL" in result.stderr


def test_no_password_in_the_diff_report(cli, migrated, app, pg_server):
    by_hand(migrated, "ALTER TABLE users ADD COLUMN nickname text")
    for extra in ((), ("--json",)):
        result = cli("-d", migrated, "-m", str(app), *extra, "diff", "--replay-url", pg_server.admin_url)
        assert result.code == 5
        assert pg_server.password not in result.output
