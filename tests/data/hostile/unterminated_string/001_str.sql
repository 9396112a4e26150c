INSERT INTO t VALUES ('it''s fine);
CREATE TABLE u (id int);
