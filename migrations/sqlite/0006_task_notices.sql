-- A finished background task is told to its chat as a `notice` message, which names the
-- task; a chat may turn off waking its agent for such notices.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt (nothing references it).
CREATE TABLE messages_new (
    id           TEXT PRIMARY KEY NOT NULL,
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'notice')),
    content      TEXT NOT NULL,
    attachments  TEXT NOT NULL DEFAULT '[]',
    turn_number  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    task_id      TEXT
);
INSERT INTO messages_new (id, chat_id, role, content, attachments, turn_number, created_at)
    SELECT id, chat_id, role, content, attachments, turn_number, created_at FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
CREATE INDEX messages_chat ON messages (chat_id, created_at, id);

ALTER TABLE chats ADD COLUMN auto_continue INTEGER NOT NULL DEFAULT 1;
CREATE INDEX tasks_untold ON tasks (chat_id, finished_at)
    WHERE chat_id IS NOT NULL AND notified_at IS NULL;
