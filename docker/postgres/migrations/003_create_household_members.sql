-- 003_create_household_members: who belongs to which household, and with which role.
CREATE TABLE household_members (
    household_id  bigint      NOT NULL REFERENCES households (id) ON DELETE CASCADE,
    user_id       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role          text        NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member', 'child')),
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (household_id, user_id)
);

CREATE INDEX household_members_user_id_idx ON household_members (user_id);
