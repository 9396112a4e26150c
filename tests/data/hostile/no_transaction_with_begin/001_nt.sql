-- pgship:no-transaction
BEGIN;
CREATE TABLE t (id int);
COMMIT;
