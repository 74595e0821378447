//! The plumbing both SQL stores share for group commit: a write as data (a [`Plan`]: its
//! statements and how to read their outcomes), the [`Queue`] that takes plans to a
//! backend's one writer task, the batches that task takes from it, and the answer each
//! write gets once the fate of its transaction is known. What a statement is, how a
//! group runs and what an outcome holds are each backend's own.
#![forbid(unsafe_code)]

use baton_store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

pub type Decode<O, T> = Box<dyn Fn(Vec<O>) -> StoreResult<T> + Send + Sync>;

/// The statements of one write (atomic together) and how to turn their outcomes into
/// its answer. `decode` may refuse (a row that was not written); the write then fails and
/// nothing of it stays. It may run twice (grouped, then alone), so it is a plain `Fn`.
pub struct Plan<S, O, T> {
    pub stmts: Vec<S>,
    pub decode: Decode<O, T>,
    /// Maps an SQL error of this write (a constraint, say) to what the caller should see.
    pub on_error: fn(sqlx::Error) -> StoreError,
}

impl<S, O, T> Plan<S, O, T> {
    pub fn new(
        stmts: Vec<S>,
        decode: impl Fn(Vec<O>) -> StoreResult<T> + Send + Sync + 'static,
    ) -> Self {
        Self {
            stmts,
            decode: Box::new(decode),
            on_error: |e| StoreError::database(e),
        }
    }

    pub fn on_error(mut self, f: fn(sqlx::Error) -> StoreError) -> Self {
        self.on_error = f;
        self
    }
}

impl<S, O> Plan<S, O, ()> {
    /// Statements whose outcome needs no reading.
    pub fn exec(stmts: Vec<S>) -> Self {
        Self::new(stmts, |_| Ok(()))
    }
}

/// A write whose value type the writer does not know.
pub trait Job<S, O>: Send + Sync {
    fn stmts(&self) -> &[S];
    /// Whether someone waits for its commit.
    fn awaited(&self) -> bool;
    /// Reads its outcomes; false if the write refuses them.
    fn accept(&mut self, outcomes: Vec<O>) -> bool;
    fn failed(&mut self, e: sqlx::Error);
    /// Answers once the fate of its transaction is known.
    fn answer(self: Box<Self>, commit: Result<(), String>);
}

struct Typed<S, O, T> {
    plan: Plan<S, O, T>,
    result: Option<StoreResult<T>>,
    /// None for a write nobody waits for: its failure is logged.
    reply: Option<oneshot::Sender<StoreResult<T>>>,
}

/// `plan` as a job; `reply`, if any, gets its answer.
pub fn job<S, O, T>(
    plan: Plan<S, O, T>,
    reply: Option<oneshot::Sender<StoreResult<T>>>,
) -> Box<dyn Job<S, O>>
where
    S: Send + Sync + 'static,
    O: 'static,
    T: Send + Sync + 'static,
{
    Box::new(Typed {
        plan,
        result: None,
        reply,
    })
}

impl<S, O, T> Job<S, O> for Typed<S, O, T>
where
    S: Send + Sync,
    T: Send + Sync,
{
    fn stmts(&self) -> &[S] {
        &self.plan.stmts
    }

    fn awaited(&self) -> bool {
        self.reply.is_some()
    }

    fn accept(&mut self, outcomes: Vec<O>) -> bool {
        let r = (self.plan.decode)(outcomes);
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn failed(&mut self, e: sqlx::Error) {
        self.result = Some(Err((self.plan.on_error)(e)));
    }

    fn answer(self: Box<Self>, commit: Result<(), String>) {
        let out = match (self.result, commit) {
            // Its own failure says more than the rollback it caused.
            (Some(Err(own)), _) => Err(own),
            (_, Err(e)) => Err(StoreError::database(std::io::Error::other(e))),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Ok(())) => Err(StoreError::database(std::io::Error::other("not run"))),
        };
        match self.reply {
            Some(reply) => {
                let _ = reply.send(out);
            }
            None => {
                if let Err(e) = out {
                    tracing::error!(error = %e, "a queued write failed");
                }
            }
        }
    }
}

