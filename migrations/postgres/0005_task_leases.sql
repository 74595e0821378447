-- Background tasks are claimed and leased like runs and chats' sessions; a task keeps
-- what its agent may do, which chat to tell when it ends, and whether it was told.
ALTER TABLE tasks ADD COLUMN label TEXT;
ALTER TABLE tasks ADD COLUMN capabilities JSONB NOT NULL DEFAULT '{}';
ALTER TABLE tasks ADD COLUMN tools JSONB;
ALTER TABLE tasks ADD COLUMN chat_id UUID;
ALTER TABLE tasks ADD COLUMN depth INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN notified_at TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN owner TEXT;
ALTER TABLE tasks ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN lease_expires_at TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX tasks_owner ON tasks (owner) WHERE owner IS NOT NULL;
CREATE INDEX tasks_parent ON tasks (parent_session_id) WHERE parent_session_id IS NOT NULL;
