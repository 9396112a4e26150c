@allure.label.epic:Troubleshooting
Feature: Troubleshooting migrations
  As an on-call engineer after a deploy went wrong
  I want pgship to show exactly where the database stands and what to do next
  So that I can fix production with a known command instead of guesswork

  @critical @allure.label.story:Schema_out_of_sync @allure.link.docs:schema-out-of-sync
  Scenario: `pgship status` shows which migrations are pending and which applied ones are missing from the release
    Given a database at release 4
    And release 5 is shipped without the file of migration 003
    When I run `pgship status --check`
    Then the command exits with code 5
    And the output lists migrations 010 as pending
    And the output lists migration 003 as applied but missing its file

  @critical @allure.label.story:Hand-applied_migrations @allure.link.docs:a-migration-was-applied-by-hand
  Scenario: A migration applied by hand in an emergency stops the next deploy before it changes anything
    The index of migration 005 was created by hand with psql during an
    incident, and nothing recorded it. The next deploy runs 005 again, which
    fails; the failure is rolled back like any other.

    Given a database at release 3
    And migration 005 was applied by hand in an emergency
    When release 5 is deployed
    Then the deploy fails with exit code 1
    And the error names migration 005 and the database's message "relation "orders_customer_placed_idx" already exists"
    And migration 010 was not applied

  @critical @allure.label.story:Hand-applied_migrations @allure.link.docs:a-migration-was-applied-by-hand
  Scenario: `pgship baseline` records a migration applied by hand, so that it is never run twice
    Given a database at release 3
    And migration 005 was applied by hand in an emergency
    And release 5 is shipped
    When I run `pgship baseline 005`
    Then the command exits with code 0
    And the output says "Recorded 1 migration(s) up to 005 as applied, without running them."
    When release 5 is deployed
    Then the deploy succeeds
    And only migration 010 is applied
    And the database is at release 5

  @normal @allure.label.story:Hand-applied_migrations @allure.link.docs:a-migration-was-applied-by-hand
  Scenario: The failed deploy of a migration applied by hand says to record it with `pgship baseline`

    Given a database at release 3
    And migration 005 was applied by hand in an emergency
    When release 5 is deployed
    Then the deploy fails with exit code 1
    And the error's advice is to run `pgship baseline 005` if the migration was applied by hand

  @critical @allure.label.story:Bad_input @allure.link.docs:bad-input-is-refused
  Scenario: `pgship verify` lists the problems of every broken file in one run, not one batch at a time
    Two files share a version, and another one commits in its middle. Both
    are reported by the same run, so one round of fixes is enough.

    Given release 5 is shipped
    And the release has two migrations with version 003
    And the release has a migration with a COMMIT in the middle
    When I run `pgship verify --no-database`
    Then the command exits with code 2
    And the output says "003_create_orders.sql, 003_orders_again.sql: 2 files share version 003"
    And the output says "011_add_order_notes.sql:2: COMMIT in the middle of the file"
