CREATE TABLE t (id int, name text);
COPY t (id, name) FROM stdin;
1	one
2	two
\.
