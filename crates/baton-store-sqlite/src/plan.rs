//! A write as data: its statements with their values, and how to read the outcome. The
//! writer can then run many writes in one transaction, and replay any of them alone if
//! the group fails, with no code of the write's own left to run twice.
use std::borrow::Cow;

use baton_store::{StoreError, StoreResult};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::Arguments;

/// A value bound to a statement, owned so a write can wait in the writer's queue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(v)
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Real(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}

impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Arg::Null)
    }
}

impl Arg {
    pub(crate) fn add_to(self, args: &mut SqliteArguments<'static>) {
        // Adding an owned value to SQLite arguments cannot fail.
        let _ = match self {
            Arg::Null => args.add(None::<i64>),
            Arg::Int(v) => args.add(v),
            Arg::Real(v) => args.add(v),
            Arg::Text(v) => args.add(v),
            Arg::Blob(v) => args.add(v),
        };
    }
}

/// One statement and its values: `?N` parameters take the N-th value, bare `?` ones
/// take them in order.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: Cow<'static, str>,
    pub args: Vec<Arg>,
    /// Set when this statement writes one row by its key and may share a statement with
    /// others of its kind (see `writer`).
    pub row: Option<RowWrite>,
}

impl Stmt {
    pub fn new(sql: impl Into<Cow<'static, str>>, args: Vec<Arg>) -> Self {
        Self {
            sql: sql.into(),
            args,
            row: None,
        }
    }

    /// A write of the one row `key` of `kind.table`, with one row's values for
    /// `kind.row`. Its outcome reports one change if the row was written and none
    /// otherwise; it returns no rows.
    pub fn row(kind: &'static RowKind, key: String, args: Vec<Arg>) -> Self {
        Self {
            sql: kind.sql(1).into(),
            args,
            row: Some(RowWrite { kind, key }),
        }
    }
}

/// A kind of statement that writes rows by their key: `head`, then one `row` per row
/// (bare `?` values), then `tail`. A statement of n rows must change n rows when every row
/// is written (an `INSERT`, an upsert, or an `UPDATE … FROM (VALUES …)` on the key), so
/// statements of one kind can be joined into one and still tell whether each wrote its
/// row.
///
/// `absorb`, if set, folds a later row write of the same key into one of this kind in the
/// same group: given this write's values and the later one's kind and values, it either
/// changes this write's values to what the two leave in order, and returns true, or
/// changes nothing and returns false. It may only absorb a write that writes its row
/// exactly when this one does and whose caller reads no row back.
#[derive(Debug)]
pub(crate) struct RowKind {
    pub table: &'static str,
    pub head: &'static str,
    pub row: &'static str,
    pub tail: &'static str,
    pub absorb: Option<Absorb>,
}

pub(crate) type Absorb = fn(mine: &mut [Arg], later: &'static RowKind, theirs: &[Arg]) -> bool;

/// Whether `kind` is `other` (kinds are statics).
pub(crate) fn is(kind: &'static RowKind, other: &'static RowKind) -> bool {
    std::ptr::eq(kind, other)
}

/// `theirs` unless it is null, else `mine` (SQL's `COALESCE(theirs, mine)`).
pub(crate) fn coalesce(theirs: &Arg, mine: &Arg) -> Arg {
    if *theirs == Arg::Null { mine } else { theirs }.clone()
}

impl RowKind {
    /// The statement for `rows` rows.
    pub fn sql(&self, rows: usize) -> String {
        let mut sql =
            String::with_capacity(self.head.len() + rows * (self.row.len() + 2) + self.tail.len());
        sql.push_str(self.head);
        for i in 0..rows {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(self.row);
        }
        if !self.tail.is_empty() {
            sql.push(' ');
            sql.push_str(self.tail);
        }
        sql
    }
}

/// What a row statement writes.
#[derive(Debug, Clone)]
pub(crate) struct RowWrite {
    pub kind: &'static RowKind,
    pub key: String,
}

/// What one statement did: the rows it returned and the rows it changed.
#[derive(Default)]
pub(crate) struct Outcome {
    pub rows: Vec<SqliteRow>,
    pub changes: u64,
}

/// A write as data: its statements and how to read their outcomes (`baton_store_group`).
pub(crate) type Plan<T> = baton_store_group::Plan<Stmt, Outcome, T>;

/// Fails with `NotFound` when the statement at `index` changed no row.
pub(crate) fn changed(outcomes: &[Outcome], index: usize, what: &'static str) -> StoreResult<()> {
    match outcomes.get(index) {
        Some(o) if o.changes > 0 => Ok(()),
        _ => Err(StoreError::NotFound(what)),
    }
}

/// `items` cut into runs whose lengths are powers of two, largest first, none over `max`
/// (a power of two): a statement per run then has one of a few texts, each prepared once
/// and taken from the statement cache after, where one text per length would be
/// prepared again and again.
pub(crate) fn runs_of_two_powers<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = max.min(1 << rest.len().ilog2());
        let (run, after) = rest.split_at(n);
        rest = after;
        Some(run)
    })
}

/// `(?, ?, …), (?, ?, …)` for `rows` rows of `cols` values.
pub(crate) fn value_rows(rows: usize, cols: usize) -> String {
    let one = format!("({})", vec!["?"; cols].join(", "));
    vec![one; rows].join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_powers_of_two_up_to_the_cap() {
        let lens = |n: usize, max| {
            runs_of_two_powers(&vec![0; n], max)
                .map(<[i32]>::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(lens(13, 64), vec![8, 4, 1]);
        assert_eq!(lens(150, 64), vec![64, 64, 16, 4, 2]);
        assert_eq!(lens(0, 64), Vec::<usize>::new());
    }

    #[test]
    fn value_rows_shape() {
        assert_eq!(value_rows(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
