//! Two groups of writes at a time, on two connections. A group's statements are mostly
//! the rows of agents nobody else writes, and executing them is most of its time: while
//! one group still runs or commits, the next executes the statements that cannot meet
//! it, and the rest once it has committed.
//!
//! A statement of the next group runs early only if it is a row statement on a row the
//! group ahead does not write, and no plain statement comes before it in either group.
//! A row statement touches its own row alone (the rule [`crate::writer`]'s joins rest
//! on), so such a row is neither locked nor changed by the group ahead: running it
//! before that group commits gives what running it after would. A plain statement may
//! read or write anything, so it and all after it wait; so do the event-log appends
//! (they number frames after the group ahead's). The group commits only after the one
//! ahead of it is done, and if the one ahead fails and replays its writes one by one,
//! the rows it replays are not this group's.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use baton_store_group::{next_batch, refuse_rest, Msg, Waiters};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::plan::{Outcome, Stmt};
use crate::writer::{commit_group, Job, Writer};

/// Groups open at once.
pub(crate) const LANES: usize = 2;

/// How long a group holds the rows it wrote early while waiting for the group ahead.
/// Past it, it lets them go and replays its writes once that one is done: a transaction
/// of another instance waiting for those rows while the group ahead waits for it would
/// otherwise wait forever, and the server cannot see that cycle (half of it is here).
#[cfg(not(test))]
pub(crate) const HOLD: Duration = Duration::from_secs(5);
#[cfg(test)]
pub(crate) const HOLD: Duration = Duration::from_millis(300);

/// Writes per commit at most, so one transaction never grows without bound.
const MAX_BATCH: usize = 1_024;

/// Starts the writer task. Groups take a connection from `pool` each; `instance` signs
/// the event-log notifications, so an instance can tell its own frames from others'.
pub(crate) fn start(pool: PgPool, instance: String) -> Writer {
    let (queue, rx) = Writer::new();
    tokio::spawn(run(pool, instance, rx));
    queue
}

async fn run(pool: PgPool, instance: String, mut rx: mpsc::UnboundedReceiver<Msg<Stmt, Outcome>>) {
    let lanes = Arc::new(Semaphore::new(LANES));
    let mut ahead: Option<Ahead> = None;
    loop {
        // A lane first: the batch then takes everything queued until one was free.
        let Ok(lane) = lanes.clone().acquire_owned().await else {
            return;
        };
        let Some((batch, waiters)) = next_batch(&mut rx, MAX_BATCH).await else {
            return;
        };
        let closing = waiters.closing();
        let (group, next) = launch(&pool, &instance, batch, waiters, ahead.take(), lane);
        ahead = Some(next);
        if closing {
            let waiters = group.await;
            refuse_rest(&mut rx);
            if let Ok((waiters, _)) = waiters {
                waiters.closed();
            }
            return;
        }
    }
}

/// Starts `batch` as a group after `ahead`, holding `lane` until it is done. Returns its
/// task, which hands back its waiters (settled) and whether it ran some statements
/// while `ahead` was open, and what the group after it is to know of it.
pub(crate) fn launch(
    pool: &PgPool,
    instance: &str,
    batch: Vec<Job>,
    mut waiters: Waiters,
    ahead: Option<Ahead>,
    lane: OwnedSemaphorePermit,
) -> (JoinHandle<(Waiters, bool)>, Ahead) {
    let (done, next) = Ahead::of(&batch);
    let (pool, instance) = (pool.clone(), instance.to_string());
    let group = tokio::spawn(async move {
        let overlapped = commit_group(&pool, &instance, batch, ahead).await;
        waiters.settle();
        let _ = done.send(());
        drop(lane);
        (waiters, overlapped)
    });
    (group, next)
}

/// What an open group tells the next: the rows it writes, whether it runs a plain
/// statement, and when it is done (committed, or replayed write by write).
pub(crate) struct Ahead {
    rows: HashMap<&'static str, HashSet<String>>,
    plain: bool,
    done: oneshot::Receiver<()>,
    finished: bool,
}

impl Ahead {
    /// What `batch` will tell the group after it, and the sender that says it is done.
    pub(crate) fn of(batch: &[Job]) -> (oneshot::Sender<()>, Self) {
        let (tx, done) = oneshot::channel();
        let mut rows: HashMap<&'static str, HashSet<String>> = HashMap::new();
        let mut plain = false;
        for st in batch.iter().flat_map(|job| job.stmts()) {
            match st {
                Stmt::Row { kind, key, .. } => {
                    rows.entry(kind.table).or_default().insert(key.clone());
                }
                Stmt::One { .. } => plain = true,
                Stmt::Frames(_) => {}
            }
        }
        (
            tx,
            Self {
                rows,
                plain,
                done,
                finished: false,
            },
        )
    }

    /// Whether it is done already (a group that ended without saying so is done too).
    pub(crate) fn is_done(&mut self) -> bool {
        if !self.finished {
            self.finished = !matches!(
                self.done.try_recv(),
                Err(oneshot::error::TryRecvError::Empty)
            );
        }
        self.finished
    }

    pub(crate) async fn done(&mut self) {
        if !self.finished {
            let _ = (&mut self.done).await;
            self.finished = true;
        }
    }

    /// Whether it is done within `limit`.
    pub(crate) async fn done_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.done()).await.is_ok()
    }
}

/// For each statement of a group, in order: whether it may run before `ahead` is done.
pub(crate) fn early<'s, A>(
    stmts: impl Iterator<Item = (A, &'s Stmt)>,
    ahead: Option<&Ahead>,
) -> Vec<bool> {
    let Some(ahead) = ahead else {
        return stmts.map(|_| true).collect();
    };
    let mut open = !ahead.plain;
    stmts
        .map(|(_, st)| match st {
            Stmt::Row { kind, key, .. } => {
                open && !ahead.rows.get(kind.table).is_some_and(|r| r.contains(key))
            }
            Stmt::One { .. } => {
                open = false;
                false
            }
            Stmt::Frames(_) => false,
        })
        .collect()
}
