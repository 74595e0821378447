use baton_core::{Frame, FrameText, NewFrame, Timestamp, Topic};
use baton_store::{StoreError, StoreResult, TopicBounds};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use crate::db;
use crate::plan::{runs_of_two_powers, value_rows, Arg, Plan, Stmt};
use crate::rows::{id_text, ts, Cols};

/// Five values a row: 4,096 rows stay under SQLite's 32,766 values per statement.
const ROWS_PER_STATEMENT: usize = 4_096;

fn frame_from(topic: Topic, row: &SqliteRow) -> StoreResult<Frame> {
    let c = Cols::new(row, "events");
    let body = c.text("body")?;
    if !(body.starts_with('{') && body.ends_with('}')) {
        return Err(StoreError::corrupt("events", "body: not an object"));
    }
    let body = FrameText::stored(body);
    Ok(Frame {
        topic,
        seq: c.int("seq")?,
        kind: c.text("kind")?,
        at: c.time("at")?,
        body,
    })
}

/// Appends to one or several topics as one plan: one statement moves every topic's
/// counter, the next ones store the frames (in runs of power-of-two rows), numbered in
/// SQL from the counters just moved, so nothing is computed in between. Topics must be distinct. Answers each batch's first
/// seq; [`numbered`] then makes the frames, moving them rather than copying (the plan
/// may be decoded twice, so it cannot own them).
pub(crate) fn append_many(batches: &[(Topic, Vec<NewFrame>)], at: Timestamp) -> Plan<Vec<i64>> {
    let mut counters = Vec::with_capacity(batches.len() * 2);
    for (topic, frames) in batches {
        counters.extend([Arg::from(topic.to_string()), (frames.len() as i64).into()]);
    }
    let mut stmts = vec![Stmt::new(
        format!(
            "INSERT INTO event_topics (topic, last_seq, first_kept) VALUES {}
             ON CONFLICT (topic) DO UPDATE SET last_seq = last_seq + excluded.last_seq
             RETURNING topic, last_seq",
            batches
                .iter()
                .map(|_| "(?, ?, 1)")
                .collect::<Vec<_>>()
                .join(", ")
        ),
        counters,
    )];
    // Every frame as (topic, its topic's count, k within the topic, kind, body).
    let rows: Vec<[Arg; 5]> = batches
        .iter()
        .flat_map(|(topic, frames)| {
            let (topic, n) = (topic.to_string(), frames.len() as i64);
            frames.iter().enumerate().map(move |(i, f)| {
                [
                    Arg::from(topic.clone()),
                    n.into(),
                    (i as i64 + 1).into(),
                    (&f.kind).into(),
                    f.body.as_str().into(),
                ]
            })
        })
        .collect();
    for chunk in runs_of_two_powers(&rows, ROWS_PER_STATEMENT) {
        let mut args: Vec<Arg> = vec![ts(&at).into()];
        args.extend(chunk.iter().flat_map(|r| r.iter().cloned()));
        stmts.push(Stmt::new(
            format!(
                "INSERT INTO events (topic, seq, kind, at, body)
                 SELECT v.column1, t.last_seq - v.column2 + v.column3, v.column4, ?, v.column5
                 FROM (VALUES {}) v JOIN event_topics t ON t.topic = v.column1",
                value_rows(chunk.len(), 5)
            ),
            args,
        ));
    }
    let counts: Vec<(String, i64)> = batches
        .iter()
        .map(|(topic, frames)| (topic.to_string(), frames.len() as i64))
        .collect();
    Plan::new(stmts, move |out| {
        let counters = out
            .first()
            .ok_or_else(|| StoreError::corrupt("event_topics", "the counters returned nothing"))?;
        let mut last = std::collections::HashMap::with_capacity(counters.rows.len());
        for row in &counters.rows {
            let topic: String = row.try_get(0).map_err(db)?;
            let seq: i64 = row.try_get(1).map_err(db)?;
            last.insert(topic, seq);
        }
        counts
            .iter()
            .map(|(topic, n)| {
                let top = *last.get(topic).ok_or_else(|| {
                    StoreError::corrupt("event_topics", "a topic's counter did not move")
                })?;
                Ok(top - n + 1)
            })
            .collect()
    })
}

/// The stored frames of `batches`, each batch numbered from its first seq.
pub(crate) fn numbered(
    batches: Vec<(Topic, Vec<NewFrame>)>,
    firsts: Vec<i64>,
    at: Timestamp,
) -> Vec<Vec<Frame>> {
    batches
        .into_iter()
        .zip(firsts)
        .map(|((topic, frames), first)| {
            frames
                .into_iter()
                .zip(first..)
                .map(|(f, seq)| f.stored(topic, seq, at))
                .collect()
        })
        .collect()
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

pub(crate) fn prune(topic: Topic, up_to: i64) -> Plan<u64> {
    let topic_text = topic.to_string();
    Plan::new(
        vec![
            Stmt::new(
                "DELETE FROM events WHERE topic = ?1 AND seq <= ?2",
                vec![topic_text.clone().into(), up_to.into()],
            ),
            Stmt::new(
                "UPDATE event_topics SET first_kept = MAX(first_kept, MIN(?2 + 1, last_seq + 1)) WHERE topic = ?1",
                vec![topic_text.into(), up_to.into()],
            ),
        ],
        |out| Ok(out.first().map(|o| o.changes).unwrap_or(0)),
    )
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
