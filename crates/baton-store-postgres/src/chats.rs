use baton_core::{
    time, AttachmentId, Chat, ChatId, ChatPatch, Message, MessageId, NewChat, NewMessage, Role,
    TaskId,
};
use baton_store::{StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::db;
use crate::traces::no_nul;

fn chat_from(row: &PgRow) -> StoreResult<Chat> {
    Ok(Chat {
        id: ChatId(row.try_get("id").map_err(db)?),
        title: row.try_get("title").map_err(db)?,
        workspace: row.try_get("workspace").map_err(db)?,
        capabilities: row
            .try_get::<Json<baton_core::Capabilities>, _>("capabilities")
            .map_err(|_| StoreError::corrupt("chats", "capabilities"))?
            .0,
        auto_continue: row.try_get("auto_continue").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

fn message_from(row: &PgRow) -> StoreResult<Message> {
    let role: String = row.try_get("role").map_err(db)?;
    let Json(attachments): Json<Vec<AttachmentId>> = row
        .try_get("attachments")
        .map_err(|_| StoreError::corrupt("messages", "attachments: not a list of ids"))?;
    Ok(Message {
        id: MessageId(row.try_get("id").map_err(db)?),
        chat_id: ChatId(row.try_get("chat_id").map_err(db)?),
        role: Role::parse(&role).ok_or_else(|| StoreError::corrupt("messages", "role"))?,
        content: row.try_get("content").map_err(db)?,
        attachments,
        turn_number: row.try_get("turn_number").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        task_id: row
            .try_get::<Option<uuid::Uuid>, _>("task_id")
            .map_err(db)?
            .map(TaskId),
    })
}

pub(crate) async fn create_chat(pool: &PgPool, new: NewChat) -> StoreResult<Chat> {
    let now = time::now();
    let chat = Chat {
        id: ChatId::new(),
        title: no_nul(&new.title),
        workspace: new.workspace.as_deref().map(no_nul),
        capabilities: new.capabilities,
        auto_continue: new.auto_continue,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO chats (id, title, workspace, capabilities, auto_continue, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(chat.id.0)
    .bind(&chat.title)
    .bind(&chat.workspace)
    .bind(Json(&chat.capabilities))
    .bind(chat.auto_continue)
    .bind(chat.created_at)
    .bind(chat.updated_at)
    .execute(pool)
    .await
    .map_err(db)?;
    Ok(chat)
}

pub(crate) async fn get_chat(pool: &PgPool, id: ChatId) -> StoreResult<Option<Chat>> {
    sqlx::query("SELECT * FROM chats WHERE id = $1")
        .bind(id.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(chat_from)
        .transpose()
}

pub(crate) async fn list_chats(
    pool: &PgPool,
    limit: u32,
    before: Option<ChatId>,
) -> StoreResult<Vec<Chat>> {
    let rows = match before {
        None => {
            sqlx::query("SELECT * FROM chats ORDER BY id DESC LIMIT $1")
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        }
        Some(id) => {
            sqlx::query("SELECT * FROM chats WHERE id < $1 ORDER BY id DESC LIMIT $2")
                .bind(id.0)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        }
    }
    .map_err(db)?;
    rows.iter().map(chat_from).collect()
}

pub(crate) async fn insert_message(pool: &PgPool, new: NewMessage) -> StoreResult<Message> {
    let msg = Message {
        id: MessageId::new(),
        chat_id: new.chat_id,
        role: new.role,
        content: no_nul(&new.content),
        attachments: new.attachments,
        turn_number: new.turn_number,
        created_at: time::now(),
        task_id: None,
    };
    let mut tx = pool.begin().await.map_err(db)?;
    let res = sqlx::query(
        "INSERT INTO messages (id, chat_id, role, content, attachments, turn_number, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(msg.id.0)
    .bind(msg.chat_id.0)
    .bind(msg.role.as_str())
    .bind(&msg.content)
    .bind(Json(&msg.attachments))
    .bind(msg.turn_number)
    .bind(msg.created_at)
    .execute(&mut *tx)
    .await;
    match res {
        Ok(_) => {
            crate::attachments::mark_referenced(&mut tx, &msg).await?;
            tx.commit().await.map_err(db)?;
            Ok(msg)
        }
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(StoreError::NotFound("chat"))
        }
        Err(e) => Err(db(e)),
    }
}

pub(crate) async fn list_messages(pool: &PgPool, chat: ChatId) -> StoreResult<Vec<Message>> {
    let rows = sqlx::query("SELECT * FROM messages WHERE chat_id = $1 ORDER BY created_at, id")
        .bind(chat.0)
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(message_from).collect()
}

pub(crate) async fn update_chat(
    pool: &PgPool,
    id: ChatId,
    patch: ChatPatch,
) -> StoreResult<Option<Chat>> {
    sqlx::query(
        "UPDATE chats SET title = COALESCE($2, title),
            auto_continue = COALESCE($3, auto_continue), updated_at = $4
         WHERE id = $1 RETURNING *",
    )
    .bind(id.0)
    .bind(patch.title.as_deref().map(no_nul))
    .bind(patch.auto_continue)
    .bind(time::now())
    .fetch_optional(pool)
    .await
    .map_err(db)?
    .as_ref()
    .map(chat_from)
    .transpose()
}

pub(crate) async fn page_messages(
    pool: &PgPool,
    chat: ChatId,
    at: baton_store::MessageAnchor,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    use baton_store::MessageAnchor;
    let anchor = |m: MessageId| async move {
        sqlx::query_scalar::<_, baton_core::Timestamp>(
            "SELECT created_at FROM messages WHERE id = $1 AND chat_id = $2",
        )
        .bind(m.0)
        .bind(chat.0)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("message"))
    };
    let limit = i64::from(limit);
    let rows = match at {
        MessageAnchor::Newest => {
            sqlx::query(
                "SELECT * FROM messages WHERE chat_id = $1
                 ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(chat.0)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        MessageAnchor::After(m) => {
            let t = anchor(m).await?;
            sqlx::query(
                "SELECT * FROM messages WHERE chat_id = $1
                   AND (created_at > $2 OR (created_at = $2 AND id > $3))
                 ORDER BY created_at, id LIMIT $4",
            )
            .bind(chat.0)
            .bind(t)
            .bind(m.0)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        MessageAnchor::Before(m) => {
            let t = anchor(m).await?;
            sqlx::query(
                "SELECT * FROM messages WHERE chat_id = $1
                   AND (created_at < $2 OR (created_at = $2 AND id < $3))
                 ORDER BY created_at DESC, id DESC LIMIT $4",
            )
            .bind(chat.0)
            .bind(t)
            .bind(m.0)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
    .map_err(db)?;
    let mut out: Vec<Message> = rows.iter().map(message_from).collect::<StoreResult<_>>()?;
    if !matches!(at, MessageAnchor::After(_)) {
        // Taken newest first; a page reads oldest first.
        out.reverse();
    }
    Ok(out)
}
