-- The word index covers finished traces only: a trace is written when it starts and again
-- when it finishes, and its words (above all its input, a whole model request) were
-- indexed both times. Running traces are few, found through `tool_traces_running`.
DROP INDEX tool_traces_text;
CREATE INDEX tool_traces_text_finished ON tool_traces USING GIN (to_tsvector('simple', regexp_replace(
    tool_name || ' ' || input::text || ' ' || coalesce(output::text, '') || ' ' || coalesce(error, ''),
    '\\[nrt]|[^[:alnum:]]+', ' ', 'g')))
    WHERE outcome <> 'running';
