-- Baton schema, Postgres.

CREATE TABLE chats (
    id          UUID PRIMARY KEY,
    title       TEXT NOT NULL,
    workspace   TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX chats_created ON chats (created_at DESC, id DESC);

CREATE TABLE attachments (
    id          UUID PRIMARY KEY,
    chat_id     UUID REFERENCES chats (id) ON DELETE SET NULL,
    mime        TEXT NOT NULL,
    size        BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    width       INTEGER,
    height      INTEGER,
    path        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_sha256 ON attachments (sha256);

CREATE TABLE messages (
    id           UUID PRIMARY KEY,
    chat_id      UUID NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content      TEXT NOT NULL,
    attachments  JSONB NOT NULL DEFAULT '[]',
    turn_number  BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_chat ON messages (chat_id, created_at, id);

CREATE TABLE agent_sessions (
    id           UUID PRIMARY KEY,
    chat_id      UUID REFERENCES chats (id) ON DELETE CASCADE,
    run_id       UUID,
    parent_id    UUID,
    provider     TEXT NOT NULL,
    model        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN
                   ('idle', 'running', 'awaiting_input', 'completed', 'failed', 'cancelled')),
    turn_number  BIGINT NOT NULL DEFAULT 0,
    state        JSONB NOT NULL DEFAULT '{}',
    error        TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX agent_sessions_chat ON agent_sessions (chat_id, created_at);
CREATE INDEX agent_sessions_run ON agent_sessions (run_id);
CREATE INDEX agent_sessions_status ON agent_sessions (status);

CREATE TABLE tool_traces (
    id                  UUID PRIMARY KEY,
    session_id          UUID,
    chat_id             UUID,
    run_id              UUID,
    parent_id           UUID,
    turn_number         BIGINT NOT NULL,
    kind                TEXT NOT NULL CHECK (kind IN ('llm', 'tool')),
    tool_name           TEXT NOT NULL,
    input               JSONB NOT NULL,
    output              JSONB,
    started_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    latency_ms          BIGINT,
    tokens_used         BIGINT,
    input_tokens        BIGINT,
    output_tokens       BIGINT,
    cache_tokens        BIGINT,
    cache_write_tokens  BIGINT,
    reasoning_tokens    BIGINT,
    cost_usd            DOUBLE PRECISION,
    error               TEXT,
    outcome             TEXT NOT NULL CHECK (outcome IN
                          ('running', 'ok', 'error', 'cancelled', 'timeout')),
    meta                JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX tool_traces_chat_order ON tool_traces (chat_id, turn_number, started_at, id);
CREATE INDEX tool_traces_session ON tool_traces (session_id, turn_number, started_at);
CREATE INDEX tool_traces_run ON tool_traces (run_id, started_at);
CREATE INDEX tool_traces_running ON tool_traces (outcome) WHERE outcome = 'running';

CREATE TABLE tasks (
    id            UUID PRIMARY KEY,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'completed', 'failed', 'cancelled')),
    prompt        TEXT NOT NULL,
    model         TEXT,
    workspace     TEXT,
    parent_session_id UUID,
    session_id    UUID,
    progress      JSONB NOT NULL DEFAULT '{}',
    result        JSONB,
    error         TEXT,
    claimed_by    TEXT,
    heartbeat_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX tasks_status ON tasks (status, created_at);

CREATE TABLE workflow_runs (
    id             UUID PRIMARY KEY,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN
                     ('awaiting_approval', 'queued', 'running', 'paused', 'completed', 'failed', 'cancelled')),
    source         TEXT NOT NULL,
    script         TEXT NOT NULL,
    args           JSONB,
    options        JSONB NOT NULL DEFAULT '{}',
    result         JSONB,
    error          TEXT,
    totals         JSONB NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX workflow_runs_list ON workflow_runs (created_at DESC, id DESC);
CREATE INDEX workflow_runs_status ON workflow_runs (status, created_at DESC);

CREATE TABLE workflow_agents (
    run_id       UUID NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    label        TEXT,
    phase        TEXT,
    status       TEXT NOT NULL,
    session_id   UUID,
    prompt       TEXT NOT NULL,
    result       JSONB,
    error        TEXT,
    input_tokens  BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd     DOUBLE PRECISION NOT NULL DEFAULT 0,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE events (
    topic  TEXT NOT NULL,
    seq    BIGINT NOT NULL,
    kind   TEXT NOT NULL,
    at     TIMESTAMPTZ NOT NULL,
    body   JSONB NOT NULL,
    PRIMARY KEY (topic, seq)
);

CREATE TABLE event_topics (
    topic       TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL,
    first_kept  BIGINT NOT NULL
);
