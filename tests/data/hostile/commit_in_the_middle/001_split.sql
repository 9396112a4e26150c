CREATE TABLE t (id int);
COMMIT;
CREATE TABLE u (id int);
