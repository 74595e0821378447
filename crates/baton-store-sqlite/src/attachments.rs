use baton_core::{time, Attachment, AttachmentId, Message, NewAttachment, Timestamp};
use baton_store::StoreResult;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::db;
use crate::plan::{Plan, Stmt};
use crate::rows::{id_text, ts, Cols};

const COLUMNS: &str = "id, sha256, mime, size, width, height, created_at";

fn attachment_from(row: &SqliteRow) -> StoreResult<Attachment> {
    let c = Cols::new(row, "attachments");
    Ok(Attachment {
        id: AttachmentId(c.uuid("id")?),
        mime: c.text("mime")?,
        size: c.int("size")?,
        sha256: c.text("sha256")?,
        width: c.int("width")?,
        height: c.int("height")?,
        created_at: c.time("created_at")?,
    })
}

/// Stores the upload, or restarts the orphan clock of the attachment holding the same
/// bytes and answers it.
pub(crate) fn put(new: &NewAttachment) -> Plan<Attachment> {
    let a = &new.attachment;
    let now = ts(&time::now());
    let stmt = Stmt::new(
        format!(
            "INSERT INTO attachments (id, sha256, mime, size, width, height, bytes, thumbnail,
                 created_at, uploaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (sha256) DO UPDATE SET uploaded_at = excluded.uploaded_at
             RETURNING {COLUMNS}"
        ),
        vec![
            id_text(a.id.0).into(),
            (&a.sha256).into(),
            (&a.mime).into(),
            a.size.into(),
            a.width.into(),
            a.height.into(),
            new.bytes.clone().into(),
            new.thumbnail.clone().into(),
            ts(&a.created_at).into(),
            now.into(),
        ],
    );
    Plan::new(vec![stmt], |out| {
        let row = out[0]
            .rows
            .first()
            .ok_or(baton_store::StoreError::NotFound("attachment"))?;
        attachment_from(row)
    })
}

pub(crate) async fn get(pool: &SqlitePool, id: AttachmentId) -> StoreResult<Option<Attachment>> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM attachments WHERE id = ?1"))
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(attachment_from)
        .transpose()
}

pub(crate) async fn bytes(
    pool: &SqlitePool,
    id: AttachmentId,
    thumbnail: bool,
) -> StoreResult<Option<Vec<u8>>> {
    let col = if thumbnail { "thumbnail" } else { "bytes" };
    let row = sqlx::query(&format!("SELECT {col} FROM attachments WHERE id = ?1"))
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    row.map(|r| r.try_get::<Vec<u8>, _>(0).map_err(db))
        .transpose()
}

pub(crate) fn delete_orphans(before: &Timestamp) -> Plan<u64> {
    Plan::new(
        vec![Stmt::new(
            "DELETE FROM attachments WHERE referenced_at IS NULL AND uploaded_at < ?1",
            vec![ts(before).into()],
        )],
        |out| Ok(out[0].changes),
    )
}

/// Marks the attachments `m` names as referenced, so they are never orphans.
pub(crate) fn referenced(m: &Message) -> Option<Stmt> {
    if m.attachments.is_empty() {
        return None;
    }
    let ids: Vec<String> = m.attachments.iter().map(|a| id_text(a.0)).collect();
    Some(Stmt::new(
        "UPDATE attachments SET referenced_at = ?1
         WHERE referenced_at IS NULL AND id IN (SELECT value FROM json_each(?2))",
        vec![
            ts(&m.created_at).into(),
            serde_json::to_string(&ids).expect("ids serialize").into(),
        ],
    ))
}

pub(crate) async fn description(
    pool: &SqlitePool,
    sha256: &str,
    model: &str,
) -> StoreResult<Option<String>> {
    sqlx::query_scalar(
        "SELECT description FROM image_descriptions WHERE sha256 = ?1 AND model = ?2",
    )
    .bind(sha256)
    .bind(model)
    .fetch_optional(pool)
    .await
    .map_err(db)
}

pub(crate) fn put_description(sha256: &str, model: &str, description: &str) -> Plan<()> {
    Plan::exec(vec![Stmt::new(
        "INSERT INTO image_descriptions (sha256, model, description, created_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (sha256, model) DO UPDATE SET description = excluded.description",
        vec![
            sha256.into(),
            model.into(),
            description.into(),
            ts(&time::now()).into(),
        ],
    )])
}
