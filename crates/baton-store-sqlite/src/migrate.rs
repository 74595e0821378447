use baton_store::{Migration, MigrationReport, StoreError, StoreResult};
use sqlx::SqlitePool;

use crate::db;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: "0001_init",
        sql: include_str!("../../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: "0002_chat_capabilities",
        sql: include_str!("../../../migrations/sqlite/0002_chat_capabilities.sql"),
    },
    Migration {
        version: "0003_run_log_and_journal_order",
        sql: include_str!("../../../migrations/sqlite/0003_run_log_and_journal_order.sql"),
    },
    Migration {
        version: "0004_leases",
        sql: include_str!("../../../migrations/sqlite/0004_leases.sql"),
    },
    Migration {
        version: "0005_task_leases",
        sql: include_str!("../../../migrations/sqlite/0005_task_leases.sql"),
    },
    Migration {
        version: "0006_task_notices",
        sql: include_str!("../../../migrations/sqlite/0006_task_notices.sql"),
    },
    Migration {
        version: "0007_attachment_bytes",
        sql: include_str!("../../../migrations/sqlite/0007_attachment_bytes.sql"),
    },
    Migration {
        version: "0008_trace_search",
        sql: include_str!("../../../migrations/sqlite/0008_trace_search.sql"),
    },
    Migration {
        version: "0009_trace_words",
        sql: include_str!("../../../migrations/sqlite/0009_trace_words.sql"),
    },
    Migration {
        version: "0010_prompts",
        sql: include_str!("../../../migrations/sqlite/0010_prompts.sql"),
    },
    Migration {
        version: "0011_event_log_rows",
        sql: include_str!("../../../migrations/sqlite/0011_event_log_rows.sql"),
    },
];

/// Applies every pending migration, each in its own `BEGIN IMMEDIATE` transaction so a
/// second process starting on the same file waits and then finds the work done.
pub(crate) async fn run(pool: &SqlitePool) -> StoreResult<MigrationReport> {
    apply(pool, MIGRATIONS).await
}

