"""Migration files the scenarios add to a release of the sample shop, by the phrase a scenario uses.

The sample app's releases (``workspace.SAMPLE_APP``) are the happy path. The
scenarios also need the files people actually write: one made for the old
shell runner, a concurrent index, a compensating migration, unsafe ones the
lint should flag, and broken ones that must be refused. Each is named here by
the plain-language phrase the feature files use, so a Gherkin step reads
"the next release adds a migration that drops the reporting view again" and
the report shows the SQL it stands for. The phrases double as the regular
expressions of custom step types, so ``behave --dry-run`` rejects a phrase
that is not in this catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pgship.testing.spec.workspace import Workspace


@dataclass(frozen=True)
class ScenarioFile:
    """One file to put into the release's migrations folder (``text`` may be raw bytes)."""

    filename: str
    text: str | bytes

    @property
    def version(self) -> str:
        return self.filename.partition("_")[0]

    def write(self, folder: Path) -> Path:
        path = folder / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.text, bytes):
            path.write_bytes(self.text)
        else:
            path.write_text(self.text, encoding="utf-8")
        return path


@dataclass(frozen=True)
class ExtraMigrations:
    """Valid migration files a release adds, and how to see that they were applied."""

    files: tuple[ScenarioFile, ...]
    #: a query returning one row with one column ``proof`` ...
    proof_sql: str = ""
    #: ... whose value shows the migration ran once, completely
    proof: object = None
    #: objects (tables, views, indexes) the files create
    creates: tuple[str, ...] = ()

    def add_to(self, workspace: Workspace) -> list[Path]:
        return [item.write(workspace.migrations_dir) for item in self.files]


@dataclass(frozen=True)
class BadInput:
    """Something wrong with a release's files that pgship must refuse before touching the database."""

    files: tuple[ScenarioFile, ...] = ()
    remove_directory: bool = False

    def add_to(self, workspace: Workspace) -> list[Path]:
        if self.remove_directory:
            for path in workspace.migrations_dir.iterdir():
                path.unlink()
            workspace.migrations_dir.rmdir()
            return []
        return [item.write(workspace.migrations_dir) for item in self.files]


ORDER_STATUS = ScenarioFile(
    "011_add_order_status.sql",
    "-- Orders get a status, from a list of known statuses.\n"
    "CREATE TABLE order_statuses (code text PRIMARY KEY);\n"
    "INSERT INTO order_statuses (code) VALUES ('placed'), ('paid'), ('shipped');\n"
    "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'placed' REFERENCES order_statuses (code);\n",
)

