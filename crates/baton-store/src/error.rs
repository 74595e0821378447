use std::error::Error as StdError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
    /// A write for work whose lease another instance has claimed since the writer's
    /// epoch: the writer no longer owns the work and must stop it.
    #[error("the {0}'s lease has passed to another instance")]
    Fenced(&'static str),
    /// A stored row that cannot be read back (bad enum text, malformed JSON).
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("migration {version} failed: {reason}")]
    Migration { version: String, reason: String },
    #[error("database error: {0}")]
    Database(#[source] Box<dyn StdError + Send + Sync>),
}

impl StoreError {
    pub fn database(e: impl StdError + Send + Sync + 'static) -> Self {
        StoreError::Database(Box::new(e))
    }

    /// An equivalent error for a second caller (errors are not `Clone`: the source of a
    /// database error is kept as text).
    pub fn duplicate(&self) -> Self {
        match self {
            StoreError::NotFound(w) => StoreError::NotFound(w),
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::Fenced(w) => StoreError::Fenced(w),
            StoreError::Corrupt { table, reason } => StoreError::Corrupt {
                table,
                reason: reason.clone(),
            },
            StoreError::Migration { version, reason } => StoreError::Migration {
                version: version.clone(),
                reason: reason.clone(),
            },
            StoreError::Database(e) => {
                StoreError::Database(Box::new(std::io::Error::other(e.to_string())))
            }
        }
    }

    pub fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            reason: reason.into(),
        }
    }
}
