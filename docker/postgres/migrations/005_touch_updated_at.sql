-- 005_touch_updated_at: keep updated_at current on every UPDATE, in one place.
-- Written the way the old shell runner expected (its own BEGIN/COMMIT); pgship runs
-- the body in its own transaction and ignores the wrapper.
BEGIN;

CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- a COMMIT; written here would be part of the function text, not of the migration
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER households_touch_updated_at BEFORE UPDATE ON households
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER users_touch_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER tasks_touch_updated_at BEFORE UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();

COMMIT;
