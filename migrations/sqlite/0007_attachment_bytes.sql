-- Attachments keep their bytes in the store, so any instance sharing it can serve them,
-- once per SHA-256. The first table (a path on one machine's disk) was never written to.
DROP TABLE attachments;
CREATE TABLE attachments (
    id            TEXT PRIMARY KEY NOT NULL,
    sha256        TEXT NOT NULL UNIQUE,
    mime          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    bytes         BLOB NOT NULL,
    thumbnail     BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    -- The last upload of these bytes: an orphan's age counts from it.
    uploaded_at   INTEGER NOT NULL,
    -- Set when a message first names the attachment; orphans have none.
    referenced_at INTEGER
);
CREATE INDEX attachments_orphans ON attachments (uploaded_at) WHERE referenced_at IS NULL;

-- What a vision model said an image shows, for text-only models; once per image and model.
CREATE TABLE image_descriptions (
    sha256      TEXT NOT NULL,
    model       TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (sha256, model)
);
