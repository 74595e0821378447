-- Narrator lines of a run, and the journal's start order and cache flag.
ALTER TABLE workflow_runs ADD COLUMN log JSONB NOT NULL DEFAULT '[]';
ALTER TABLE workflow_agents ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workflow_agents ADD COLUMN cached BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX workflow_agents_order ON workflow_agents (run_id, seq);
