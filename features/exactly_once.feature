@allure.label.epic:Safe_schema_changes
Feature: Exactly once, whatever a migration does
  As the engineer who owns the deploy pipeline
  I want pgship's own bookkeeping (its lock, its tracking table, its session) to hold even when a migration touches it
  So that every migration runs exactly once, and what a deploy reports is what happened

  Migrations are arbitrary SQL: they can release advisory locks, write to any table,
  switch roles and leave session state behind. pgship checks, inside each migration's
  own transaction and just before it commits, that the run still holds its migration
  lock and that no other version's tracking row changed; and it gives every migration
  a clean session.

  @blocker @allure.label.story:Exactly_once @allure.link.docs:a-migration-cannot-release-the-lock
  Scenario: The lock cannot be released by a migration
    Given a database at release 5
    And the next release has a migration that releases pgship's migration lock, and one after it
    When the release is deployed
    Then the deploy fails with exit code 1
    And the error says migration 011 released the migration lock
    And nothing of migration 011 remains in the database
    And migration 012 was not applied
    And the database is still at release 5

  @critical @allure.label.story:Exactly_once @allure.link.docs:every-migration-starts-from-a-clean-session
  Scenario: Every migration starts from a clean session
    Given a database at release 5
    And the next release has a migration that switches to another role and leaves a temporary table and a prepared statement behind, and one after it
    When the release is deployed
    Then the deploy succeeds
    And migrations 011 and 012 are applied, in that order
    And the table order_notes that migration 012 creates belongs to the user that runs the deploy
    And each row records the migration's name, the checksum of its file, how long it took and the database user who applied it

  @blocker @allure.label.story:Exactly_once @allure.link.docs:the-tracking-table-is-pgships
  Scenario: A migration cannot forge the tracking table
    Given a database at release 5
    And the next release has a migration that records the migration after it as already applied, and one after it
    When the release is deployed
    Then the deploy fails with exit code 1
    And the error says migration 011 changed the tracking table
    And nothing of migration 011 remains in the database
    And migration 012 was not applied
    And the database is still at release 5

  @critical @allure.label.story:Exactly_once @allure.link.docs:an-interrupted-deploy-reports-what-was-committed
  Scenario: An interrupted deploy reports exactly what was committed
    Given a database at release 5
    And the next release has two quick migrations and a slow one after them
    When the deploy is stopped with SIGTERM while migration 013 is in flight
    Then the deploy stops with exit code 130, saying migration 013 was rolled back
    And migrations 011 and 012 are applied, in that order
    And migration 013 was not applied
    And the database has no table order_history
