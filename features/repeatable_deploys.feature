@allure.label.epic:Safe_schema_changes
Feature: Repeatable deploys
  As a team that deploys many times a day, and sometimes twice at once
  I want a deploy to be safe to repeat, to run alongside another, and to interrupt
  So that a retried, duplicated or killed deploy never applies a migration twice or leaves one half done

  @critical @allure.label.story:The_same_release_twice @allure.link.docs:idempotency
  Scenario: Deploying the same release again changes nothing
    Given a database at release 3
    When release 3 is deployed again
    Then the deploy succeeds
    And pgship reports that the database is up to date
    And the schema and the tracking table are exactly as they were

  @critical @allure.label.story:Part-way_databases @allure.link.docs:idempotency
  Scenario: A database part-way through the migrations gets only the rest
    Given a database at release 2
    And the shop already has customers
    When release 5 is deployed
    Then the deploy succeeds
    And migrations 003, 005 and 010 are applied, in that order
    And migrations 001 and 002 keep their original tracking rows
    And the shop's customers are still there

  @blocker @allure.label.story:Concurrent_deploys @allure.link.docs:concurrent-deploys
  Scenario: Two deploys started at the same moment apply each migration exactly once, and both succeed
    Two real pgship processes start together. The first to take the migration
    lock has to wait at its first migration for a write the shop has not yet
    committed, so the second one certainly arrives while the first is mid-way.
    It waits for the lock, then finds nothing left to do, and succeeds too.

    Given a database at release 2
    And the shop is in the middle of a transaction writing to the customers table
    When two deploys of release 5 start at the same moment
    And the shop's transaction commits while both deploys are under way
    Then both deploys succeed
    And together they applied each of migrations 003, 005 and 010 exactly once
    And the database is at release 5

  @blocker @allure.label.story:Killed_deploys @allure.link.docs:idempotency
  Scenario: A deploy killed in the middle of a migration leaves nothing half-applied, and the next deploy completes it
    The deploy is a real process, killed with SIGKILL (no chance to clean up)
    while its migration has already created a table and waits for a lock on
    orders, which a long report holds. PostgreSQL notices that the client is
    gone, and rolls the migration's transaction back.

    Given a database at release 5
    And the next release adds a migration that adds a status to orders
    And a long-running report is reading the orders table
    When the deploy is killed while migration 011 is in flight
    Then the database has rolled back the killed deploy's transaction
    And nothing of migration 011 remains in the database
    When the report finishes
    And the release is deployed again
    Then the deploy succeeds
    And migration 011 is applied
    And migration 011 was applied exactly once
