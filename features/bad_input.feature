@allure.label.epic:Safe_schema_changes
Feature: Bad migration files are refused before the database is touched
  As an on-call engineer
  I want a release with a broken migration file to be refused before anything runs
  So that a mistake in the files never leaves production half-migrated, and the message says how to fix it

  The old shell runner skipped one of two files sharing a version, and psql
  without ON_ERROR_STOP reported success for a file that failed. pgship first
  reads and parses every pending file: if any is wrong, nothing is run, not
  even the tracking table is created, and the exit code is 2.

  @critical @allure.label.story:Bad_input @allure.link.docs:bad-input-is-refused
  Scenario Outline: A release with <problem> is refused before the database is touched
    Given a fresh database
    And release 3 is shipped
    And the release has <problem>
    When release 3 is deployed
    Then the deploy is refused with exit code 2
    And the error names <file> and says how to fix it: "<fix>"
    And the error points at <where>
    And the database is still empty: no tracking table, no schema objects

    Examples: Files that cannot be told apart or read
      | problem                                       | file                                        | where               | fix                                 |
      | two migrations with version 003               | 003_create_orders.sql, 003_orders_again.sql | no particular line  | Give each migration its own version |
      | a migration numbered 3 beside 003             | 003_create_orders.sql, 3_orders_again.sql   | no particular line  | Give each migration its own version |
      | a file named add_order_notes.sql              | add_order_notes.sql                         | no particular line  | Name migration files                |
      | a migration saved as Latin-1 instead of UTF-8 | 011_add_order_notes.sql                     | line 1              | Save the file as UTF-8              |
      | no migrations directory at all                | migrations                                  | no particular line  | --migrations-dir                    |
      | a migration numbered with Arabic-Indic digits | ٠١١_add_order_notes.sql                     | no particular line  | Name migration files                |

    Examples: Files pgship cannot run as one migration
      | problem                                                                         | file                          | where              | fix                                                 |
      | an empty migration file                                                         | 011_add_order_notes.sql       | no particular line | Write the migration's SQL in it, or delete the file |
      | a migration with a psql meta-command                                            | 011_add_order_notes.sql       | line 2             | Write the SQL itself                                |
      | a migration with a COMMIT in the middle                                         | 011_add_order_notes.sql       | line 2             | Split the file into two migrations                  |
      | a migration that builds an index concurrently without the no-transaction marker | 011_index_orders_by_total.sql | line 1             | -- pgship:no-transaction                            |
      | a migration with the no-transaction marker below its first line                | 011_index_orders_by_total.sql | line 2             | Move `-- pgship:no-transaction` to the file's first line |
      | a no-transaction migration that locks a table                                   | 011_index_orders_by_total.sql | line 3             | Move it to a migration that runs in a transaction   |
