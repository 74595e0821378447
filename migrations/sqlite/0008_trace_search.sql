-- Finding traces: a word index over each trace's tool name, input, output and error
-- (contentless, so the text is not stored twice), kept by triggers; and the failed ones
-- of a chat or session listed without reading the others.
-- Its rows are tool_traces' rowids, which stay put as long as the file is never VACUUMed.
-- JSON's line and tab escapes count as spaces, or `a\nb` would index as `a` and `nb`.
CREATE VIRTUAL TABLE trace_text USING fts5(body, content = '', contentless_delete = 1);
INSERT INTO trace_text (rowid, body)
    SELECT rowid, replace(replace(replace(tool_name || ' ' || input || ' ' || coalesce(output, '') || ' ' || coalesce(error, ''), '\n', ' '), '\t', ' '), '\r', ' ')
    FROM tool_traces;
CREATE TRIGGER tool_traces_text_insert AFTER INSERT ON tool_traces BEGIN
    INSERT INTO trace_text (rowid, body) VALUES (new.rowid,
        replace(replace(replace(new.tool_name || ' ' || new.input || ' ' || coalesce(new.output, '') || ' ' || coalesce(new.error, ''), '\n', ' '), '\t', ' '), '\r', ' '));
END;
CREATE TRIGGER tool_traces_text_update AFTER UPDATE OF output, error ON tool_traces BEGIN
    DELETE FROM trace_text WHERE rowid = old.rowid;
    INSERT INTO trace_text (rowid, body) VALUES (new.rowid,
        replace(replace(replace(new.tool_name || ' ' || new.input || ' ' || coalesce(new.output, '') || ' ' || coalesce(new.error, ''), '\n', ' '), '\t', ' '), '\r', ' '));
END;
CREATE TRIGGER tool_traces_text_delete AFTER DELETE ON tool_traces BEGIN
    DELETE FROM trace_text WHERE rowid = old.rowid;
END;
CREATE INDEX tool_traces_chat_failed ON tool_traces (chat_id, turn_number, started_at, id)
    WHERE outcome IN ('error', 'timeout');
CREATE INDEX tool_traces_session_failed ON tool_traces (session_id, turn_number, started_at, id)
    WHERE outcome IN ('error', 'timeout');
