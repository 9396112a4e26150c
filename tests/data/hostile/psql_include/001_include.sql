CREATE TABLE t (id int);
\i 002_other.sql
