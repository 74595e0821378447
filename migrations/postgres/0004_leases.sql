-- Ownership of long-running work by one instance at a time (several instances may share
-- this database): the holder, its fencing epoch and when its lease lapses, on runs and
-- on chats' agent sessions; a control request a non-holder leaves for the holder; the
-- epoch a journal entry was written under; the live instances' heartbeats.
ALTER TABLE workflow_runs ADD COLUMN owner TEXT;
ALTER TABLE workflow_runs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflow_runs ADD COLUMN lease_expires_at TIMESTAMPTZ;
ALTER TABLE workflow_runs ADD COLUMN control TEXT CHECK (control IN ('cancel', 'pause', 'resume'));
CREATE INDEX workflow_runs_owner ON workflow_runs (owner) WHERE owner IS NOT NULL;
ALTER TABLE workflow_agents ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_sessions ADD COLUMN owner TEXT;
ALTER TABLE agent_sessions ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_sessions ADD COLUMN lease_expires_at TIMESTAMPTZ;
ALTER TABLE agent_sessions ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX agent_sessions_owner ON agent_sessions (owner) WHERE owner IS NOT NULL;
CREATE TABLE instances (
    id          TEXT PRIMARY KEY,
    started_at  TIMESTAMPTZ NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
