@allure.label.epic:Safe_schema_changes
Feature: When a migration fails
  As an on-call engineer watching a deploy
  I want a failing migration to stop the deploy cleanly and tell me exactly why
  So that production keeps a schema it can run on, and I know what to fix

  @blocker @allure.label.story:Failed_migrations @allure.link.docs:when-a-migration-fails
  Scenario: A failing migration is rolled back entirely and nothing after it runs
    Given a database at release 2
    And release 4, in which migration 003 fails
    When release 4 is deployed
    Then the deploy fails with exit code 1
    And the error names migration 003, the line that failed and the database's message
    And nothing of migration 003 remains in the database
    And migration 005 was not applied
    And the database is still at release 2

  @critical @allure.label.story:Failed_migrations @allure.link.docs:when-a-migration-fails
  Scenario: After a failed deploy, fixing the migration and deploying again succeeds
    Given a database at release 2
    And a deploy of release 4 failed on migration 003
    When migration 003 is fixed
    And release 4 is deployed again
    Then the deploy succeeds
    And migrations 003 and 005 are applied, in that order
    And the database is at release 4

  @critical @allure.label.story:Lock_timeouts @allure.link.docs:lock-timeouts
  Scenario: A migration that waits for a lock gives up after its retries instead of stalling production
    Adding a column needs an exclusive lock on orders, which a long report
    holds. Waiting for it would queue every other query on orders behind the
    migration; pgship waits only a short lock_timeout, retries with a longer
    one, then gives up. (Here 0.1 s and one retry; the default is 3 s and three.)

    Given a database at release 5
    And the next release adds a migration that adds a status to orders
    And a long-running report is reading the orders table
    And the shop keeps querying the orders table
    When the release is deployed, allowing 0.1 seconds for each lock wait and 1 retry
    Then the deploy fails with exit code 1
    And the error says migration 011 gave up waiting for a lock after 2 attempts
    And the shop's queries on orders kept running throughout the deploy
    And the report was not interrupted
    And nothing of migration 011 remains in the database

  @critical @allure.label.story:Lock_timeouts @allure.link.docs:lock-timeouts
  Scenario: A column named like CONCURRENTLY does not let a migration wait for a lock without a timeout
    Only statements PostgreSQL runs concurrently go without a lock_timeout, and
    pgship reads that from the statement's parse tree, not from its text: an
    ALTER TABLE adding a column called processed_concurrently, in a file that
    runs outside a transaction, waits a short lock_timeout like any other.

    Given a database at release 5
    And the next release adds a no-transaction migration that adds a processed_concurrently flag to orders
    And a long-running report is reading the orders table
    When the release is deployed, allowing 0.1 seconds for each lock wait and 1 retry
    Then the deploy fails with exit code 1
    And the error says migration 011 gave up waiting for a lock after 2 attempts
    And the report was not interrupted

  @critical @allure.label.story:Database_restarts @allure.link.docs:when-a-migration-fails
  Scenario: Losing the database in the middle of a deploy fails that deploy cleanly, and the next one completes
    A restart or a fail-over cuts every client's connection. Here the server
    ends the deploy's session itself (pg_terminate_backend), which looks the same
    to pgship and works on every backend, including a shared server.

    Given a database at release 5
    And the next release adds a migration that adds a status to orders
    And a long-running report is reading the orders table
    When the database drops the deploy's connection while migration 011 is in flight
    Then the deploy fails with exit code 1
    And the error says the connection to the database was lost while applying migration 011
    And nothing of migration 011 remains in the database
    When the report finishes
    And the release is deployed again
    Then the deploy succeeds
    And migration 011 is applied
