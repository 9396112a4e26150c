-- café
CREATE TABLE t (id int);
