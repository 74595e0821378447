use baton_core::{Frame, FrameText, NewFrame, Timestamp, Topic};
use baton_store::{FrameNotice, StoreError, StoreResult, TopicBounds};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::db;
use crate::plan::{Frames, Plan, Stmt};

fn frame_from(topic: Topic, row: &PgRow) -> StoreResult<Frame> {
    let body: String = row.try_get("body").map_err(db)?;
    if !(body.starts_with('{') && body.ends_with('}')) {
        return Err(StoreError::corrupt("events", "body: not an object"));
    }
    let body = FrameText::stored(body);
    Ok(Frame {
        topic,
        seq: row.try_get("seq").map_err(db)?,
        kind: row.try_get("kind").map_err(db)?,
        at: row.try_get("at").map_err(db)?,
        body,
    })
}

/// The channel on which appended frames are announced to every instance.
pub(crate) const CHANNEL: &str = "baton_frames";

/// Appends `frames` to `topic`'s log at `at`; answers the first frame's `seq` (see
/// `writer` for how the appends of a group are numbered and announced). Bodies go in as
/// `json` text, which keeps any U+0000 as its escape: nothing to clean.
pub(crate) fn append(topic: Topic, frames: &[NewFrame], at: Timestamp) -> Plan<i64> {
    let stored = frames
        .iter()
        .map(|f| (f.kind.clone(), f.body.as_str().to_string()))
        .collect();
    let stmt = Stmt::Frames(Frames {
        topic: topic.to_string(),
        frames: stored,
        at,
    });
    Plan::new(vec![stmt], |out| Ok(out.first().map_or(0, |o| o.first_seq)))
}

pub(crate) async fn since(
    pool: &PgPool,
    topic: Topic,
    since: i64,
    limit: u32,
) -> StoreResult<Vec<Frame>> {
    let rows = sqlx::query(
        "SELECT seq, kind, at, body::text AS body FROM events WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(topic.to_string())
    .bind(since)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(db)?;
    rows.iter().map(|r| frame_from(topic, r)).collect()
}

pub(crate) async fn bounds(pool: &PgPool, topic: Topic) -> StoreResult<TopicBounds> {
    let row = sqlx::query("SELECT last_seq, first_kept FROM event_topics WHERE topic = $1")
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

pub(crate) async fn prune(pool: &PgPool, topic: Topic, up_to: i64) -> StoreResult<u64> {
    let topic_text = topic.to_string();
    let mut tx = pool.begin().await.map_err(db)?;
    let gone = sqlx::query("DELETE FROM events WHERE topic = $1 AND seq <= $2")
        .bind(&topic_text)
        .bind(up_to)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected();
    sqlx::query(
        "UPDATE event_topics SET first_kept = GREATEST(first_kept, LEAST($2 + 1, last_seq + 1))
         WHERE topic = $1",
    )
    .bind(&topic_text)
    .bind(up_to)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(gone)
}

pub(crate) async fn topic_exists(pool: &PgPool, topic: Topic) -> StoreResult<bool> {
    let (sql, id) = match topic {
        Topic::Tasks => return Ok(true),
        Topic::Chat(id) => ("SELECT 1 FROM chats WHERE id = $1", id.0),
        Topic::Run(id) => ("SELECT 1 FROM workflow_runs WHERE id = $1", id.0),
    };
    let row = sqlx::query(sql)
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db)?;
    Ok(row.is_some())
}

/// Notifications from other instances: `(topic, first, last)`.
async fn listener(pool: &PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

pub(crate) async fn listen(
    pool: &PgPool,
    instance: String,
) -> StoreResult<baton_store::FrameNotifications> {
    let first = listener(pool).await.map_err(db)?;
    let stream = futures_util::stream::unfold(
        (first, pool.clone(), instance),
        |(mut current, pool, instance)| async move {
            loop {
                // `try_recv` reports a lost connection, where `recv` would reconnect by
                // itself and silently drop whatever was notified meanwhile. A new
                // listener is set up first, and only then is the loss reported, so the
                // reader's catch-up from the log cannot miss a notice sent in between.
                match current.try_recv().await {
                    Ok(None) => {
                        tracing::warn!(
                            "the connection listening for other instances' frames was lost; reconnecting"
                        );
                        loop {
                            match listener(&pool).await {
                                Ok(l) => {
                                    current = l;
                                    break;
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "listening again failed; retrying");
                                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                                }
                            }
                        }
                        return Some((FrameNotice::Reconnected, (current, pool, instance)));
                    }
                    Ok(Some(n)) => {
                        let mut parts = n.payload().splitn(4, ' ');
                        let (Some(from), Some(first), Some(last), Some(topic)) =
                            (parts.next(), parts.next(), parts.next(), parts.next())
                        else {
                            continue;
                        };
                        if from == instance {
                            continue;
                        }
                        let (Ok(first), Ok(last), Ok(topic)) = (
                            first.parse::<i64>(),
                            last.parse::<i64>(),
                            topic.parse::<Topic>(),
                        ) else {
                            continue;
                        };
                        return Some((
                            FrameNotice::Appended { topic, first, last },
                            (current, pool, instance),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for frames from other instances failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
            }
        },
    );
    Ok(Box::pin(stream))
}
