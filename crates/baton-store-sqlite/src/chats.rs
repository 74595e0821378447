use baton_core::{time, AttachmentId, Chat, ChatId, Message, MessageId, NewChat, NewMessage, Role};
use baton_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteRow;
use sqlx::{SqliteConnection, SqlitePool};

use crate::db;
use crate::rows::{id_text, ts, Cols};

fn chat_from(row: &SqliteRow) -> StoreResult<Chat> {
    let c = Cols::new(row, "chats");
    Ok(Chat {
        id: ChatId(c.uuid("id")?),
        title: c.text("title")?,
        workspace: c.opt_text("workspace")?,
        capabilities: serde_json::from_value(c.json("capabilities")?)
            .map_err(|_| StoreError::corrupt("chats", "capabilities"))?,
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
    })
}

pub(crate) async fn create_chat(conn: &mut SqliteConnection, new: NewChat) -> StoreResult<Chat> {
    let now = time::now();
    let chat = Chat {
        id: ChatId::new(),
        title: new.title,
        workspace: new.workspace,
        capabilities: new.capabilities,
        created_at: now,
        updated_at: now,
    };
    sqlx::query(
        "INSERT INTO chats (id, title, workspace, capabilities, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(id_text(chat.id.0))
    .bind(&chat.title)
    .bind(&chat.workspace)
    .bind(serde_json::to_string(&chat.capabilities).expect("capabilities serialize"))
    .bind(ts(&chat.created_at))
    .bind(ts(&chat.updated_at))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(chat)
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

pub(crate) async fn insert_message(
    conn: &mut SqliteConnection,
    new: NewMessage,
) -> StoreResult<Message> {
    let msg = Message {
        id: MessageId::new(),
        chat_id: new.chat_id,
        role: new.role,
        content: new.content,
        attachments: new.attachments,
        turn_number: new.turn_number,
        created_at: time::now(),
    };
    let attachments = serde_json::to_string(&msg.attachments).expect("ids serialize");
    let res = sqlx::query(
        "INSERT INTO messages (id, chat_id, role, content, attachments, turn_number, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(id_text(msg.id.0))
    .bind(id_text(msg.chat_id.0))
    .bind(msg.role.as_str())
    .bind(&msg.content)
    .bind(attachments)
    .bind(msg.turn_number)
    .bind(ts(&msg.created_at))
    .execute(&mut *conn)
    .await;
    match res {
        Ok(_) => Ok(msg),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
            Err(StoreError::NotFound("chat"))
        }
        Err(e) => Err(db(e)),
    }
}

pub(crate) async fn list_messages(pool: &SqlitePool, chat: ChatId) -> StoreResult<Vec<Message>> {
    let rows = sqlx::query("SELECT * FROM messages WHERE chat_id = ?1 ORDER BY created_at, id")
        .bind(id_text(chat.0))
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(message_from).collect()
}
