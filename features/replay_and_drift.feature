@allure.label.epic:Troubleshooting
Feature: Replaying migrations and finding hand-made changes
  As a team that builds new environments from the migration files and runs production from them
  I want to know that the files still rebuild the schema from nothing, and where production has drifted from them
  So that a new environment never breaks on a migration, and a change made by hand in production is found before it bites

  `pgship verify --replay` applies every migration to an empty throwaway
  database; `pgship diff` also compares the result with the live schema,
  object by object. Here the throwaway database is a scratch database on the
  live database's own server (PGSHIP_REPLAY_URL), as CI does with a service
  container of the production image.

  Background:
    Given pgship replays migrations in a scratch database on the database's own server

  @critical @allure.label.story:Replay @allure.link.docs:replaying-the-migrations
  Scenario: A migration set that no longer replays from an empty database is caught before the deploy
    Two branches each renamed the same column. Each file is valid on its own;
    together they cannot both run.

    Given a database at release 5
    And the next release adds two migrations that rename the same column
    When I run `pgship verify --replay`
    Then the command exits with code 1
    And the output says "failed at 012_rename_customer_email_again.sql:2: column "email" does not exist"

  @critical @allure.label.story:Replay @allure.link.docs:replaying-the-migrations
  Scenario: Migrations that need PostgreSQL's contrib extensions replay on pgship's embedded server
    Most applications start with CREATE EXTENSION: logins compared without
    case (citext), random tokens (pgcrypto), a trigram index to search
    names (pg_trgm). The embedded server pgship replays on has PostgreSQL's
    contrib extensions, and runs the live database's major version.

    Given a database at release 5
    And the next release adds migrations that need the citext, pgcrypto and pg_trgm extensions
    And pgship replays migrations on its embedded PostgreSQL
    When I run `pgship verify --replay`
    Then the command exits with code 0
    And the output says "Replayed 7 migrations on an empty database (embedded PostgreSQL"
    And the output says "the major of"

  @critical @allure.label.story:Drift @allure.link.docs:hand-made-changes-in-production
  Scenario: A column added by hand in production is reported by `pgship diff`
    Given a database at release 5
    And a column nickname was added by hand to the customers table
    When I run `pgship diff`
    Then the command exits with code 5
    And the output says "column customers.nickname exists only in the live database"

  @critical @allure.label.story:Drift @allure.link.docs:hand-made-changes-in-production
  Scenario: An index dropped by hand in production is reported by `pgship diff`
    Given a database at release 5
    And the index orders_customer_placed_idx was dropped by hand
    When I run `pgship diff`
    Then the command exits with code 5
    And the output says "index orders_customer_placed_idx is missing from the live database"

  @normal @allure.label.story:Drift @allure.link.docs:hand-made-changes-in-production
  Scenario: Once a migration makes the hand-made change, `pgship diff` is clean
    Given a database at release 5
    And a column nickname was added by hand to the customers table
    And the next release adds a migration that adds the nickname column to customers
    When the release is deployed
    Then the deploy succeeds
    When I run `pgship diff`
    Then the command exits with code 0
    And the output says "has the schema the migrations build"
