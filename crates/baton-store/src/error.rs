use std::error::Error as StdError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("conflict: {0}")]
    Conflict(String),
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

    pub fn corrupt(table: &'static str, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            table,
            reason: reason.into(),
        }
    }
}
