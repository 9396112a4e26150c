-- pgship:no-transactions
CREATE TABLE t (id int);
