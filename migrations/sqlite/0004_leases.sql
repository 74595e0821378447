-- Ownership of long-running work (see the Postgres migration of the same name). On
-- SQLite one process holds the file, so leases record that process; the columns keep
-- both backends one behaviour.
ALTER TABLE workflow_runs ADD COLUMN owner TEXT;
ALTER TABLE workflow_runs ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflow_runs ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE workflow_runs ADD COLUMN control TEXT CHECK (control IN ('cancel', 'pause', 'resume'));
CREATE INDEX workflow_runs_owner ON workflow_runs (owner) WHERE owner IS NOT NULL;
ALTER TABLE workflow_agents ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_sessions ADD COLUMN owner TEXT;
ALTER TABLE agent_sessions ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_sessions ADD COLUMN lease_expires_at INTEGER;
ALTER TABLE agent_sessions ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
CREATE INDEX agent_sessions_owner ON agent_sessions (owner) WHERE owner IS NOT NULL;
CREATE TABLE instances (
    id          TEXT PRIMARY KEY NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
