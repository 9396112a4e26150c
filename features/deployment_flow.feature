@allure.label.epic:Deployment_pipeline
Feature: Deploying a release
  As the team shipping the shop application
  I want every release to go through build, migrate, start and verify, in that order, each step a gate for the next
  So that new code only ever starts on the schema it needs, and a failed step leaves production as it was

  The deploy pipeline is `pgship deploy`. The shop's build script and start
  script write a note of the migrations the database had when they ran; the
  start script's service is the release's health endpoint, which the pipeline
  polls until it reports the new release. pgship reaches the database through
  a network path the examples can close, to show a database that is late or
  never comes up.

  @blocker @allure.label.story:Stage_order @allure.link.docs:the-deploy-command
  Scenario: A release with new migrations is built, migrated, started and verified, in that order
    Given a database at release 3
    When the deploy pipeline ships release 5
    Then the pipeline succeeds
    And the deploy log shows the stages wait, verify, build, migrate, start and health, in that order
    And the build ran while the database was at release 3, and the start once it was at release 5
    And the database is at release 5
    And the release's health endpoint reports release 5 as healthy

  @normal @allure.label.story:Stage_order @allure.link.docs:the-deploy-command
  Scenario: Deploying a release whose migrations are all applied starts it without changing the schema
    Given a database at release 5
    When the deploy pipeline ships release 5
    Then the pipeline succeeds
    And the deploy log says there was nothing to apply
    And the database schema is exactly as it was before the pipeline ran
    And the release's health endpoint reports release 5 as healthy

  @blocker @allure.label.story:Failed_deploys @allure.link.docs:when-a-deploy-fails
  Scenario: A release whose migration fails is never started, and the schema stays as it was
    Given a database at release 2
    And release 4, in which migration 003 fails
    When the deploy pipeline ships release 4
    Then the pipeline fails at the migrate stage with exit code 1
    And the start and health stages did not run
    And the release's start script never ran
    And the database schema is exactly as it was before the pipeline ran
    And the database is still at release 2

  @critical @allure.label.story:Failed_deploys @allure.link.docs:when-a-deploy-fails
  Scenario: A build that fails stops the deploy before the database changes
    Given a database at release 3
    And the release's build is broken
    When the deploy pipeline ships release 5
    Then the pipeline fails at the build stage with exit code 1
    And the migrate, start and health stages did not run
    And the deploy log shows the end of the build's output
    And the database is still at release 3

  @critical @allure.label.story:Waiting_for_the_database @allure.link.docs:the-deploy-command
  Scenario: A deploy waits for a database that comes up late
    Given a database at release 3
    And the database is not accepting connections yet
    When the deploy pipeline ships release 5 and the database comes up while it waits
    Then the pipeline succeeds
    And the deploy log shows it waited for the database before going on
    And the database is at release 5

  @critical @allure.label.story:Waiting_for_the_database @allure.link.docs:when-a-deploy-fails
  Scenario: A database that never comes up fails the deploy after the wait, with exit code 3
    Given a database at release 3
    And the database does not accept connections
    When the deploy pipeline ships release 5, waiting at most 2 seconds for the database
    Then the pipeline fails at the wait stage with exit code 3
    And the verify, build, migrate, start and health stages did not run
    And the release's build script never ran
    And the database is still at release 3

  @critical @allure.label.story:Reverting_the_application @allure.link.docs:reverting-the-application
  Scenario: Deploying the previous release again keeps the newer schema, and its health check warns instead of failing
    The application commit of release 5 was reverted: release 3 is deployed
    again onto the schema of release 5. Its migrations are all applied, the
    newer ones stay in place, and the health gate is told to accept a warning.

    Given a database at release 5
    When the deploy pipeline ships release 3, accepting a health warning
    Then the pipeline succeeds
    And the deploy log warns that migrations 005 and 010 are newer than this release
    And the database schema is exactly as it was before the pipeline ran
    And the release's health endpoint reports release 3 with a warning naming migrations 005 and 010
