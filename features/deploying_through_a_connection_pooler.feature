@allure.label.epic:Safe_schema_changes
Feature: Deploying through a connection pooler
  As the engineer who owns the deploy pipeline, where every client reaches the database through PgBouncer
  I want pgship to deploy safely through the pooler, or to tell me exactly what it needs instead
  So that a deploy never applies a migration twice, and a crashed deploy does not block the next one for long

  In transaction pooling mode each transaction may run on a different server connection:
  a session advisory lock, a SET or a prepared statement does not survive from one
  transaction to the next. pgship finds out where it is before it locks. Through a
  transaction pooler it locks with a lease (a row that expires unless the running deploy
  renews it), proves inside each migration's transaction that it still holds the lease,
  and keeps no session state. Migrations that run without a transaction need the
  database's direct address. With `-D db=embedded+pgbouncer` every scenario of the run
  goes through a real PgBouncer (`-D pool=transaction|session`).

  @blocker @allure.label.story:Connection_pooler @allure.link.docs:behind-a-connection-pooler
  Scenario: Two deploys through the pooler apply each migration once
    Given a database at release 2
    And release 5 is shipped
    And deploys reach the database through the connection pooler
    When two deploys of the release start at the same moment
    Then both deploys succeed
    And together they applied each of migrations 003, 005 and 010 exactly once
    And the deploys say they went through the pooler

  @blocker @allure.label.story:Connection_pooler @allure.link.docs:when-a-deploy-dies-behind-the-pooler
  Scenario: A deploy killed mid-run does not block the next deploy beyond its lease
    Given a database at release 5
    And deploys reach the database through a transaction pooler, with a lease of 2 seconds
    And the next release changes the customers table, and adds a table after that
    And the shop is in the middle of a transaction writing to the customers table
    When the deploy is killed while migration 011 waits for the shop's transaction
    And the shop's transaction commits
    And the release is deployed again through the pooler
    Then the deploy succeeds
    And the database has rolled back the killed deploy's transaction
    And the killed deploy's lease lasted no longer than 2 seconds after it died
    And the next deploy applied nothing before that lease expired
    And migrations 011 and 012 are applied, in that order

  @critical @allure.label.story:Connection_pooler @allure.link.docs:no-transaction-migrations-need-the-direct-url
  Scenario: A no-transaction migration through a transaction pooler needs the direct URL
    Given a database at release 5
    And deploys reach the database through a transaction pooler
    And the next release adds a migration marked no-transaction that builds an index concurrently
    When the release is deployed
    Then the deploy is refused with exit code 2, naming the direct URL option
    And the database is still at release 5
    When the release is deployed with the database's direct URL
    Then the deploy succeeds
    And the index customers_name_idx exists and is valid
    And migration 011 was applied exactly once

  @critical @allure.label.story:Connection_pooler @allure.link.docs:health-checks-through-the-pooler
  Scenario: The health endpoints answer through the pooler
    Given a database at release 3
    And deploys reach the database through the connection pooler
    And the health endpoint of release 3 is running through the pooler
    Then /health/live answers 200 with status "pass"
    And /health answers 200 with status "pass"
    And /health/database answers 200 with status "pass"
    And the details show release 3: 3 migrations shipped and applied, the latest 003, none pending
