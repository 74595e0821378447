use baton_store::{Migration, MigrationReport, StoreError, StoreResult};
use sqlx::{Connection, PgPool};

use crate::db;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: "0001_init",
        sql: include_str!("../../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: "0002_chat_capabilities",
        sql: include_str!("../../../migrations/postgres/0002_chat_capabilities.sql"),
    },
    Migration {
        version: "0003_run_log_and_journal_order",
        sql: include_str!("../../../migrations/postgres/0003_run_log_and_journal_order.sql"),
    },
    Migration {
        version: "0004_leases",
        sql: include_str!("../../../migrations/postgres/0004_leases.sql"),
    },
    Migration {
        version: "0005_task_leases",
        sql: include_str!("../../../migrations/postgres/0005_task_leases.sql"),
    },
    Migration {
        version: "0006_task_notices",
        sql: include_str!("../../../migrations/postgres/0006_task_notices.sql"),
    },
    Migration {
        version: "0007_attachment_bytes",
        sql: include_str!("../../../migrations/postgres/0007_attachment_bytes.sql"),
    },
    Migration {
        version: "0008_trace_search",
        sql: include_str!("../../../migrations/postgres/0008_trace_search.sql"),
    },
    Migration {
        version: "0009_trace_search_finished",
        sql: include_str!("../../../migrations/postgres/0009_trace_search_finished.sql"),
    },
    Migration {
        version: "0010_event_bodies_json",
        sql: include_str!("../../../migrations/postgres/0010_event_bodies_json.sql"),
    },
    Migration {
        version: "0011_trace_words",
        sql: include_str!("../../../migrations/postgres/0011_trace_words.sql"),
    },
    Migration {
        version: "0012_prompts",
        sql: include_str!("../../../migrations/postgres/0012_prompts.sql"),
    },
];

/// Session-level advisory lock key ("baton" in ASCII): two instances starting at once
/// against one database apply migrations one after the other.
const LOCK_KEY: i64 = 0x6261746f6e;

pub(crate) async fn run(pool: &PgPool) -> StoreResult<MigrationReport> {
    let mut conn = pool.acquire().await.map_err(db)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(db)?;
    let result = apply(&mut conn, MIGRATIONS).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await;
    let report = result?;
    unlock.map_err(db)?;
    Ok(report)
}

async fn apply(
    conn: &mut sqlx::PgConnection,
    migrations: &[Migration],
) -> StoreResult<MigrationReport> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version TEXT PRIMARY KEY,
            checksum TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let mut report = MigrationReport::default();
    for m in migrations {
        let existing: Option<String> =
            sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?;
        if let Some(sum) = existing {
            if sum != m.checksum() {
                return Err(StoreError::Migration {
                    version: m.version.into(),
                    reason: "already applied with different content; never edit an applied migration, add a new one".into(),
                });
            }
            report.already += 1;
            continue;
        }
        let mut tx = conn.begin().await.map_err(db)?;
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration {
                version: m.version.into(),
                reason: e.to_string(),
            })?;
        sqlx::query("INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)")
            .bind(m.version)
            .bind(m.checksum())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        tracing::info!(version = m.version, "migration applied");
        report.applied.push(m.version.to_string());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::{ChatId, Topic, TraceFinish, TraceId, TraceOutcome};
    use baton_store::{search_words, Store, TraceFilter, TraceScope};

    /// Frames and traces written before event bodies became `json` and words were kept:
    /// the frames read back as written, a finished trace is found by its words, a running
    /// one by its input and, once finished, by its output.
    #[tokio::test]
    async fn frames_and_traces_written_before_read_back_and_are_found() {
        let admin = std::env::var("BATON_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("baton_upgrade_{}", uuid::Uuid::now_v7().simple());
        let (base, query) = admin.split_once('?').unwrap_or((admin.as_str(), ""));
        let base = &base[..base.rfind('/').expect("a database in the URL")];
        let url = match query {
            "" => format!("{base}/{name}"),
            q => format!("{base}/{name}?{q}"),
        };
        crate::PgStore::create_database(&admin, &name)
            .await
            .unwrap();
        let store = crate::PgStore::connect_unmigrated(&url).await.unwrap();
        let before = MIGRATIONS
            .iter()
            .position(|m| m.version == "0010_event_bodies_json")
            .unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        apply(&mut conn, &MIGRATIONS[..before]).await.unwrap();
        let chat = ChatId::new();
        let (done, running) = (TraceId::new(), TraceId::new());
        for (id, input, output, outcome) in [
            (done, r#"{"q": "zanzibar"}"#, Some(r#"{"hits": 0}"#), "ok"),
            (running, r#"{"q": "kubernetes"}"#, None, "running"),
        ] {
            sqlx::query(
                "INSERT INTO tool_traces (id, chat_id, turn_number, kind, tool_name, input, output,
                    started_at, outcome) VALUES ($1, $2, 1, 'tool', 'grep', $3::jsonb, $4::jsonb,
                    now() + (CASE WHEN $5 = 'ok' THEN 0 ELSE 1 END) * interval '1 ms', $5)",
            )
            .bind(id.0)
            .bind(chat.0)
            .bind(input)
            .bind(output)
            .bind(outcome)
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        let topic = Topic::Chat(chat);
        sqlx::raw_sql(&format!(
            "INSERT INTO event_topics (topic, last_seq, first_kept) VALUES ('{topic}', 1, 1);
             INSERT INTO events (topic, seq, kind, at, body)
             VALUES ('{topic}', 1, 'message', now(), '{{\"text\": \"old frame\"}}'::jsonb)"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        let report = store.migrate().await.unwrap();
        assert_eq!(
            report.applied,
            ["0010_event_bodies_json", "0011_trace_words", "0012_prompts"]
        );

        let frames = store.frames_since(topic, 0, 10).await.unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].body.to_map()["text"], "old frame");
        let next = store
            .append_frames(
                topic,
                &[baton_core::NewFrame::new(
                    "message",
                    serde_json::json!({"text": "new"}),
                )],
            )
            .await
            .unwrap();
        assert_eq!(next[0].seq, 2);

        let find = |q: &str| {
            let filter = TraceFilter {
                words: search_words(q),
                ..Default::default()
            };
            let store = &store;
            async move {
                store
                    .search_traces(TraceScope::Chat(chat), &filter, 10, None)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|t| t.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(find("zanzibar").await, [done]);
        assert_eq!(find("kubernetes").await, [running]);
        store
            .finish_trace(
                running,
                &TraceFinish {
                    output: Some(serde_json::json!("found in cluster.yaml")),
                    outcome: Some(TraceOutcome::Ok),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(find("kubernetes cluster").await, [running]);
        assert_eq!(find("grep").await, [done, running]);
        store.close().await;
        crate::PgStore::drop_database(&admin, &name).await.unwrap();
    }
}
