@allure.label.epic:Safe_schema_changes
Feature: Deploying to many databases
  As a team whose application keeps each tenant in a database (or a schema) of its own
  I want one command to bring every tenant to the release: a canary first, then the rest, several at a time
  So that a bad migration stops at the canary, one broken tenant never blocks the others,
  an interrupted rollout resumes where it stopped, and one report says where every tenant stands

  Each tenant gets exactly what a single-database deploy gives: its own migration lock, each
  migration in a transaction of its own with its tracking row. The fleet file in the project finds
  the tenants with a query on the application's catalog database, and names tenant 1 the canary.

  @blocker @allure.label.story:Canary @allure.link.docs:canary-and-waves
  Scenario: A migration that fails on the canary stops the rollout before any other tenant is touched
    Given a fleet of 4 tenant databases at release 2, the first of them the canary
    When release 5, in which migration 003 fails, is deployed to the fleet
    Then the fleet deploy fails with exit code 1
    And the fleet report says the canary failed and no wave was started
    And tenant 1 is still at release 2
    And no tenant of the later wave was changed

  @critical @allure.label.story:One_broken_tenant @allure.link.docs:canary-and-waves
  Scenario: One broken tenant does not stop the others, and the report names it
    Given a fleet of 4 tenant databases at release 2, the first of them the canary
    And tenant 3 already has an orders table, made by hand
    When release 5 is deployed to the fleet, continuing past failed tenants
    Then the fleet deploy fails with exit code 1
    And the fleet report names tenant 3 as failed at migration 003
    And every tenant but tenant 3 is at release 5
    And tenant 3 is still at release 2

  @blocker @allure.label.story:Resuming @allure.link.docs:resuming-a-fleet-deploy
  Scenario: An interrupted fleet deploy finishes the migration in flight, starts nothing new, and the next run completes the fleet
    The fleet deploy is a real process, stopped with SIGTERM (what Ctrl-C, a cancelled CI job or
    Kubernetes sends) while tenant 2's migration waits for a table a customer is writing to.

    Given a fleet of 4 tenant databases at release 2, the first of them the canary
    And tenant 2 is busy: a transaction is writing to its customers table
    When a fleet deploy of release 5, one tenant at a time, is interrupted while tenant 2 is mid-migration
    Then the fleet deploy fails with exit code 130
    And tenant 1 is at release 5
    And tenant 2 finished the migration it was applying, 003, and started no other
    And tenants 3 and 4 were not touched
    And the fleet report lists tenants 2, 3 and 4 as not finished
    When the same fleet deploy is run again
    Then the fleet deploy succeeds
    And every tenant is at release 5

  @blocker @allure.label.story:Concurrent_fleet_deploys @allure.link.docs:resuming-a-fleet-deploy
  Scenario: Two fleet deploys at once never apply a migration twice on any tenant
    Both are real processes. Tenant 2 holds the first to arrive at its first migration, so the
    second certainly arrives there while the first is mid-way.

    Given a fleet of 3 tenant databases at release 2, the first of them the canary
    And tenant 2 is busy: a transaction is writing to its customers table
    When two fleet deploys of release 5 start at the same moment
    Then both fleet deploys succeed
    And every tenant has each of migrations 003, 005 and 010 applied exactly once

  @critical @allure.label.story:Schema_per_tenant @allure.link.docs:many-databases
  Scenario: Tenants that are schemas of one database each get the release in their own schema
    Given one database holding 3 tenant schemas
    When release 5 is deployed to the fleet
    Then the fleet deploy succeeds
    And each tenant schema has the shop's tables and its own tracking table, at release 5
    And nothing was created outside the tenant schemas

  @normal @allure.label.story:Fleet_health @allure.link.docs:fleet-health
  Scenario: The fleet's health counts the tenants at the release, behind, and unreachable
    Given a fleet of 4 tenant databases at release 3, the first of them the canary
    And tenants 1 and 2 have been deployed release 5 on their own
    And release 5 is shipped to the fleet
    And tenant 4 does not accept connections
    When the fleet's health is checked
    Then the fleet's health counts 2 tenants at the release, 1 behind and 1 unreachable
    And the fleet command exits with code 3

  @blocker @allure.label.story:No_secrets_in_the_repository @allure.link.docs:many-databases
  Scenario: A fleet file with a password in it is refused before any tenant is touched
    Given a fleet of 2 tenant databases at release 2, the first of them the canary
    And the fleet file names a tenant by a URL with its password
    When release 5 is deployed to the fleet
    Then the fleet deploy is refused with exit code 2
    And the fleet's output does not contain the password
    And tenants 1 and 2 were not touched

  @normal @allure.label.story:Shards @allure.link.docs:thousands-of-tenants
  Scenario: Shards of the fleet together deploy every tenant exactly once
    What N jobs of a CI matrix or of a Kubernetes Indexed Job do, each with --shard K/N.

    Given a fleet of 6 tenant databases at release 2, the first of them the canary
    When release 5 is deployed to the fleet in 3 shards
    Then every shard's deploy succeeds
    And each tenant was deployed by exactly one shard
    And every tenant is at release 5
