-- Version 004 was abandoned before release: versions may have gaps.
CREATE INDEX orders_customer_placed_idx ON orders (customer_id, placed_at);