EXTRA_MIGRATIONS: dict[str, ExtraMigrations] = {
    "a migration written for the old shell runner, which wraps itself in BEGIN and COMMIT "
    "and inserts its own tracking row": ExtraMigrations(
        (
            ScenarioFile(
                "011_add_order_statuses.sql",
                "-- Written for the old runner: it wrapped each file in a transaction itself\n"
                "-- and recorded it with an INSERT, as its template said.\n"
                "BEGIN;\n"
                "CREATE TABLE order_statuses (code text PRIMARY KEY);\n"
                "INSERT INTO order_statuses (code) VALUES ('placed'), ('paid'), ('shipped');\n"
                "INSERT INTO schema_migrations (version, name) VALUES ('011', 'add_order_statuses')\n"
                "    ON CONFLICT (version) DO NOTHING;\n"
                "COMMIT;\n",
            ),
        ),
        proof_sql="SELECT count(*) AS proof FROM order_statuses",
        proof=3,
        creates=("order_statuses",),
    ),
    "a migration marked no-transaction that builds an index concurrently": ExtraMigrations(
        (
            ScenarioFile(
                "011_index_customers_by_name.sql",
                "-- pgship:no-transaction\n"
                "-- Customers are looked up by name; build the index without blocking writes.\n"
                "CREATE INDEX CONCURRENTLY customers_name_idx ON customers (name);\n",
            ),
        ),
        proof_sql="SELECT indisvalid AS proof FROM pg_index "
        "WHERE indexrelid = to_regclass('customers_name_idx')",
        proof=True,
        creates=("customers_name_idx",),
    ),
    "a migration that adds a status to orders": ExtraMigrations(
        (ORDER_STATUS,),
        proof_sql="SELECT count(*) AS proof FROM information_schema.columns "
        "WHERE table_name = 'orders' AND column_name = 'status'",
        proof=1,
        creates=("order_statuses",),
    ),
    "a migration that drops the reporting view again": ExtraMigrations(
        (
            ScenarioFile(
                "011_drop_customer_totals_view.sql",
                "-- Reporting moved to the data warehouse: undo 010 with a new migration\n"
                "-- (pgship has no down migrations; 010 stays in the history).\n"
                "DROP VIEW customer_totals;\n",
            ),
        ),
        proof_sql="SELECT to_regclass('customer_totals') IS NULL AS proof",
        proof=True,
    ),
    "a migration that adds the nickname column to customers": ExtraMigrations(
        (
            ScenarioFile(
                "011_add_customer_nickname.sql",
                "-- Keep the nickname column added by hand during the incident.\n"
                "-- IF NOT EXISTS: production already has it, new environments do not.\n"
                "ALTER TABLE customers ADD COLUMN IF NOT EXISTS nickname text;\n",
            ),
        ),
        proof_sql="SELECT count(*) AS proof FROM information_schema.columns "
        "WHERE table_name = 'customers' AND column_name = 'nickname'",
        proof=1,
    ),
    "migrations that need the citext, pgcrypto and pg_trgm extensions": ExtraMigrations(
        (
            ScenarioFile(
                "011_enable_extensions.sql",
                "-- Extensions from PostgreSQL's contrib, as most applications' first migration has.\n"
                "CREATE EXTENSION IF NOT EXISTS citext;\n"
                "CREATE EXTENSION IF NOT EXISTS pgcrypto;\n"
                "CREATE EXTENSION IF NOT EXISTS pg_trgm;\n",
            ),
            ScenarioFile(
                "012_customer_search.sql",
                "-- Logins compared without case, API tokens, a trigram index to search names.\n"
                "ALTER TABLE customers ADD COLUMN login citext UNIQUE;\n"
                "ALTER TABLE customers ADD COLUMN api_token text NOT NULL\n"
                "    DEFAULT encode(gen_random_bytes(16), 'hex');\n"
                "CREATE INDEX customers_name_trgm_idx ON customers USING gin (name gin_trgm_ops);\n",
            ),
        ),
        proof_sql="SELECT count(*) AS proof FROM pg_extension "
        "WHERE extname IN ('citext', 'pgcrypto', 'pg_trgm')",
        proof=3,
        creates=("customers_name_trgm_idx",),
    ),
    "two migrations that rename the same column": ExtraMigrations(
        (
            ScenarioFile(
                "011_rename_customer_email.sql",
                "ALTER TABLE customers RENAME COLUMN email TO email_address;\n",
            ),
            ScenarioFile(
                "012_rename_customer_email_again.sql",
                "-- Written on a branch that did not have 011 yet.\n"
                "ALTER TABLE customers RENAME COLUMN email TO contact_email;\n",
            ),
        ),
    ),
    "a no-transaction migration that adds a processed_concurrently flag to orders": ExtraMigrations(
        (
            ScenarioFile(
                "011_flag_orders_processed_concurrently.sql",
                "-- pgship:no-transaction\n"
                "-- Orders handled by the concurrent worker get a flag (a name, not CONCURRENTLY).\n"
                "ALTER TABLE orders ADD COLUMN processed_concurrently boolean NOT NULL DEFAULT false;\n",
            ),
        ),
    ),
    "a migration that builds an index on orders the plain way": ExtraMigrations(
        (
            ScenarioFile(
                "011_index_orders_by_total.sql",
                "CREATE INDEX orders_total_idx ON orders (total_cents);\n",
            ),
        ),
    ),
    "a migration that adds a NOT NULL column without a default to customers": ExtraMigrations(
        (
            ScenarioFile(
                "011_add_customer_country.sql",
                "-- Every customer needs a country.\n"
                "ALTER TABLE customers ADD COLUMN country text NOT NULL;\n",
            ),
        ),
    ),
}

