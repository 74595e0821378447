use baton_core::{time, Frame, NewFrame, Topic};
use baton_store::{StoreError, StoreResult, TopicBounds};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::db;
use crate::rows::{id_text, ts, Cols};

const ROWS_PER_STATEMENT: usize = 5_000;

fn frame_from(topic: Topic, row: &SqliteRow) -> StoreResult<Frame> {
    let c = Cols::new(row, "events");
    let body = match c.json("body")? {
        Value::Object(map) => map,
        _ => return Err(StoreError::corrupt("events", "body: not an object")),
    };
    Ok(Frame {
        topic,
        seq: c.int("seq")?,
        kind: c.text("kind")?,
        at: c.time("at")?,
        body,
    })
}

pub(crate) async fn append(
    conn: &mut SqliteConnection,
    topic: Topic,
    frames: &[NewFrame],
) -> StoreResult<Vec<Frame>> {
    if frames.is_empty() {
        return Ok(Vec::new());
    }
    let topic_text = topic.to_string();
    let n = frames.len() as i64;
    let at = time::now();
    let mut tx = conn.begin().await.map_err(db)?;
    let last: i64 = sqlx::query(
        "INSERT INTO event_topics (topic, last_seq, first_kept) VALUES (?1, ?2, 1)
         ON CONFLICT (topic) DO UPDATE SET last_seq = last_seq + ?2
         RETURNING last_seq",
    )
    .bind(&topic_text)
    .bind(n)
    .fetch_one(&mut *tx)
    .await
    .map_err(db)?
    .try_get(0)
    .map_err(db)?;
    let first = last - n + 1;
    let stored: Vec<Frame> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| Frame {
            topic,
            seq: first + i as i64,
            kind: f.kind.clone(),
            at,
            body: f.body.clone(),
        })
        .collect();
    for chunk in stored.chunks(ROWS_PER_STATEMENT) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO events (topic, seq, kind, at, body) ");
        qb.push_values(chunk, |mut b, f| {
            b.push_bind(&topic_text)
                .push_bind(f.seq)
                .push_bind(&f.kind)
                .push_bind(ts(&f.at))
                .push_bind(serde_json::to_string(&f.body).expect("maps serialize"));
        });
        qb.build().execute(&mut *tx).await.map_err(db)?;
    }
    tx.commit().await.map_err(db)?;
    Ok(stored)
}

pub(crate) async fn since(
    pool: &SqlitePool,
    topic: Topic,
    since: i64,
    limit: u32,
) -> StoreResult<Vec<Frame>> {
    let rows = sqlx::query(
        "SELECT seq, kind, at, body FROM events WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )
    .bind(topic.to_string())
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(|r| frame_from(topic, r)).collect()
}

pub(crate) async fn bounds(pool: &SqlitePool, topic: Topic) -> StoreResult<TopicBounds> {
    let row = sqlx::query("SELECT last_seq, first_kept FROM event_topics WHERE topic = ?1")
        .bind(topic.to_string())
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(match row {
        None => TopicBounds {
            last_seq: 0,
            first_kept: 1,
        },
        Some(r) => TopicBounds {
            last_seq: r.try_get(0).map_err(db)?,
            first_kept: r.try_get(1).map_err(db)?,
        },
    })
}

pub(crate) async fn prune(
    conn: &mut SqliteConnection,
    topic: Topic,
    up_to: i64,
) -> StoreResult<u64> {
    let topic_text = topic.to_string();
    let mut tx = conn.begin().await.map_err(db)?;
    let gone = sqlx::query("DELETE FROM events WHERE topic = ?1 AND seq <= ?2")
        .bind(&topic_text)
        .bind(up_to)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
    sqlx::query(
        "UPDATE event_topics SET first_kept = MAX(first_kept, MIN(?2 + 1, last_seq + 1)) WHERE topic = ?1",
    )
    .bind(&topic_text)
    .bind(up_to)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(gone)
}

pub(crate) async fn topic_exists(pool: &SqlitePool, topic: Topic) -> StoreResult<bool> {
    let (sql, id) = match topic {
        Topic::Tasks => return Ok(true),
        Topic::Chat(id) => ("SELECT 1 FROM chats WHERE id = ?1", id.0),
        Topic::Run(id) => ("SELECT 1 FROM workflow_runs WHERE id = ?1", id.0),
    };
    let row = sqlx::query(sql)
        .bind(id_text(id))
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(row.is_some())
}
