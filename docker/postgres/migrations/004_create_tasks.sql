-- 004_create_tasks: chores, optionally assigned, optionally due, worth some points.
CREATE TABLE tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    household_id  bigint      NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    title         text        NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    assignee_id   bigint      REFERENCES users (id) ON DELETE SET NULL,
    points        integer     NOT NULL DEFAULT 10 CHECK (points >= 0),
    due_date      date,
    completed_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tasks_household_id_idx ON tasks (household_id);