_NOTES = "ALTER TABLE orders ADD COLUMN notes text;\n"

BAD_INPUTS: dict[str, BadInput] = {
    "two migrations with version 003": BadInput(
        (ScenarioFile("003_orders_again.sql", "CREATE TABLE order_notes (id int);\n"),)
    ),
    "a migration numbered 3 beside 003": BadInput(
        (ScenarioFile("3_orders_again.sql", "CREATE TABLE order_notes (id int);\n"),)
    ),
    "a file named add_order_notes.sql": BadInput((ScenarioFile("add_order_notes.sql", _NOTES),)),
    "an empty migration file": BadInput((ScenarioFile("011_add_order_notes.sql", ""),)),
    "a migration saved as Latin-1 instead of UTF-8": BadInput(
        (
            ScenarioFile(
                "011_add_order_notes.sql",
                ("-- Notes such as 'livré au café'\n" + _NOTES).encode("latin-1"),
            ),
        )
    ),
    "a migration with a psql meta-command": BadInput(
        (ScenarioFile("011_add_order_notes.sql", _NOTES + "\\i 012_more_notes.sql\n"),)
    ),
    "a migration with a COMMIT in the middle": BadInput(
        (
            ScenarioFile(
                "011_add_order_notes.sql",
                _NOTES + "COMMIT;\nCREATE INDEX orders_notes_idx ON orders (notes);\n",
            ),
        )
    ),
    "a migration that builds an index concurrently without the no-transaction marker": BadInput(
        (
            ScenarioFile(
                "011_index_orders_by_total.sql",
                "CREATE INDEX CONCURRENTLY orders_total_idx ON orders (total_cents);\n",
            ),
        )
    ),
    "no migrations directory at all": BadInput(remove_directory=True),
    "a migration numbered with Arabic-Indic digits": BadInput(
        (ScenarioFile("\u0660\u0661\u0661_add_order_notes.sql", _NOTES),)
    ),
    "a migration with the no-transaction marker below its first line": BadInput(
        (
            ScenarioFile(
                "011_index_orders_by_total.sql",
                "-- Orders are listed by total; build the index without blocking writes.\n"
                "-- pgship:no-transaction\n"
                "CREATE INDEX CONCURRENTLY orders_total_idx ON orders (total_cents);\n",
            ),
        )
    ),
    "a no-transaction migration that locks a table": BadInput(
        (
            ScenarioFile(
                "011_index_orders_by_total.sql",
                "-- pgship:no-transaction\n"
                "CREATE INDEX CONCURRENTLY orders_total_idx ON orders (total_cents);\n"
                "LOCK TABLE orders IN SHARE MODE;\n",
            ),
        )
    ),
}


@dataclass(frozen=True)
class DownScripts:
    """A ``rollback/`` folder as teams keep it for hand-run down scripts, and what they would drop."""

    files: tuple[ScenarioFile, ...] = field(default_factory=tuple)
    would_drop: tuple[str, ...] = ()

    def add_to(self, workspace: Workspace) -> list[Path]:
        return [item.write(workspace.migrations_dir) for item in self.files]


DOWN_SCRIPTS = DownScripts(
    (
        ScenarioFile(
            "rollback/005_index_orders_by_customer.down.sql", "DROP INDEX orders_customer_placed_idx;\n"
        ),
        ScenarioFile("rollback/003_create_orders.down.sql", "DROP TABLE orders;\n"),
    ),
    would_drop=("orders_customer_placed_idx", "orders"),
)


def phrase_pattern(phrases: dict[str, object]) -> str:
    """A regular expression matching exactly the catalogue's phrases (for behave's custom step types)."""
    return "|".join(re.escape(phrase) for phrase in sorted(phrases, key=len, reverse=True))
