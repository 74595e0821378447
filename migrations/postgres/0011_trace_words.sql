-- A trace's words are worked out by Baton as it writes the trace (`baton_store::trace_words`:
-- the values of its input and output, not their keys, each word once) and kept beside it;
-- the word index is built from them. Deriving them here, from the whole JSON text through
-- a regular expression, cost three times what the rest of the row's insert does.
-- Traces written before keep the words of their whole text, keys included.
ALTER TABLE tool_traces ADD COLUMN words TEXT NOT NULL DEFAULT '';
UPDATE tool_traces SET words = lower(regexp_replace(
    tool_name || ' ' || input::text || ' ' || coalesce(output::text, '') || ' ' || coalesce(error, ''),
    '\\[nrt]|[^[:alnum:]]+', ' ', 'g'));
DROP INDEX tool_traces_text_finished;
CREATE INDEX tool_traces_words ON tool_traces USING GIN (to_tsvector('simple', words))
    WHERE outcome <> 'running';