pub enum Msg<S, O> {
    Job(Box<dyn Job<S, O>>),
    /// Answered once every write sent before it has committed or failed.
    Settle(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// The sending side of a backend's writer.
pub struct Queue<S, O> {
    tx: mpsc::UnboundedSender<Msg<S, O>>,
}

impl<S, O> Clone for Queue<S, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

fn closed() -> StoreError {
    StoreError::database(std::io::Error::other("the store is closed"))
}

impl<S: Send + Sync + 'static, O: 'static> Queue<S, O> {
    /// A queue and what its writer task reads.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Msg<S, O>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }

    fn send<T: Send + Sync + 'static>(
        &self,
        plan: Plan<S, O, T>,
        reply: Option<oneshot::Sender<StoreResult<T>>>,
    ) -> StoreResult<()> {
        self.tx
            .send(Msg::Job(job(plan, reply)))
            .map_err(|_| closed())
    }

    /// Runs `plan` in the next group transaction; answers after that commit.
    pub async fn write<T: Send + Sync + 'static>(&self, plan: Plan<S, O, T>) -> StoreResult<T> {
        let (reply, rx) = oneshot::channel();
        self.send(plan, Some(reply))?;
        rx.await.map_err(|_| closed())?
    }

    /// Queues `plan` for the next group and returns at once; its failure is logged.
    pub fn submit<T: Send + Sync + 'static>(&self, plan: Plan<S, O, T>) {
        if self.send(plan, None).is_err() {
            tracing::error!("a write was queued after the store closed");
        }
    }

    /// Returns once every write sent before has committed or failed: a write made
    /// elsewhere after this commits after them.
    pub async fn settled(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Settle(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Commits what is queued; later writes fail.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Those waiting on a batch: to know it settled, or to close the writer after it.
#[derive(Default)]
pub struct Waiters {
    settles: Vec<oneshot::Sender<()>>,
    close: Option<oneshot::Sender<()>>,
}

impl Waiters {
    /// Tells those who waited that the batch is settled; true if the writer is to close.
    pub fn settle(&mut self) -> bool {
        for ack in self.settles.drain(..) {
            let _ = ack.send(());
        }
        self.close.is_some()
    }

    /// Whether the writer is to close after this batch.
    pub fn closing(&self) -> bool {
        self.close.is_some()
    }

    /// Tells the closer the writer is closed.
    pub fn closed(self) {
        if let Some(ack) = self.close {
            let _ = ack.send(());
        }
    }
}

/// Waits for a write, then takes every write already queued, `max` at most, up to a
/// request to close. None once every sender is gone.
pub async fn next_batch<S, O>(
    rx: &mut mpsc::UnboundedReceiver<Msg<S, O>>,
    max: usize,
) -> Option<(Vec<Box<dyn Job<S, O>>>, Waiters)> {
    let first = rx.recv().await?;
    let mut batch = Vec::new();
    let mut waiters = Waiters::default();
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg {
            Msg::Job(job) => batch.push(job),
            Msg::Settle(ack) => waiters.settles.push(ack),
            Msg::Close(ack) => {
                waiters.close = Some(ack);
                break;
            }
        }
        if batch.len() < max {
            next = rx.try_recv().ok();
        }
    }
    Some((batch, waiters))
}

/// After a close: writes that raced it get their error instead of hanging.
pub fn refuse_rest<S, O>(rx: &mut mpsc::UnboundedReceiver<Msg<S, O>>) {
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Job(job) => job.answer(Err("the store is closed".into())),
            Msg::Settle(ack) | Msg::Close(ack) => {
                let _ = ack.send(());
            }
        }
    }
}
