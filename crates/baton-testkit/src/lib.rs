//! A fresh, real database per test: a temporary SQLite file, or a new Postgres database
//! created on the server named by `BATON_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;

use baton_store::Store;
use baton_store_postgres::PgStore;
use baton_store_sqlite::SqliteStore;

pub mod fixtures;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub const KINDS: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

pub fn postgres_admin_url() -> String {
    std::env::var("BATON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that lives as long as this value.
pub struct TestDb {
    pub kind: Kind,
    /// The URL a Baton server would be given for this database.
    pub url: String,
    store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Database(String),
}

impl TestDb {
    pub async fn new(kind: Kind) -> Self {
        match kind {
            Kind::Sqlite => {
                let dir = std::env::temp_dir().join(format!("baton-test-{}", uuid::Uuid::now_v7()));
                let path = dir.join("nested").join("baton.db");
                let url = format!("sqlite://{}", path.display());
                let store = SqliteStore::connect(&url).await.expect("open sqlite");
                Self {
                    kind,
                    url,
                    store: Arc::new(store),
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Kind::Postgres => {
                let name = format!("baton_test_{}", uuid::Uuid::now_v7().simple());
                let admin = postgres_admin_url();
                PgStore::create_database(&admin, &name)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("create test database on {admin}: {e} (is Postgres running?)")
                    });
                let url = database_url(&admin, &name);
                let store = PgStore::connect(&url).await.expect("connect postgres");
                Self {
                    kind,
                    url,
                    store: Arc::new(store),
                    cleanup: Cleanup::Database(name),
                }
            }
        }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

/// `admin_url` with its database name replaced by `name`.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database(name) => {
                // Drop runs inside the test's runtime; a thread of its own may block.
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    rt.block_on(PgStore::drop_database(&postgres_admin_url(), &name))
                })
                .join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_url_swaps_the_name() {
        assert_eq!(
            super::database_url("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::database_url("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
        assert_eq!(
            super::database_url("postgres://u@h/p?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
