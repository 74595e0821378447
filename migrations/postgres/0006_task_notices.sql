-- A finished background task is told to its chat as a `notice` message, which names the
-- task; a chat may turn off waking its agent for such notices.
ALTER TABLE messages DROP CONSTRAINT messages_role_check;
ALTER TABLE messages ADD CONSTRAINT messages_role_check
    CHECK (role IN ('user', 'assistant', 'notice'));
ALTER TABLE messages ADD COLUMN task_id UUID;

ALTER TABLE chats ADD COLUMN auto_continue BOOLEAN NOT NULL DEFAULT TRUE;
CREATE INDEX tasks_untold ON tasks (chat_id, finished_at)
    WHERE chat_id IS NOT NULL AND notified_at IS NULL;
