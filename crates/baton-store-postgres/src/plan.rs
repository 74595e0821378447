//! A write as data: its statements with their values, and how to read the outcome. The
//! writer (`writer`) can then run the writes of many agents in one transaction, join the
//! row writes of a kind into one statement over `UNNEST` arrays, and replay any write
//! alone if the group fails, with no code of the write's own left to run twice.
use baton_core::time::Timestamp;
use baton_store::{StoreError, StoreResult};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::Arguments;
use uuid::Uuid;

/// A value bound to a statement, owned so a write can wait in the writer's queue, and
/// typed even when null, so a column of them binds as a typed array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Time(Option<Timestamp>),
    /// A whole array as one value (`= ANY($n)`); never a column of rows.
    Uuids(Vec<Uuid>),
}

macro_rules! val_from {
    ($variant:ident, $t:ty) => {
        impl From<$t> for Val {
            fn from(v: $t) -> Self {
                Val::$variant(Some(v.into()))
            }
        }
        impl From<Option<$t>> for Val {
            fn from(v: Option<$t>) -> Self {
                Val::$variant(v.map(Into::into))
            }
        }
    };
}

val_from!(Uuid, Uuid);
val_from!(Text, String);
val_from!(Text, &str);
val_from!(Int, i64);
val_from!(Float, f64);
val_from!(Bool, bool);
val_from!(Time, Timestamp);

impl Val {
    fn bind(self, args: &mut PgArguments) -> Result<(), sqlx::Error> {
        match self {
            Val::Uuid(v) => args.add(v),
            Val::Text(v) => args.add(v),
            Val::Int(v) => args.add(v),
            Val::Float(v) => args.add(v),
            Val::Bool(v) => args.add(v),
            Val::Time(v) => args.add(v),
            Val::Uuids(v) => args.add(v),
        }
        .map_err(sqlx::Error::Encode)
    }
}

/// Binds `values` one by one, as `$1`, `$2`, ….
pub(crate) fn scalars<'a>(
    values: impl Iterator<Item = &'a Val>,
) -> Result<PgArguments, sqlx::Error> {
    let mut args = PgArguments::default();
    for v in values {
        v.clone().bind(&mut args)?;
    }
    Ok(args)
}

/// Binds `rows` (each the same types in the same order) as one array per column, `$1`
/// holding every row's first value, and so on.
pub(crate) fn columns(rows: &[&[Val]]) -> Result<PgArguments, sqlx::Error> {
    fn column<T: Clone>(
        rows: &[&[Val]],
        c: usize,
        pick: impl Fn(&Val) -> Option<&Option<T>>,
    ) -> Result<Vec<Option<T>>, sqlx::Error> {
        rows.iter()
            .map(|r| {
                r.get(c).and_then(&pick).cloned().ok_or_else(|| {
                    sqlx::Error::Protocol(format!("rows of one kind differ at value {c}"))
                })
            })
            .collect()
    }
    let mut args = PgArguments::default();
    let width = rows.first().map_or(0, |r| r.len());
    for c in 0..width {
        let added = match &rows[0][c] {
            Val::Uuid(_) => args.add(column(rows, c, |v| match v {
                Val::Uuid(x) => Some(x),
                _ => None,
            })?),
            Val::Text(_) => args.add(column(rows, c, |v| match v {
                Val::Text(x) => Some(x),
                _ => None,
            })?),
            Val::Int(_) => args.add(column(rows, c, |v| match v {
                Val::Int(x) => Some(x),
                _ => None,
            })?),
            Val::Float(_) => args.add(column(rows, c, |v| match v {
                Val::Float(x) => Some(x),
                _ => None,
            })?),
            Val::Bool(_) => args.add(column(rows, c, |v| match v {
                Val::Bool(x) => Some(x),
                _ => None,
            })?),
            Val::Time(_) => args.add(column(rows, c, |v| match v {
                Val::Time(x) => Some(x),
                _ => None,
            })?),
            Val::Uuids(_) => {
                return Err(sqlx::Error::Protocol(format!(
                    "value {c} of a row is an array"
                )))
            }
        };
        added.map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// A kind of statement that writes rows by their key, each at most once: `sql` takes
/// one array per value (`$1::uuid[]`, …), reads them with `UNNEST`, and returns one row
/// per row it wrote, whose text column `k` is that row's key. Statements of one kind,
/// on distinct keys, can then be joined into one and still tell which wrote their row.
///
/// `absorb`, if set, folds a later row write of the same key into one of this kind in the
/// same group: given this write's values and the later one's kind and values, it either
/// changes this write's values to what the two leave in order, and returns true, or
/// changes nothing and returns false. It may only absorb a write that writes its row
/// exactly when this one does and whose caller reads no returned row.
#[derive(Debug)]
pub(crate) struct RowKind {
    pub table: &'static str,
    pub sql: &'static str,
    pub absorb: Option<Absorb>,
}

pub(crate) type Absorb = fn(mine: &mut [Val], later: &'static RowKind, theirs: &[Val]) -> bool;

/// Whether `kind` is `other` (kinds are statics).
pub(crate) fn is(kind: &'static RowKind, other: &'static RowKind) -> bool {
    std::ptr::eq(kind, other)
}

/// `theirs` if it holds a value, else `mine` (SQL's `COALESCE(theirs, mine)`).
pub(crate) fn coalesce(theirs: &Val, mine: &Val) -> Val {
    let null = matches!(
        theirs,
        Val::Uuid(None)
            | Val::Text(None)
            | Val::Int(None)
            | Val::Float(None)
            | Val::Bool(None)
            | Val::Time(None)
    );
    if null { mine } else { theirs }.clone()
}

/// Frames appended to one topic's event log.
#[derive(Debug, Clone)]
pub(crate) struct Frames {
    pub topic: String,
    /// `(kind, body as JSON text)` of each frame, in order.
    pub frames: Vec<(String, String)>,
    pub at: Timestamp,
}

/// One statement of a write.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    /// Run as it is: text with `$n` parameters and their values.
    One { sql: String, args: Vec<Val> },
    /// One row of a kind, written by its key.
    Row {
        kind: &'static RowKind,
        key: String,
        vals: Vec<Val>,
    },
    /// Appends to an event log; its outcome's `first_seq` is its first frame's.
    Frames(Frames),
}

impl Stmt {
    pub fn one(sql: impl Into<String>, args: Vec<Val>) -> Self {
        Stmt::One {
            sql: sql.into(),
            args,
        }
    }

    pub fn row(kind: &'static RowKind, key: String, vals: Vec<Val>) -> Self {
        Stmt::Row { kind, key, vals }
    }
}

/// What one statement did: the rows it returned and the rows it changed (a row
/// statement: its own row, if it wrote it).
#[derive(Default)]
pub(crate) struct Outcome {
    pub rows: Vec<PgRow>,
    pub changes: u64,
    pub first_seq: i64,
}

/// A write as data: its statements and how to read their outcomes (`baton_store_group`).
pub(crate) type Plan<T> = baton_store_group::Plan<Stmt, Outcome, T>;

/// Refuses with `err` when the statement at `index` wrote nothing.
pub(crate) fn wrote(outcomes: &[Outcome], index: usize, err: StoreError) -> StoreResult<()> {
    match outcomes.get(index) {
        Some(o) if o.changes > 0 => Ok(()),
        _ => Err(err),
    }
}
