-- What a chat's agents may do beyond reading: {"write": bool, "exec": bool}.
ALTER TABLE chats ADD COLUMN capabilities TEXT NOT NULL DEFAULT '{}';
