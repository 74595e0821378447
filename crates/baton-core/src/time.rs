//! Timestamps with microsecond precision: the finest both SQLite (integer µs) and
//! Postgres (`timestamptz`) store, so a value round-trips unchanged through either.
use chrono::{DateTime, SubsecRound, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

pub fn to_micros(t: &Timestamp) -> i64 {
    t.timestamp_micros()
}

/// `None` when the value is outside chrono's range (only a corrupted row or a forged
/// cursor can hold one).
pub fn from_micros(us: i64) -> Option<Timestamp> {
    Utc.timestamp_micros(us).single()
}

/// RFC 3339 in UTC with microseconds, as every frame's `at`.
pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