async fn apply(pool: &SqlitePool, migrations: &[Migration]) -> StoreResult<MigrationReport> {
    let mut conn = pool.acquire().await.map_err(db)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version TEXT PRIMARY KEY NOT NULL,
            checksum TEXT NOT NULL,
            applied_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    let mut report = MigrationReport::default();
    for m in migrations {
        let conn = &mut *conn;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let outcome = apply_one(conn, m).await;
        let end = if matches!(outcome, Ok(true) | Ok(false)) {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        sqlx::query(end).execute(&mut *conn).await.map_err(db)?;
        match outcome? {
            true => {
                tracing::info!(version = m.version, "migration applied");
                report.applied.push(m.version.to_string())
            }
            false => report.already += 1,
        }
    }
    Ok(report)
}

async fn apply_one(conn: &mut sqlx::SqliteConnection, m: &Migration) -> StoreResult<bool> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = ?1")
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
        return Ok(false);
    }
    sqlx::raw_sql(m.sql)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::Migration {
            version: m.version.into(),
            reason: e.to_string(),
        })?;
    sqlx::query(
        "INSERT INTO schema_migrations (version, checksum, applied_at) VALUES (?1, ?2, ?3)",
    )
    .bind(m.version)
    .bind(m.checksum())
    .bind(crate::rows::ts(&baton_core::time::now()))
    .execute(&mut *conn)
    .await
    .map_err(db)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::Row;

    /// A database at `path` with every migration before `version` applied (not `version`).
    async fn migrated_up_to(path: &std::path::Path, version: &str) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        let before = MIGRATIONS
            .iter()
            .position(|m| m.version == version)
            .unwrap();
        apply(&pool, &MIGRATIONS[..before]).await.unwrap();
        pool
    }

    /// A migration that rebuilds a table keeps every row of it.
    #[tokio::test]
    async fn messages_written_before_the_notice_role_survive_its_migration() {
        let dir = tempfile::tempdir().unwrap();
        let pool = migrated_up_to(&dir.path().join("old.db"), "0006_task_notices").await;
        let before = MIGRATIONS
            .iter()
            .position(|m| m.version == "0006_task_notices")
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO chats (id, title, created_at, updated_at) VALUES ('c1', 'old', 1, 1);
             INSERT INTO messages (id, chat_id, role, content, attachments, turn_number, created_at)
             VALUES ('m1', 'c1', 'user', 'question', '[]', 1, 2),
                    ('m2', 'c1', 'assistant', 'answer', '[]', 1, 3);",
        )
        .execute(&pool)
        .await
        .unwrap();
        let report = apply(&pool, &MIGRATIONS[..=before]).await.unwrap();
        assert_eq!(report.applied, ["0006_task_notices"]);
        let rows =
            sqlx::query("SELECT id, role, content, task_id FROM messages ORDER BY created_at")
                .fetch_all(&pool)
                .await
                .unwrap();
        let got: Vec<(String, String, String, Option<String>)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        assert_eq!(
            got,
            [
                ("m1".into(), "user".into(), "question".into(), None),
                ("m2".into(), "assistant".into(), "answer".into(), None)
            ]
        );
        let auto: i64 = sqlx::query_scalar("SELECT auto_continue FROM chats WHERE id = 'c1'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(auto, 1, "existing chats keep waking their agent");
        // The chat's messages still go with it, and a bad role is still refused.
        assert!(sqlx::query(
            "INSERT INTO messages (id, chat_id, role, content, turn_number, created_at)
             VALUES ('m3', 'c1', 'system', 'x', 1, 4)"
        )
        .execute(&pool)
        .await
        .is_err());
        sqlx::query("DELETE FROM chats WHERE id = 'c1'")
            .execute(&pool)
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    /// Traces written before words were kept are still found after the upgrade: a finished
    /// one by what the index already held, a running one by its input and, once finished,
    /// by its output.
    #[tokio::test]
    async fn traces_written_before_words_were_kept_are_still_found() {
        use baton_core::{ChatId, TraceFinish, TraceId, TraceOutcome};
        use baton_store::{search_words, Store, TraceFilter, TraceScope};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let pool = migrated_up_to(&path, "0009_trace_words").await;
        let chat = ChatId::new();
        let (done, running) = (TraceId::new(), TraceId::new());
        let insert = "INSERT INTO tool_traces (id, chat_id, turn_number, kind, tool_name, input,
                output, started_at, outcome) VALUES (?1, ?2, 1, 'tool', 'grep', ?3, ?4, ?5, ?6)";
        for (id, input, output, at, outcome) in [
            (
                done,
                r#"{"q": "zanzibar"}"#,
                Some(r#"{"hits": 0}"#),
                1,
                "ok",
            ),
            (running, r#"{"q": "kubernetes"}"#, None, 2, "running"),
        ] {
            sqlx::query(insert)
                .bind(crate::rows::id_text(id.0))
                .bind(crate::rows::id_text(chat.0))
                .bind(input)
                .bind(output)
                .bind(at)
                .bind(outcome)
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        let store = crate::SqliteStore::open(&path).await.unwrap();
        store.migrate().await.unwrap();
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
    }

    /// The event log moved out of its WITHOUT ROWID table keeps every frame: replay reads
    /// them back in order with their numbers, new frames continue the numbering, a number
    /// cannot be taken twice, and pruning still drops what it names.
    #[tokio::test]
    async fn frames_logged_before_the_event_log_moved_are_kept() {
        use baton_core::{NewFrame, RunId, Topic};
        use baton_store::Store;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let pool = migrated_up_to(&path, "0011_event_log_rows").await;
        let run = Topic::Run(RunId::new());
        // Two topics interleaved, as the log holds them: (topic, seq, body).
        let old = [
            (run, 1, r#"{"n":1}"#),
            (Topic::Tasks, 1, r#"{"n":"a"}"#),
            (run, 2, r#"{"n":2,"text":"ünïcode \" and a quote"}"#),
            (run, 3, r#"{"n":3}"#),
            (Topic::Tasks, 2, r#"{"n":"b"}"#),
        ];
        for (topic, seq, body) in old {
            sqlx::query(
                "INSERT INTO events (topic, seq, kind, at, body) VALUES (?1, ?2, 'note', ?3, ?4)",
            )
            .bind(topic.to_string())
            .bind(seq)
            .bind(1_700_000_000_000_000_i64 + seq)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
        }
        sqlx::query(
            "INSERT INTO event_topics (topic, last_seq, first_kept) VALUES (?1, 3, 1), ('tasks', 2, 1)",
        )
        .bind(run.to_string())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;

        let store = crate::SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.migrate().await.unwrap().applied,
            ["0011_event_log_rows"]
        );
        let read = |topic: Topic| {
            let store = &store;
            async move {
                store
                    .frames_since(topic, 0, 100)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|f| (f.seq, f.kind, f.body.as_str().to_string()))
                    .collect::<Vec<_>>()
            }
        };
        let of = |topic: Topic| {
            old.iter()
                .filter(|(t, _, _)| *t == topic)
                .map(|(_, seq, body)| (*seq, "note".to_string(), body.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(read(run).await, of(run));
        assert_eq!(read(Topic::Tasks).await, of(Topic::Tasks));
        let more = store
            .append_frames(run, &[NewFrame::new("note", serde_json::json!({"n": 4}))])
            .await
            .unwrap();
        assert_eq!(more[0].seq, 4, "numbering goes on from the kept frames");
        assert!(
            sqlx::query(
                "INSERT INTO events (topic, seq, kind, at, body) VALUES (?1, 2, 'x', 0, '{}')"
            )
            .bind(run.to_string())
            .execute(&store.writer)
            .await
            .is_err(),
            "a frame's number is still taken once"
        );
        assert_eq!(store.prune_frames(run, 2).await.unwrap(), 2);
        let left: Vec<i64> = read(run).await.into_iter().map(|f| f.0).collect();
        assert_eq!(left, [3, 4]);
        assert_eq!(read(Topic::Tasks).await, of(Topic::Tasks));
    }

    /// The reads that must stay fast on a large database find their rows through an index,
    /// not by reading the table: replay of a topic, a chat's traces and sessions, a run's
    /// traces and sessions (the chat and run indexes hold only rows that have one).
    #[tokio::test]
    async fn hot_reads_use_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::SqliteStore::connect(&format!(
            "sqlite://{}",
            dir.path().join("plan.db").display()
        ))
        .await
        .unwrap();
        for sql in [
            "SELECT seq, kind, at, body FROM events WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            "DELETE FROM events WHERE topic = ?1 AND seq <= ?2",
            "SELECT * FROM tool_traces WHERE chat_id = ?1 ORDER BY turn_number, started_at, id LIMIT ?2",
            "SELECT * FROM tool_traces WHERE chat_id = ?1 AND (turn_number, started_at, id) > (?2, ?3, ?4)
                 ORDER BY turn_number, started_at, id LIMIT ?5",
            "SELECT * FROM tool_traces WHERE run_id = ?1 ORDER BY started_at",
            "SELECT * FROM agent_sessions WHERE chat_id = ?1 ORDER BY created_at, id",
            "SELECT * FROM agent_sessions WHERE run_id = ?1",
        ] {
            let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&store.reader)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect();
            assert!(
                plan.iter().any(|d| d.contains("USING INDEX") || d.contains("USING COVERING INDEX"))
                    && !plan.iter().any(|d| d.starts_with("SCAN") && !d.contains("INDEX")),
                "{sql}: {plan:?}"
            );
        }
    }
}
