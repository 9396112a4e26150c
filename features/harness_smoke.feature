@allure.label.epic:Specification_harness
Feature: Harness smoke test
  As a developer of pgship's specification
  I want every scenario to start from its own empty database
  So that scenarios never depend on each other

  @allure.label.story:Isolation @critical @allure.link.docs:running-the-specification
  Scenario: A scenario starts with an empty database
    Given a fresh database
    Then the database has no tables

  Rule: What one scenario creates, the next never sees

    Scenario: A scenario creates a table
      Given a fresh database
      When a table "leftover" is created
      Then the database has the table "leftover"

    Scenario: The next scenario does not see it
      Then the database has no tables
