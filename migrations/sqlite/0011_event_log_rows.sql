-- The event log as a rowid table with its key in an index. Kept WITHOUT ROWID, its rows
-- sat in index pages, where SQLite keeps at most ~1 KB of a row on the page (a trace's
-- frame overflowed onto a page of its own) and appending splits pages in half: the log
-- took twice the pages its frames need, and every page is written to the WAL and again
-- at the checkpoint. A rowid table is appended to full pages.
CREATE TABLE events_by_row (
    topic  TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    body   TEXT NOT NULL
);
INSERT INTO events_by_row (topic, seq, kind, at, body)
    SELECT topic, seq, kind, at, body FROM events ORDER BY topic, seq;
DROP TABLE events;
ALTER TABLE events_by_row RENAME TO events;
CREATE UNIQUE INDEX events_topic_seq ON events (topic, seq);
-- A run's traces and sessions have no chat, and a chat's no run: indexes that hold only
-- the rows that have one are not written for the others. A lookup by `chat_id = ?` or
-- `run_id = ?` still uses them (the condition implies the index's).
DROP INDEX tool_traces_chat_order;
CREATE INDEX tool_traces_chat_order ON tool_traces (chat_id, turn_number, started_at, id)
    WHERE chat_id IS NOT NULL;
DROP INDEX tool_traces_run;
CREATE INDEX tool_traces_run ON tool_traces (run_id, started_at) WHERE run_id IS NOT NULL;
DROP INDEX agent_sessions_chat;
CREATE INDEX agent_sessions_chat ON agent_sessions (chat_id, created_at) WHERE chat_id IS NOT NULL;
DROP INDEX agent_sessions_run;
CREATE INDEX agent_sessions_run ON agent_sessions (run_id) WHERE run_id IS NOT NULL;
