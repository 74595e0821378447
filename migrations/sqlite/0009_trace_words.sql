-- A trace's words are worked out by Baton as it writes the trace (`baton_store::trace_words`:
-- the values of its input and output, not their keys, each word once) and kept beside it;
-- the word index takes them instead of the trace's whole JSON text.
-- The index keeps what it holds of traces written before. Of those, only running ones are
-- written again (their finish re-indexes their words), so only they get words here.
DROP TRIGGER tool_traces_text_insert;
DROP TRIGGER tool_traces_text_update;
ALTER TABLE tool_traces ADD COLUMN words TEXT NOT NULL DEFAULT '';
UPDATE tool_traces SET words =
    replace(replace(replace(tool_name || ' ' || input || ' ' || coalesce(output, '') || ' ' || coalesce(error, ''), '\n', ' '), '\t', ' '), '\r', ' ')
    WHERE outcome = 'running';
CREATE TRIGGER tool_traces_words_insert AFTER INSERT ON tool_traces BEGIN
    INSERT INTO trace_text (rowid, body) VALUES (new.rowid, new.words);
END;
CREATE TRIGGER tool_traces_words_update AFTER UPDATE OF words ON tool_traces BEGIN
    DELETE FROM trace_text WHERE rowid = old.rowid;
    INSERT INTO trace_text (rowid, body) VALUES (new.rowid, new.words);
END;
