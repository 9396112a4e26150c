-- 006_open_tasks_view: what the dashboard lists, so the query lives next to the schema.
CREATE VIEW open_tasks AS
SELECT t.id,
       t.household_id,
       t.title,
       t.points,
       t.due_date,
       u.display_name AS assignee,
       t.due_date < current_date AS overdue
  FROM tasks t
  LEFT JOIN users u ON u.id = t.assignee_id
 WHERE t.completed_at IS NULL;
