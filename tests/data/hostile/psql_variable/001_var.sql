CREATE TABLE t (id int);
INSERT INTO t VALUES (:'tenant_id');
