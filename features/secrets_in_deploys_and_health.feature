@allure.label.epic:Security
Feature: No secrets in deploy logs and health responses
  As the person responsible for the production database's credentials
  I want deploy logs never to show the database password, and health responses never to show where the database is or who connects to it
  So that deploy logs can be shared and the health endpoint can face load balancers and the internet

  The checks read what pgship printed, answered and wrote as it was, before
  the report's own scrubbing, and then the report's attachments as written.

  @blocker @allure.label.story:No_secrets_in_health_responses @allure.link.docs:security
  Scenario: No health response names the database's password, host, port, user or name, in any state
    Given a database at release 2
    And the health endpoint of release 3 is running with a bearer token for the details
    When every health endpoint is asked while the database is behind, down, not answering, and refusing the password
    Then every endpoint answered in each state
    And no health response contains the password, host, port, user or database name
    And the health endpoint's own log does not contain the password

  @blocker @allure.label.story:No_passwords_in_deploy_logs @allure.link.docs:security
  Scenario: No deploy log, JSON report, script output or report attachment contains the database password
    The build script prints the database URL it was given, and the start
    command has it written into its command line, as careless ones do. One
    release deploys, one fails on a migration, and one cannot reach the
    database; each deploy runs once as text, once as JSON.

    Given a database at release 1
    And the release's build script prints the database URL
    And the release's start command has the database URL written into it
    When the deploy pipeline ships release 2, as text and as JSON
    And the deploy pipeline ships release 4, in which migration 003 fails, as text and as JSON
    And the deploy pipeline ships release 4 to a database that never comes up, as text and as JSON
    Then the deploy logs show the build's output and the start command with the password masked
    And nothing the deploys printed or wrote contains the password
    And no report attachment of this scenario contains the password

  @blocker @allure.label.story:No_passwords_in_deploy_logs @allure.link.docs:security
  Scenario: The start log never holds the password, even when the start command prints its environment
    Apps print their environment when they crash. The start command's output
    reaches the start log through pgship's scrubber for as long as it runs;
    the log is readable by its owner only.

    Given a database at release 1
    And the release's start command prints its environment, database URL and password included
    When the deploy pipeline ships release 2
    Then the pipeline succeeds
    And the start log shows the database URL with the password masked
    And nothing the deploys printed or wrote contains the password
    And the start log and its folder can be read by their owner only
