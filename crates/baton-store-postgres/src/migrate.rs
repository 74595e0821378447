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
    let result = apply_all(&mut conn).await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await;
    let report = result?;
    unlock.map_err(db)?;
    Ok(report)
}

async fn apply_all(conn: &mut sqlx::PgConnection) -> StoreResult<MigrationReport> {
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
    for m in MIGRATIONS {
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
