@allure.label.epic:Rollback_and_recovery
Feature: Forward-only rollback
  As a team lead deciding how a bad schema change is undone
  I want pgship to only ever move the schema forward, and to stop when the history is rewritten
  So that every environment's schema is explained by the migration files in the repository

  There are no down migrations. Rolling the application back leaves the schema
  where it is; undoing a schema change is a new migration that reverses it.

  @normal @allure.label.story:No_down_migrations @allure.link.docs:rollback-procedures
  Scenario: A folder of down scripts is ignored, with a warning that pgship is forward-only
    Given a database at release 3
    And release 4 is shipped with a rollback folder of down scripts
    When I run `pgship migrate`
    Then the command exits with code 0
    And the output says "rollback/ ignored: pgship is forward-only"
    And none of the down scripts ran
    And the database is at release 4

  @normal @allure.label.story:No_down_migrations @allure.link.docs:rollback-procedures
  Scenario: There is no command that runs migrations backwards
    Given a database at release 3
    When I run `pgship rollback`
    Then the command exits with code 2
    And the output says "invalid choice: 'rollback'"
    And the database is still at release 3

  @critical @allure.label.story:Compensating_migrations @allure.link.docs:compensating-migrations
  Scenario: A schema change is undone by a new, compensating migration
    Given a database at release 5
    And the next release adds a migration that drops the reporting view again
    When the release is deployed
    Then the deploy succeeds
    And the reporting view customer_totals no longer exists
    And migration 010 stays recorded as applied

  @critical @allure.label.story:Edited_migrations @allure.link.docs:edited-migrations
  Scenario: Editing an applied migration stops the next deploy, naming the version
    Given a database at release 3
    And release 4 is shipped
    And migration 002 has been edited since it was applied
    When release 4 is deployed
    Then the deploy is refused with exit code 2
    And the error names migration 002 as edited since it was applied
    And migration 005 was not applied
    And the database is still at release 3

  @normal @allure.label.story:Edited_migrations @allure.link.docs:edited-migrations
  Scenario: `pgship repair` deliberately accepts an edit, and the next deploy goes ahead
    For the rare harmless edit (a comment, formatting) that must stay.

    Given a database at release 3
    And release 4 is shipped
    And migration 002 has been edited since it was applied
    When I run `pgship repair`
    Then the command exits with code 0
    And the output says "accepted 002_add_customer_email.sql"
    And migration 002 is recorded with the checksum of its edited file
    When release 4 is deployed
    Then the deploy succeeds
    And only migration 005 is applied

  @critical @allure.label.story:Deleted_migrations @allure.link.docs:deleted-migrations
  Scenario: A deleted applied migration is reported, and the deploy is refused
    Given a database at release 3
    And release 4 is shipped
    And the file of applied migration 002 has been deleted
    When release 4 is deployed
    Then the deploy is refused with exit code 2
    And the error names migration 002 as applied but missing from the release
    And migration 005 was not applied

  @critical @allure.label.story:Reverting_the_application @allure.link.docs:reverting-the-application
  Scenario: An older release runs against the newer schema, with a warning
    The application is rolled back to release 3 while the database stays at
    release 5: pgship applies nothing, removes nothing, and says so.

    Given a database at release 5
    When release 3 is deployed
    Then the deploy succeeds
    And pgship warns that migrations 005 and 010 are newer than this release
    And the schema and the tracking table are exactly as they were
