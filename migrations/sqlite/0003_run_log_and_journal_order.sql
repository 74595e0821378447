-- Narrator lines of a run, and the journal's start order and cache flag.
ALTER TABLE workflow_runs ADD COLUMN log TEXT NOT NULL DEFAULT '[]';
ALTER TABLE workflow_agents ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflow_agents ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
CREATE INDEX workflow_agents_order ON workflow_agents (run_id, seq);
