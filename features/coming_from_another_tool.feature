@allure.label.epic:Adopting_pgship
Feature: Coming from another migration tool
  As a team whose databases golang-migrate, dbmate, goose or Flyway migrated until now
  I want pgship to read what that tool recorded and carry on from there
  So that switching tools never runs a migration twice, and never guesses about a half-applied one

  Each tool keeps its history its own way. pgship copies it into its own tracking
  table on the first deploy, in one transaction, without running anything again,
  and leaves the other tool's table as it was. Where the history says a migration
  failed part-way, pgship stops and says which one, and how to settle it.

  @blocker @allure.label.story:From_golang-migrate @allure.link.docs:from-golang-migrate
  Scenario: A database golang-migrate built is taken over, and only newer migrations run
    golang-migrate keeps a single row, the newest version it applied: every
    version up to it is applied.

    Given a database migrated to release 3 by golang-migrate
    When release 5 is deployed
    Then the deploy succeeds
    And pgship ran only migrations 005 and 010, in that order
    And migrations 001, 002 and 003 are recorded as applied, taken over from golang-migrate without running them
    And golang-migrate's table is kept unchanged, renamed to schema_migrations_golang_migrate

  @critical @allure.label.story:Taking_over @allure.link.docs:coming-from-golang-migrate--dbmate--goose--flyway
  Scenario: A take-over cut off half-way leaves the database as it was
    pgship renames golang-migrate's table aside, creates its own and copies the
    history in one transaction; here the server ends pgship's session between
    the rename and the copy.

    Given a database migrated to release 3 by golang-migrate
    And the server ends pgship's session the moment pgship creates its tracking table
    When release 5 is deployed
    Then the deploy fails with exit code 1
    And the database and golang-migrate's table are exactly as they were

  @critical @allure.label.story:Taking_over @allure.link.docs:coming-from-golang-migrate--dbmate--goose--flyway
  Scenario: Two deploys taking over the same database at once both succeed, and apply each migration once
    Given a database goose migrated to release 3, then rolled back migration 003
    And the shop is in the middle of a transaction writing to the customers table
    When two deploys of release 5 start at the same moment
    And the shop's transaction commits while both deploys are under way
    Then both deploys succeed
    And together they applied each of migrations 003, 005 and 010 exactly once
    And goose's table is left exactly as it was

  @critical @allure.label.story:From_golang-migrate @allure.link.docs:from-golang-migrate
  Scenario: golang-migrate's migrations folder runs as it is, and its down files never run
    Given a database migrated to release 3 by golang-migrate
    And release 5 is shipped in golang-migrate's format, an up and a down file for each migration
    When the release is deployed
    Then the deploy succeeds
    And pgship ran only migrations 005 and 010, in that order
    And pgship warns that it ignored the 5 down files, being forward-only
    And everything release 3 built is still there

  @critical @allure.label.story:From_golang-migrate @allure.link.docs:from-golang-migrate
  Scenario: A database golang-migrate left dirty is refused, naming the migration to settle
    Given a database golang-migrate left dirty at migration 003
    When release 5 is deployed
    Then the deploy is refused with exit code 2
    And the error names golang-migrate, version 3 and the commands that record where the database stands
    And the database and golang-migrate's table are exactly as they were

  @critical @allure.label.story:From_golang-migrate @allure.link.docs:from-golang-migrate
  Scenario: Once the dirty migration is settled by hand, `pgship baseline` adopts the database
    Given a database golang-migrate left dirty at migration 003
    And someone finished migration 003 by hand
    And release 5 is shipped
    When I run `pgship baseline 003`
    Then the command exits with code 0
    And migrations 001, 002 and 003 are recorded as applied by the baseline, without running them
    When release 5 is deployed
    Then the deploy succeeds
    And pgship ran only migrations 005 and 010, in that order

  @blocker @allure.label.story:From_dbmate @allure.link.docs:from-dbmate
  Scenario: A database dbmate built is taken over in place, and dbmate can still read it
    dbmate keeps one row per applied version in a table named like pgship's: pgship
    adds its columns to it, and dbmate, which only reads its version column,
    still sees what it applied.

    Given a database migrated to release 3 by dbmate
    When release 5 is deployed
    Then the deploy succeeds
    And pgship ran only migrations 005 and 010, in that order
    And migrations 001, 002 and 003 are recorded as applied, taken over from dbmate without running them
    And dbmate still lists migrations 001, 002 and 003 as applied

  @critical @allure.label.story:From_goose @allure.link.docs:from-goose
  Scenario: A migration goose rolled back is applied again by pgship, in order
    goose writes a row for every up and every down: a version counts as applied
    if its latest row says so.

    Given a database goose migrated to release 3, then rolled back migration 003
    When release 5 is deployed
    Then the deploy succeeds
    And pgship ran only migrations 003, 005 and 010, in that order
    And migrations 001 and 002 are recorded as applied, taken over from goose without running them
    And goose's table is left exactly as it was

  @critical @allure.label.story:From_goose @allure.link.docs:from-goose
  Scenario: A file in goose's up-and-down format is refused before anything runs
    pgship runs whole files, so a down section would undo the migration it follows.

    Given a fresh database
    And release 5 is shipped with migration 005 in goose's format, down section included
    When the release is deployed
    Then the deploy is refused with exit code 2
    And the error names 005_index_orders_by_customer.sql and says how to fix it: "Delete the down section"
    And the error points at line 5
    And the database has no tracking table

  @critical @allure.label.story:From_Flyway @allure.link.docs:from-flyway
  Scenario: A database Flyway baselined and migrated is taken over, and only newer migrations run
    Flyway's BASELINE row stands for every version up to it; later rows record each
    migration it ran.

    Given a database Flyway baselined at migration 001 and then migrated to release 3
    When release 5 is deployed
    Then the deploy succeeds
    And pgship ran only migrations 005 and 010, in that order
    And migrations 001, 002 and 003 are recorded as applied, taken over from Flyway without running them
    And Flyway's table is left exactly as it was

  @critical @allure.label.story:From_Flyway @allure.link.docs:from-flyway
  Scenario: A database with a failed Flyway migration is refused, naming the migration to settle
    Given a database in which Flyway's migration 003 failed
    When release 5 is deployed
    Then the deploy is refused with exit code 2
    And the error names Flyway, version 3, `flyway repair` and `pgship baseline`
    And the database has no tracking table
