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
];

/// Applies every pending migration, each in its own `BEGIN IMMEDIATE` transaction so a
/// second process starting on the same file waits and then finds the work done.
pub(crate) async fn run(pool: &SqlitePool) -> StoreResult<MigrationReport> {
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
    for m in MIGRATIONS {
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
