@allure.label.epic:Safe_schema_changes
Feature: Applying migrations
  As a developer shipping a schema change with my release
  I want pgship to apply each new migration file exactly once, in version order, each in its own transaction
  So that every environment ends up with the same schema and a failed file never leaves it half-changed

  The examples use a small shop application. Each release adds migration files
  to the one before: release 2 holds migrations 001 and 002, release 5 adds
  003, 005 and 010 (version numbers may skip).

  @critical @allure.label.story:Version_order @allure.link.docs:applying-migrations
  Scenario: Pending migrations are applied in version order, even with gaps in the numbering
    Given a database at release 2
    When release 5 is deployed
    Then the deploy succeeds
    And migrations 003, 005 and 010 are applied, in that order
    And the database is at release 5

  @normal @allure.label.story:Tracking_table @allure.link.docs:the-tracking-table
  Scenario: Every applied migration is recorded with its name, checksum, duration and who applied it
    Given a fresh database
    When release 3 is deployed
    Then the tracking table has one row for each of migrations 001, 002 and 003
    And each row records the migration's name, the checksum of its file, how long it took and the database user who applied it

  @critical @allure.label.story:Repeatable_deploys @allure.link.docs:applying-migrations
  Scenario: Deploying the same release again applies nothing
    Given a database at release 3
    When release 3 is deployed again
    Then the deploy succeeds
    And no migration is applied
    And pgship reports that the database is up to date

  @blocker @allure.label.story:Failed_migrations @allure.link.docs:when-a-migration-fails
  Scenario: A failing migration is rolled back and nothing after it runs
    Given a database at release 2
    And release 4, in which migration 003 fails
    When release 4 is deployed
    Then the deploy fails with exit code 1
    And the error names migration 003, the line that failed and the database's message
    And nothing of migration 003 remains in the database
    And migration 005 was not applied
    And the database is still at release 2

  @normal @allure.label.story:Status @allure.link.docs:checking-status
  Scenario: Before a deploy, status lists the pending migrations and reports the database out of sync
    Given a database at release 2
    And release 5 is shipped
    When I run `pgship status --check`
    Then the command exits with code 5
    And the output lists migrations 003, 005 and 010 as pending
