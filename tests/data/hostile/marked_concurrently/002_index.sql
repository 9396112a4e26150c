-- pgship:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id_idx ON t (id);
