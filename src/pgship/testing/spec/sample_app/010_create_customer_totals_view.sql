-- A reporting view over customers (002) and orders (003).
CREATE VIEW customer_totals AS
SELECT c.id, c.email, coalesce(sum(o.total_cents), 0) AS total_cents
FROM customers AS c
LEFT JOIN orders AS o ON o.customer_id = c.id
GROUP BY c.id, c.email;
