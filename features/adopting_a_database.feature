@allure.label.epic:Adopting_pgship
Feature: Adopting an existing database
  As a team replacing its old shell runner with pgship
  I want pgship to take over databases that the old runner, or a person, migrated, without running anything again
  So that switching runners is a non-event in production

  @blocker @allure.label.story:From_the_old_shell_runner @allure.link.docs:adopting-an-existing-database
  Scenario: A database migrated by the old shell runner is taken over without re-running anything
    The old runner's tracking table has only version, name and applied_at.
    pgship adds its own columns to it in place, records each applied file's
    checksum, and applies only what is new.

    Given a database migrated to release 3 by the old shell runner
    When release 5 is deployed
    Then the deploy succeeds
    And migrations 005 and 010 are applied, in that order
    And migrations 001, 002 and 003 were adopted, keeping their original dates and gaining the checksums of their files
    And the database is at release 5

  @critical @allure.label.story:Baseline @allure.link.docs:adopting-an-existing-database
  Scenario: A database with a schema but no tracking table is adopted with `pgship baseline`
    Given a database that already has the schema of release 3, made without any runner
    And release 5 is shipped
    When I run `pgship baseline 003`
    Then the command exits with code 0
    And migrations 001, 002 and 003 are recorded as applied by the baseline, without running them
    When release 5 is deployed
    Then the deploy succeeds
    And migrations 005 and 010 are applied, in that order
