BEGIN;
CREATE TABLE t (id int);
