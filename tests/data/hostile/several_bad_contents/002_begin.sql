BEGIN;
CREATE TABLE u (id int);
