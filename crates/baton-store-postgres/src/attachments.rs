use baton_core::{time, Attachment, AttachmentId, Message, NewAttachment, Timestamp};
use baton_store::StoreResult;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::db;

const COLUMNS: &str = "id, sha256, mime, size, width, height, created_at";

fn attachment_from(row: &PgRow) -> StoreResult<Attachment> {
    Ok(Attachment {
        id: AttachmentId(row.try_get("id").map_err(db)?),
        mime: row.try_get("mime").map_err(db)?,
        size: row.try_get("size").map_err(db)?,
        sha256: row.try_get("sha256").map_err(db)?,
        width: row.try_get("width").map_err(db)?,
        height: row.try_get("height").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

/// Stores the upload, or restarts the orphan clock of the attachment holding the same
/// bytes and answers it.
pub(crate) async fn put(pool: &PgPool, new: &NewAttachment) -> StoreResult<Attachment> {
    let a = &new.attachment;
    let row = sqlx::query(&format!(
        "INSERT INTO attachments (id, sha256, mime, size, width, height, bytes, thumbnail,
             created_at, uploaded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (sha256) DO UPDATE SET uploaded_at = EXCLUDED.uploaded_at
         RETURNING {COLUMNS}"
    ))
    .bind(a.id.0)
    .bind(&a.sha256)
    .bind(&a.mime)
    .bind(a.size)
    .bind(a.width)
    .bind(a.height)
    .bind(&new.bytes)
    .bind(&new.thumbnail)
    .bind(a.created_at)
    .bind(time::now())
    .fetch_one(pool)
    .await
    .map_err(db)?;
    attachment_from(&row)
}

pub(crate) async fn get(pool: &PgPool, id: AttachmentId) -> StoreResult<Option<Attachment>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM attachments WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(attachment_from)
        .transpose()
}

pub(crate) async fn bytes(
    pool: &PgPool,
    id: AttachmentId,
    thumbnail: bool,
) -> StoreResult<Option<Vec<u8>>> {
    let col = if thumbnail { "thumbnail" } else { "bytes" };
    sqlx::query_scalar(&format!("SELECT {col} FROM attachments WHERE id = $1"))
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)
}

pub(crate) async fn delete_orphans(pool: &PgPool, before: Timestamp) -> StoreResult<u64> {
    sqlx::query("DELETE FROM attachments WHERE referenced_at IS NULL AND uploaded_at < $1")
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db)
}

/// Marks the attachments `m` names as referenced, so they are never orphans.
pub(crate) async fn mark_referenced(
    tx: &mut Transaction<'_, Postgres>,
    m: &Message,
) -> StoreResult<()> {
    if m.attachments.is_empty() {
        return Ok(());
    }
    let ids: Vec<uuid::Uuid> = m.attachments.iter().map(|a| a.0).collect();
    sqlx::query(
        "UPDATE attachments SET referenced_at = $1 WHERE referenced_at IS NULL AND id = ANY($2)",
    )
    .bind(m.created_at)
    .bind(&ids)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}

pub(crate) async fn description(
    pool: &PgPool,
    sha256: &str,
    model: &str,
) -> StoreResult<Option<String>> {
    sqlx::query_scalar(
        "SELECT description FROM image_descriptions WHERE sha256 = $1 AND model = $2",
    )
    .bind(sha256)
    .bind(model)
    .fetch_optional(pool)
    .await
    .map_err(db)
}

pub(crate) async fn put_description(
    pool: &PgPool,
    sha256: &str,
    model: &str,
    description: &str,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO image_descriptions (sha256, model, description, created_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha256, model) DO UPDATE SET description = EXCLUDED.description",
    )
    .bind(sha256)
    .bind(model)
    .bind(crate::traces::no_nul(description))
    .bind(time::now())
    .execute(pool)
    .await
    .map(drop)
    .map_err(db)
}
