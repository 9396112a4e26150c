-- Orders belong to a customer.
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    total_cents integer NOT NULL CHECK (total_cents >= 0),
    placed_at timestamptz NOT NULL DEFAULT now()
);
-- The mistake: orders have no status column, so this statement fails
-- after the table above was created; none of this file may remain.
CREATE INDEX orders_status_idx ON orders (status);
