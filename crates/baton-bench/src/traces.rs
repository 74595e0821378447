//! Trace rows per second through `Store::insert_traces`, against the fastest raw path
//! the same driver offers for the same rows.
use std::time::Instant;

use baton_core::{time, ChatId, Trace};
use baton_testkit::{fixtures, Kind, TestDb};
use sqlx::Connection;

const BATCH: usize = 1_000;

fn rows(n: usize) -> Vec<Trace> {
    let chat = ChatId::new();
    let start = time::now();
    (0..n)
        .map(|i| {
            fixtures::trace(
                chat,
                (i / 50) as i64,
                start + chrono::Duration::microseconds(i as i64),
            )
        })
        .collect()
}

pub async fn run(n: usize) -> anyhow::Result<()> {
    println!("## Trace rows per second ({n} rows, batches of {BATCH})\n");
    println!("| backend | Baton `insert_traces` | baseline | baseline rows/s | Baton / baseline |");
    println!("|---|---|---|---|---|");
    for kind in [Kind::Sqlite, Kind::Postgres] {
        let data = rows(n);
        let db = TestDb::new(kind).await;
        let store = db.store();
        let t = Instant::now();
        for chunk in data.chunks(BATCH) {
            store.insert_traces(chunk).await?;
        }
        let ours = t.elapsed().as_secs_f64();

        let data = rows(n);
        let base = TestDb::new(kind).await;
        let (label, theirs) = match kind {
            Kind::Sqlite => (
                "one prepared INSERT per row, one transaction per batch (sqlx)",
                sqlite_baseline(&base.url, &data).await?,
            ),
            Kind::Postgres => (
                "COPY FROM STDIN, text format, one per batch (sqlx)",
                postgres_baseline(&base.url, &data).await?,
            ),
        };
        println!(
            "| {kind:?} | {} | {label} | {} | {:.2} |",
            crate::rate(n, ours),
            crate::rate(n, theirs),
            theirs / ours
        );
    }
    println!();
    Ok(())
}

fn json(v: &serde_json::Value) -> String {
    v.to_string()
}

async fn sqlite_baseline(url: &str, data: &[Trace]) -> anyhow::Result<f64> {
    let path = url.trim_start_matches("sqlite://");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}")).await?;
    sqlx::query("PRAGMA journal_mode=WAL")
        .execute(&mut conn)
        .await?;
    sqlx::query("PRAGMA synchronous=NORMAL")
        .execute(&mut conn)
        .await?;
    let t = Instant::now();
    for chunk in data.chunks(BATCH) {
        let mut tx = conn.begin().await?;
        for r in chunk {
            sqlx::query(
                "INSERT INTO tool_traces (id, session_id, chat_id, turn_number, kind, tool_name, input, output,
                 started_at, finished_at, latency_ms, outcome, meta, words)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)",
            )
            .bind(r.id.to_string())
            .bind(r.session_id.map(|s| s.to_string()))
            .bind(r.chat_id.map(|s| s.to_string()))
            .bind(r.turn_number)
            .bind(r.kind.as_str())
            .bind(&r.tool_name)
            .bind(json(&r.input))
            .bind(r.output.as_ref().map(json))
            .bind(time::to_micros(&r.started_at))
            .bind(r.finished_at.as_ref().map(time::to_micros))
            .bind(r.latency_ms)
            .bind(r.outcome.as_str())
            .bind(json(&r.meta))
            .bind(baton_store::trace_words(r))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// COPY text format: tab-separated, `\N` for null, backslash escapes.
fn copy_field(out: &mut String, v: Option<&str>) {
    match v {
        None => out.push_str("\\N"),
        Some(s) => {
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
    }
}

async fn postgres_baseline(url: &str, data: &[Trace]) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let t = Instant::now();
    for chunk in data.chunks(BATCH) {
        let mut buf = String::with_capacity(chunk.len() * 300);
        for r in chunk {
            let fields: [Option<String>; 14] = [
                Some(r.id.to_string()),
                r.session_id.map(|s| s.to_string()),
                r.chat_id.map(|s| s.to_string()),
                Some(r.turn_number.to_string()),
                Some(r.kind.as_str().into()),
                Some(r.tool_name.clone()),
                Some(json(&r.input)),
                r.output.as_ref().map(json),
                Some(r.started_at.to_rfc3339()),
                r.finished_at.map(|f| f.to_rfc3339()),
                r.latency_ms.map(|l| l.to_string()),
                Some(r.outcome.as_str().into()),
                Some(json(&r.meta)),
                Some(baton_store::trace_words(r)),
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    buf.push('\t');
                }
                copy_field(&mut buf, f.as_deref());
            }
            buf.push('\n');
        }
        let mut copy = conn
            .copy_in_raw(
                "COPY tool_traces (id, session_id, chat_id, turn_number, kind, tool_name, input, output,
                 started_at, finished_at, latency_ms, outcome, meta, words) FROM STDIN",
            )
            .await?;
        copy.send(buf.as_bytes()).await?;
        copy.finish().await?;
    }
    Ok(t.elapsed().as_secs_f64())
}
