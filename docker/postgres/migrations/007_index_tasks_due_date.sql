-- pgship:no-transaction
-- 007_index_tasks_due_date: the overdue-tasks query scans by due date. The table is
-- live in production, so build the index without blocking writes. CONCURRENTLY cannot
-- run inside a transaction, hence the directive above: pgship runs this file statement
-- by statement. IF NOT EXISTS makes a rerun after a failure safe.
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_open_due_date_idx
    ON tasks (due_date)
    WHERE completed_at IS NULL;
