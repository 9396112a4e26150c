CREATE TABLE t (id int);
/* TODO
CREATE TABLE u (id int);
