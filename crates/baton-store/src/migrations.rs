//! Embedded migrations. Each backend lists its SQL files (from `migrations/<backend>/`)
//! in order; the applied set is recorded with a checksum so that an edited, already
//! applied migration is refused instead of silently diverging.

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The file stem, e.g. `0001_init`; sorts in application order.
    pub version: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// FNV-1a 64, hex: enough to notice an edited file. Not a security boundary.
    pub fn checksum(&self) -> String {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self.sql.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x100000001b3);
        }
        format!("{h:016x}")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: Vec<String>,
    pub already: usize,
}
