\c other_database
CREATE TABLE t (id int);
