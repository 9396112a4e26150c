@allure.label.epic:Security
Feature: Secrets stay secret
  As a person responsible for the production database's credentials
  I want pgship never to print the database password, whatever happens
  So that deploy logs, CI output and the published report can be shared freely

  @blocker @allure.label.story:No_passwords_in_output @allure.link.docs:security
  Scenario: No command output, JSON document, error or report attachment contains the database password
    Every command runs with a database URL that carries the password, and the
    replay commands with a second one (PGSHIP_REPLAY_URL). The output is
    checked as pgship printed it; the report's attachments as written to disk.

    Given a database at release 2
    And release 4, in which migration 003 fails
    When every pgship command is run against it, as text and as JSON
    And pgship is pointed at the server with a wrong password and at a server that is not there
    Then none of their output contains a password
    And no report attachment of this scenario contains a password

  @blocker @allure.label.story:No_passwords_in_output @allure.link.docs:security
  Scenario: A malformed database URL is refused without showing the password
    People paste URLs with a colon or slash missing, or with a password that
    holds a space, #, ? or @ not percent-encoded. libpq reads some of these
    one way and every other URL parser another, so pgship refuses them all as
    bad input, before connecting, and says what is wrong without quoting them.

    Given a database at release 2
    When every pgship command is given the database URL written wrongly, in each way people get it wrong
    Then every command refuses it as not a valid postgresql:// URL, with exit code 2
    And none of their output contains a password
