-- Baton schema, SQLite. Timestamps are integer microseconds since the Unix epoch;
-- ids are hyphenated lowercase UUIDv7 text (which sorts like the UUID bytes);
-- JSON is stored as text.

CREATE TABLE chats (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL,
    workspace   TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX chats_created ON chats (created_at DESC, id DESC);

CREATE TABLE attachments (
    id          TEXT PRIMARY KEY NOT NULL,
    chat_id     TEXT REFERENCES chats (id) ON DELETE SET NULL,
    mime        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    width       INTEGER,
    height      INTEGER,
    path        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX attachments_sha256 ON attachments (sha256);

CREATE TABLE messages (
    id           TEXT PRIMARY KEY NOT NULL,
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content      TEXT NOT NULL,
    attachments  TEXT NOT NULL DEFAULT '[]',
    turn_number  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX messages_chat ON messages (chat_id, created_at, id);

CREATE TABLE agent_sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    chat_id      TEXT REFERENCES chats (id) ON DELETE CASCADE,
    run_id       TEXT,
    parent_id    TEXT,
    provider     TEXT NOT NULL,
    model        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN
                   ('idle', 'running', 'awaiting_input', 'completed', 'failed', 'cancelled')),
    turn_number  INTEGER NOT NULL DEFAULT 0,
    state        TEXT NOT NULL DEFAULT '{}',
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX agent_sessions_chat ON agent_sessions (chat_id, created_at);
CREATE INDEX agent_sessions_run ON agent_sessions (run_id);
CREATE INDEX agent_sessions_status ON agent_sessions (status);

CREATE TABLE tool_traces (
    id                  TEXT PRIMARY KEY NOT NULL,
    session_id          TEXT,
    chat_id             TEXT,
    run_id              TEXT,
    parent_id           TEXT,
    turn_number         INTEGER NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('llm', 'tool')),
    tool_name           TEXT NOT NULL,
    input               TEXT NOT NULL,
    output              TEXT,
    started_at          INTEGER NOT NULL,
    finished_at         INTEGER,
    latency_ms          INTEGER,
    tokens_used         INTEGER,
    input_tokens        INTEGER,
    output_tokens       INTEGER,
    cache_tokens        INTEGER,
    cache_write_tokens  INTEGER,
    reasoning_tokens    INTEGER,
    cost_usd            REAL,
    error               TEXT,
    outcome             TEXT NOT NULL CHECK (outcome IN
                          ('running', 'ok', 'error', 'cancelled', 'timeout')),
    meta                TEXT NOT NULL DEFAULT '{}'
);
-- The trace list's keyset order; without it a 10,000-trace chat sorts on every page.
CREATE INDEX tool_traces_chat_order ON tool_traces (chat_id, turn_number, started_at, id);
CREATE INDEX tool_traces_session ON tool_traces (session_id, turn_number, started_at);
CREATE INDEX tool_traces_run ON tool_traces (run_id, started_at);
CREATE INDEX tool_traces_running ON tool_traces (outcome) WHERE outcome = 'running';

CREATE TABLE tasks (
    id            TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'completed', 'failed', 'cancelled')),
    prompt        TEXT NOT NULL,
    model         TEXT,
    workspace     TEXT,
    parent_session_id TEXT,
    session_id    TEXT,
    progress      TEXT NOT NULL DEFAULT '{}',
    result        TEXT,
    error         TEXT,
    claimed_by    TEXT,
    heartbeat_at  INTEGER,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER
);
CREATE INDEX tasks_status ON tasks (status, created_at);

CREATE TABLE workflow_runs (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN
                     ('awaiting_approval', 'queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    source         TEXT NOT NULL,
    script         TEXT NOT NULL,
    args           TEXT,
    options        TEXT NOT NULL DEFAULT '{}',
    result         TEXT,
    error          TEXT,
    totals         TEXT NOT NULL DEFAULT '{}',
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX workflow_runs_list ON workflow_runs (created_at DESC, id DESC);
CREATE INDEX workflow_runs_status ON workflow_runs (status, created_at DESC);

-- The run journal: one row per agent() call, keyed by its content key.
CREATE TABLE workflow_agents (
    run_id       TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    label        TEXT,
    phase        TEXT,
    status       TEXT NOT NULL,
    session_id   TEXT,
    prompt       TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd     REAL NOT NULL DEFAULT 0,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    PRIMARY KEY (run_id, key)
);

-- The event log behind WebSocket replay.
CREATE TABLE events (
    topic  TEXT NOT NULL,
    seq    INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    body   TEXT NOT NULL,
    PRIMARY KEY (topic, seq)
) WITHOUT ROWID;

-- Per-topic sequence counter; survives pruning so that seq never goes backwards.
CREATE TABLE event_topics (
    topic       TEXT PRIMARY KEY NOT NULL,
    last_seq    INTEGER NOT NULL,
    first_kept  INTEGER NOT NULL
) WITHOUT ROWID;
