-- Finding traces: a word index over each trace's tool name, input, output and error, and
-- the failed ones of a chat or session listed without reading the others. Words are runs
-- of letters and digits, as SQLite's index and `search_words` split them (Postgres's own
-- parser would keep `src/main.rs` whole), and JSON's line and tab escapes count as spaces.
CREATE INDEX tool_traces_text ON tool_traces USING GIN (to_tsvector('simple', regexp_replace(
    tool_name || ' ' || input::text || ' ' || coalesce(output::text, '') || ' ' || coalesce(error, ''),
    '\\[nrt]|[^[:alnum:]]+', ' ', 'g')));
CREATE INDEX tool_traces_chat_failed ON tool_traces (chat_id, turn_number, started_at, id)
    WHERE outcome IN ('error', 'timeout');
CREATE INDEX tool_traces_session_failed ON tool_traces (session_id, turn_number, started_at, id)
    WHERE outcome IN ('error', 'timeout');
