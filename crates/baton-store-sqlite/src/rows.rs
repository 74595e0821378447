//! Reading SQLite columns into domain types. Every conversion that can meet a value no
//! Baton build wrote reports `Corrupt` instead of panicking.
use baton_core::{time, Timestamp};
use baton_store::StoreError;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::db;

pub(crate) fn id_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

pub(crate) fn ts(t: &Timestamp) -> i64 {
    time::to_micros(t)
}

pub(crate) struct Cols<'r> {
    pub row: &'r SqliteRow,
    pub table: &'static str,
}

impl<'r> Cols<'r> {
    pub fn new(row: &'r SqliteRow, table: &'static str) -> Self {
        Self { row, table }
    }

    fn corrupt(&self, col: &str, why: &str) -> StoreError {
        StoreError::corrupt(self.table, format!("{col}: {why}"))
    }

    pub fn text(&self, col: &str) -> Result<String, StoreError> {
        self.row.try_get::<String, _>(col).map_err(db)
    }

    pub fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.row.try_get::<Option<String>, _>(col).map_err(db)
    }

    pub fn int(&self, col: &str) -> Result<i64, StoreError> {
        self.row.try_get::<i64, _>(col).map_err(db)
    }

    pub fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.row.try_get::<Option<i64>, _>(col).map_err(db)
    }

    pub fn opt_real(&self, col: &str) -> Result<Option<f64>, StoreError> {
        self.row.try_get::<Option<f64>, _>(col).map_err(db)
    }

    pub fn uuid(&self, col: &str) -> Result<Uuid, StoreError> {
        let s = self.text(col)?;
        Uuid::parse_str(&s).map_err(|_| self.corrupt(col, "not a uuid"))
    }

    pub fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_text(col)?
            .map(|s| Uuid::parse_str(&s).map_err(|_| self.corrupt(col, "not a uuid")))
            .transpose()
    }

    pub fn time(&self, col: &str) -> Result<Timestamp, StoreError> {
        time::from_micros(self.int(col)?).ok_or_else(|| self.corrupt(col, "time out of range"))
    }

    pub fn opt_time(&self, col: &str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_int(col)?
            .map(|us| time::from_micros(us).ok_or_else(|| self.corrupt(col, "time out of range")))
            .transpose()
    }

    pub fn json(&self, col: &str) -> Result<Value, StoreError> {
        let s = self.text(col)?;
        serde_json::from_str(&s).map_err(|_| self.corrupt(col, "not JSON"))
    }

    pub fn opt_json(&self, col: &str) -> Result<Option<Value>, StoreError> {
        self.opt_text(col)?
            .map(|s| serde_json::from_str(&s).map_err(|_| self.corrupt(col, "not JSON")))
            .transpose()
    }

    pub fn parsed<T>(&self, col: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, StoreError> {
        let s = self.text(col)?;
        parse(&s).ok_or_else(|| self.corrupt(col, "unknown value"))
    }
}
