-- System prompts, each kept once under the hash of its text: every agent of a fan-out
-- shares one, and a session's state names it instead of carrying ~450 bytes of it.
CREATE TABLE prompts (
    hash TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
