-- Frame bodies are written once, read back whole and never queried inside: `json` keeps
-- their text as sent, where `jsonb` took them apart into a binary form on every insert
-- (the larger part of the server's work per frame).
ALTER TABLE events ALTER COLUMN body TYPE JSON USING body::json;
