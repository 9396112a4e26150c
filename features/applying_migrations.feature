@allure.label.epic:Safe_schema_changes
Feature: Applying migrations
  As a developer shipping a schema change with my release
  I want pgship to apply each new migration file exactly once, in version order, each in its own transaction
  So that every environment ends up with the same schema and a failed file never leaves it half-changed

  The examples use a small shop application. Each release adds migration files
  to the one before: release 2 holds migrations 001 and 002, release 5 adds
  003, 005 and 010 (version numbers may skip). "The next release" adds a file
  numbered 011 to the migrations already shipped.

  @critical @allure.label.story:Version_order @allure.link.docs:applying-migrations
  Scenario: Pending migrations are applied in version order, even with gaps in the numbering
    Given a fresh database
    When release 5 is deployed
    Then the deploy succeeds
    And migrations 001, 002, 003, 005 and 010 are applied, in that order
    And the database is at release 5

  @normal @allure.label.story:Tracking_table @allure.link.docs:the-tracking-table
  Scenario: Every applied migration is recorded with its name, checksum, duration and who applied it
    Given a fresh database
    When release 3 is deployed
    Then the tracking table has one row for each of migrations 001, 002 and 003
    And each row records the migration's name, the checksum of its file, how long it took and the database user who applied it

  @blocker @allure.label.story:Transactions @allure.link.docs:applying-migrations
  Scenario: Each migration is committed together with its tracking row, in a transaction of its own
    A migration and the row that records it are one unit: both or neither. And
    no two migrations share a transaction, so a failure in one never takes the
    ones before it back out.

    Given a fresh database
    When release 5 is deployed
    Then the deploy succeeds
    And each migration's changes and its tracking row were committed together, in a transaction of their own

  @normal @allure.label.story:Files_from_the_old_runner @allure.link.docs:file-format
  Scenario: A file that wraps itself in BEGIN and COMMIT and records itself the old way is applied once, and recorded properly
    Given a database at release 5
    And the next release adds a migration written for the old shell runner, which wraps itself in BEGIN and COMMIT and inserts its own tracking row
    When the release is deployed
    Then the deploy succeeds
    And migration 011 was applied exactly once
    And each row records the migration's name, the checksum of its file, how long it took and the database user who applied it

  @critical @allure.label.story:No-transaction_migrations @allure.link.docs:no-transaction-migrations
  Scenario: A migration marked no-transaction builds an index concurrently
    CREATE INDEX CONCURRENTLY cannot run inside a transaction. A file whose
    first line is `-- pgship:no-transaction` runs statement by statement.

    Given a database at release 5
    And the next release adds a migration marked no-transaction that builds an index concurrently
    When the release is deployed
    Then the deploy succeeds
    And the index customers_name_idx exists and is valid
    And migration 011 was applied exactly once

  @normal @allure.label.story:Status @allure.link.docs:checking-status
  Scenario: Before a deploy, status lists the pending migrations and reports the database out of sync
    Given a database at release 2
    And release 5 is shipped
    When I run `pgship status --check`
    Then the command exits with code 5
    And the output lists migrations 003, 005 and 010 as pending
