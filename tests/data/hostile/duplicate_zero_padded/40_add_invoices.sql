CREATE TABLE invoices (id int);
