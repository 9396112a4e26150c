@allure.label.epic:Writing_migrations
Feature: Creating a new migration
  As a developer about to change the schema
  I want pgship to create the next migration file for me and check it before I commit
  So that my change gets the right version, follows the team's template and does not lock production

  @normal @allure.label.story:pgship_new @allure.link.docs:creating-new-migrations
  Scenario: `pgship new` creates the next-numbered file from the project's template
    Given release 5 is shipped
    And the project's migration template is in the migrations folder
    When I run `pgship new add_order_notes`
    Then the command exits with code 0
    And the migrations folder has a new file 011_add_order_notes.sql
    And the new file is the project's template with its version and name filled in

  @normal @allure.label.story:pgship_verify @allure.link.docs:testing-locally
  Scenario: A new migration, once written, passes `pgship verify`
    Given release 5 is shipped
    And the project's migration template is in the migrations folder
    And a new migration created with `pgship new add_order_notes`
    And its change written into it
    When I run `pgship verify`
    Then the command exits with code 0
    And the output says "6 migration files are valid (newest 011)"

  @normal @allure.label.story:pgship_verify @allure.link.docs:testing-locally
  Scenario: A new migration left as the bare template fails `pgship verify`, naming the file
    Given release 5 is shipped
    And the project's migration template is in the migrations folder
    And a new migration created with `pgship new add_order_notes`
    When I run `pgship verify`
    Then the command exits with code 2
    And the output says "011_add_order_notes.sql: the file has no SQL statements"

  @critical @allure.label.story:Linting @allure.link.docs:linting
  Scenario Outline: An operation that would block a busy table is flagged by the lint, with file and line
    `pgship plan` lints the pending files with squawk. Findings are warnings
    (exit 0) unless --lint-strict is given.

    Given a database at release 5
    And the next release adds <migration>
    When I run `pgship plan`
    Then the command exits with code 0
    And the output flags <file> at line <line> with the rule <rule>

    Examples: Operations that block writes or break running code
      | migration                                                               | file                          | line | rule                              |
      | a migration that builds an index on orders the plain way                | 011_index_orders_by_total.sql | 1    | require-concurrent-index-creation |
      | a migration that adds a NOT NULL column without a default to customers | 011_add_customer_country.sql  | 2    | adding-required-field             |
