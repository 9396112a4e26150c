-- Customers get an e-mail address, unique whatever its case.
ALTER TABLE customers ADD COLUMN email text;
CREATE UNIQUE INDEX customers_email_key ON customers (lower(email));
