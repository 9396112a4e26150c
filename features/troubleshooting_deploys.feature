@allure.label.epic:Troubleshooting
Feature: Troubleshooting a deploy
  As the on-call engineer when a deploy goes wrong
  I want the deploy log and the health endpoint to say what failed, where, and what to do
  So that I can fix production with a known procedure instead of guesswork

  Each scenario is an entry of the deployment guide's troubleshooting section,
  seen from the deploy pipeline (`pgship deploy`) and the release's health
  endpoint (`pgship serve`).

  @critical @allure.label.story:Migration_fails_during_deployment @allure.link.docs:migration-fails-during-deployment
  Scenario: The deploy log names the failed stage, the file, the line and the database's reason
    Given a database at release 2
    And release 4, in which migration 003 fails
    When the deploy pipeline ships release 4
    Then the pipeline fails at the migrate stage with exit code 1
    And the deploy log names the file of migration 003, the line that failed and the database's reason
    And the deploy log says the failed migration was rolled back and the release was not started

  @critical @allure.label.story:Migration_fails_during_deployment @allure.link.docs:migration-fails-during-deployment
  Scenario: After the failed migration is corrected, deploying again succeeds
    Given a database at release 2
    And release 4, in which migration 003 fails
    And a deploy pipeline of release 4 has failed on it
    When the author corrects migration 003
    And the deploy pipeline ships release 4 again
    Then the pipeline succeeds
    And the database is at release 4
    And the release's health endpoint reports release 4 as healthy

  @critical @allure.label.story:Deployment_stuck_waiting_for_the_database @allure.link.docs:deployment-stuck-waiting-for-the-database
  Scenario: A deploy waiting for the database says so while it waits, then gives up with exit code 3
    Given a database at release 3
    And the database does not accept connections
    When the deploy pipeline ships release 5, waiting at most 3 seconds for the database
    Then the deploy log reports that the database is not ready and how long it keeps trying
    And the pipeline fails at the wait stage with exit code 3
    And the deploy log says it could not connect to the database after waiting, and what to check

  @critical @allure.label.story:Deployment_stuck_waiting_for_the_database @allure.link.docs:deployment-stuck-waiting-for-the-database
  Scenario: A wrong database password fails the deploy at once with exit code 6, which is not worth retrying
    A CI wrapper retries exit code 3 (the database may still be starting);
    a password the server refuses will never work, however long it waits.

    Given a database at release 3
    And the deploy's database URL has a wrong password
    When the deploy pipeline ships release 5, waiting at most 30 seconds for the database
    Then the pipeline fails at the wait stage with exit code 6
    And the deploy log says the password was refused and that waiting will not help, without waiting

  @critical @allure.label.story:Schema_out_of_sync @allure.link.docs:schema-out-of-sync
  Scenario: `/health/database` shows which migrations the database is missing, until they are applied
    The release's code runs, but its migrations did not: the deploy's
    migrate stage was skipped or failed.

    Given a database at release 2
    And the health endpoint of release 5 is running
    Then /health/database answers 503 with status "fail"
    And the details list migrations 003, 005 and 010 as pending
    And the details show the latest applied migration is 002 while the release ships up to 010
    When release 5 is deployed
    Then /health/database answers 200 with status "pass"
