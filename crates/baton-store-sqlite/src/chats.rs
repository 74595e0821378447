use baton_core::{
    time, AttachmentId, Chat, ChatId, ChatPatch, Message, MessageId, NewChat, NewMessage, Role,
    TaskId,
};
use baton_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::SqlitePool;

use crate::db;
use crate::plan::{Plan, Stmt};
use crate::rows::{id_text, ts, Cols};

fn chat_from(row: &SqliteRow) -> StoreResult<Chat> {
    let c = Cols::new(row, "chats");
    Ok(Chat {
        id: ChatId(c.uuid("id")?),
        title: c.text("title")?,
        workspace: c.opt_text("workspace")?,
        capabilities: serde_json::from_value(c.json("capabilities")?)
            .map_err(|_| StoreError::corrupt("chats", "capabilities"))?,
        auto_continue: c.int("auto_continue")? != 0,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}

fn message_from(row: &SqliteRow) -> StoreResult<Message> {
    let c = Cols::new(row, "messages");
    let attachments: Vec<AttachmentId> = serde_json::from_value(c.json("attachments")?)
        .map_err(|_| StoreError::corrupt("messages", "attachments: not a list of ids"))?;
    Ok(Message {
        id: MessageId(c.uuid("id")?),
        chat_id: ChatId(c.uuid("chat_id")?),
        role: c.parsed("role", Role::parse)?,
        content: c.text("content")?,
        attachments,
        turn_number: c.int("turn_number")?,
        created_at: c.time("created_at")?,
        task_id: c.opt_uuid("task_id")?.map(TaskId),
    })
}

pub(crate) fn create_chat(new: NewChat) -> Plan<Chat> {
    let now = time::now();
    let chat = Chat {
        id: ChatId::new(),
        title: new.title,
        workspace: new.workspace,
        capabilities: new.capabilities,
        auto_continue: new.auto_continue,
        created_at: now,
        updated_at: now,
    };
    let stmt = Stmt::new(
        "INSERT INTO chats (id, title, workspace, capabilities, auto_continue, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        vec![
            id_text(chat.id.0).into(),
            (&chat.title).into(),
            chat.workspace.clone().into(),
            serde_json::to_string(&chat.capabilities)
                .expect("capabilities serialize")
                .into(),
            i64::from(chat.auto_continue).into(),
            ts(&chat.created_at).into(),
            ts(&chat.updated_at).into(),
        ],
    );
    Plan::new(vec![stmt], move |_| Ok(chat.clone()))
}

pub(crate) async fn get_chat(pool: &SqlitePool, id: ChatId) -> StoreResult<Option<Chat>> {
    sqlx::query("SELECT * FROM chats WHERE id = ?1")
        .bind(id_text(id.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(chat_from)
        .transpose()
}

pub(crate) async fn list_chats(
    pool: &SqlitePool,
    limit: u32,
    before: Option<ChatId>,
) -> StoreResult<Vec<Chat>> {
    // UUIDv7 ids order like creation time, so the id alone is the keyset.
    let rows = match before {
        None => {
            sqlx::query("SELECT * FROM chats ORDER BY id DESC LIMIT ?1")
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        }
        Some(id) => {
            sqlx::query("SELECT * FROM chats WHERE id < ?1 ORDER BY id DESC LIMIT ?2")
                .bind(id_text(id.0))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        }
    }
    .map_err(db)?;
    rows.iter().map(chat_from).collect()
}

pub(crate) fn insert_message(new: NewMessage) -> Plan<Message> {
    let msg = Message {
        id: MessageId::new(),
        chat_id: new.chat_id,
        role: new.role,
        content: new.content,
        attachments: new.attachments,
        turn_number: new.turn_number,
        created_at: time::now(),
        task_id: None,
    };
    Plan::new(message_insert(&msg), move |_| Ok(msg.clone())).on_error(|e| match e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound("chat"),
        e => db(e),
    })
}

/// The message's row, and the mark on the attachments it names.
pub(crate) fn message_insert(m: &Message) -> Vec<Stmt> {
    let row = Stmt::new(
        "INSERT INTO messages (id, chat_id, role, content, attachments, turn_number, created_at, task_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        vec![
            id_text(m.id.0).into(),
            id_text(m.chat_id.0).into(),
            m.role.as_str().into(),
            (&m.content).into(),
            serde_json::to_string(&m.attachments)
                .expect("ids serialize")
                .into(),
            m.turn_number.into(),
            ts(&m.created_at).into(),
            m.task_id.map(|t| id_text(t.0)).into(),
        ],
    );
    std::iter::once(row)
        .chain(crate::attachments::referenced(m))
        .collect()
}

pub(crate) async fn list_messages(pool: &SqlitePool, chat: ChatId) -> StoreResult<Vec<Message>> {
    let rows = sqlx::query("SELECT * FROM messages WHERE chat_id = ?1 ORDER BY created_at, id")
        .bind(id_text(chat.0))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(message_from).collect()
}

pub(crate) fn update_chat(id: ChatId, patch: ChatPatch) -> Plan<Option<Chat>> {
    Plan::new(
        vec![Stmt::new(
            "UPDATE chats SET title = COALESCE(?2, title),
                auto_continue = COALESCE(?3, auto_continue), updated_at = ?4
             WHERE id = ?1 RETURNING *",
            vec![
                id_text(id.0).into(),
                patch.title.into(),
                patch.auto_continue.map(i64::from).into(),
                ts(&time::now()).into(),
            ],
        )],
        |out| out[0].rows.first().map(chat_from).transpose(),
    )
}

pub(crate) async fn page_messages(
    pool: &SqlitePool,
    chat: ChatId,
    at: baton_store::MessageAnchor,
    limit: u32,
) -> StoreResult<Vec<Message>> {
    use baton_store::MessageAnchor;
    let anchor = |m: MessageId| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT created_at FROM messages WHERE id = ?1 AND chat_id = ?2",
        )
        .bind(id_text(m.0))
        .bind(id_text(chat.0))
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .ok_or(StoreError::NotFound("message"))
    };
    let limit = i64::from(limit);
    let rows = match at {
        MessageAnchor::Newest => {
            sqlx::query(
                "SELECT * FROM messages WHERE chat_id = ?1
                 ORDER BY created_at DESC, id DESC LIMIT ?2",
            )
            .bind(id_text(chat.0))
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        MessageAnchor::After(m) => {
            let t = anchor(m).await?;
            sqlx::query(
                "SELECT * FROM messages WHERE chat_id = ?1
                   AND (created_at > ?2 OR (created_at = ?2 AND id > ?3))
                 ORDER BY created_at, id LIMIT ?4",
            )
            .bind(id_text(chat.0))
            .bind(t)
            .bind(id_text(m.0))
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        MessageAnchor::Before(m) => {
            let t = anchor(m).await?;
            sqlx::query(
                "SELECT * FROM messages WHERE chat_id = ?1
                   AND (created_at < ?2 OR (created_at = ?2 AND id < ?3))
                 ORDER BY created_at DESC, id DESC LIMIT ?4",
            )
            .bind(id_text(chat.0))
            .bind(t)
            .bind(id_text(m.0))
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
