@allure.label.epic:Health_checks
Feature: Health checks
  As the on-call engineer, and the load balancer in front of the shop
  I want the running release to say whether its database answers and holds exactly the migrations the release ships
  So that traffic only reaches a release whose schema is ready, and a mismatch is seen before customers see it

  The health endpoint is `pgship serve`, started with the release's migration
  files, here with its cache off (`--cache-ttl 0`) so that every request
  checks the database. `/health/live` says the process runs, `/health` is the
  readiness verdict for load balancers, `/health/database` has the details.
  pgship reaches the database through a network path the examples can cut.

  @blocker @allure.label.story:Readiness @allure.link.docs:readiness
  Scenario: A database with every migration of the release is healthy on all three endpoints
    Given a database at release 3
    And the health endpoint of release 3 is running
    Then /health/live answers 200 with status "pass"
    And /health answers 200 with status "pass"
    And /health/database answers 200 with status "pass"
    And the details show release 3: 3 migrations shipped and applied, the latest 003, none pending

  @blocker @allure.label.story:Readiness @allure.link.docs:readiness
  Scenario: Pending migrations make the release not ready
    Given a database at release 2
    And the health endpoint of release 5 is running
    Then /health answers 503 with status "fail"
    And /health/database answers 503 with status "fail"
    And the details list migrations 003, 005 and 010 as pending

  @critical @allure.label.story:Database_details @allure.link.docs:database-details
  Scenario Outline: The number of migrations shipped comes from the release's files, not from a fixed number
    Given a database at release <release>
    And the health endpoint of release <release> is running
    Then /health/database answers 200 with status "pass"
    And the details show <count> migrations shipped, the latest <latest>

    Examples: Releases with more and fewer migration files
      | release | count | latest |
      | 1       | 1     | 001    |
      | 4       | 4     | 005    |

  @critical @allure.label.story:Database_details @allure.link.docs:database-details
  Scenario: A migration edited after it was applied is a warning that names it
    Given a database at release 3
    And the shipped file of migration 002 no longer matches what the database applied
    And the health endpoint of release 3 is running
    Then /health/database answers 200 with status "warn"
    And the details name migration 002 as edited after it was applied
    And /health answers 200 with status "warn"

  @critical @allure.label.story:Reverting_the_application @allure.link.docs:reverting-the-application
  Scenario: An older release running on a newer schema warns instead of failing
    The application was rolled back to release 3 after release 5's
    migrations ran: the newer migrations stay, and the old release still runs.

    Given a database at release 5
    And the health endpoint of release 3 is running
    Then /health answers 200 with status "warn"
    And /health/database answers 200 with status "warn"
    And the details list migrations 005 and 010 as applied without a file in this release

  @blocker @allure.label.story:Database_down @allure.link.docs:readiness
  Scenario: A database that goes down makes the release not ready
    Given a database at release 3
    And the health endpoint of release 3 is running
    When the database goes down
    Then /health answers 503 with status "fail"
    And /health/database answers 503 with status "fail", saying "cannot connect to the database"

  @critical @allure.label.story:Liveness @allure.link.docs:liveness
  Scenario: Liveness never asks the database, so a hung database does not get healthy containers restarted
    Given a database at release 3
    And the health endpoint of release 3 is running
    When the database stops answering
    Then /health/live answers 200 with status "pass"

  @critical @allure.label.story:Liveness @allure.link.docs:liveness
  Scenario: Liveness keeps answering while a client holds hundreds of connections with requests it never finishes
    A slow or hostile client must not take the load balancer's probe down with it.

    Given a database at release 3
    And the health endpoint of release 3 is running
    When a client holds 300 connections open, each with a request it never finishes
    Then /health/live answers 200 with status "pass"
    And /health answers 200 with status "pass"

  @normal @allure.label.story:Liveness @allure.link.docs:liveness
  Scenario: A request with enormous headers is refused, and liveness keeps answering
    Given a database at release 3
    And the health endpoint of release 3 is running
    When a client sends a request whose headers are 64 MiB
    Then that client is answered 431 "Request Header Fields Too Large"
    And /health/live answers 200 with status "pass"

  @critical @allure.label.story:Database_down @allure.link.docs:database-details
  Scenario: A database that stops answering gets a 503 within the check's bound, not a hung probe
    Given a database at release 3
    And the health endpoint of release 3 is running
    When the database stops answering
    Then /health/database answers 503 within the check's bound, saying the database did not answer
    And /health answers 503 with status "fail"

  @normal @allure.label.story:Database_down @allure.link.docs:readiness
  Scenario: The release is ready again as soon as the database is back
    Given a database at release 3
    And the health endpoint of release 3 is running
    And the database has gone down
    When the database comes back
    Then /health answers 200 with status "pass"

  @critical @allure.label.story:Protected_details @allure.link.docs:database-details
  Scenario: With a token set, the details need it while liveness and readiness stay open
    Given a database at release 3
    And the health endpoint of release 3 is running with a bearer token for the details
    Then /health/database without the token answers 401
    And /health/database with the token answers 200 with status "pass"
    And /health answers 200 with status "pass"
    And /health/live answers 200 with status "pass"
