//! Group commit for the one writer connection. Every write is a job; the writer takes the
//! first queued job, opens a transaction, runs every job that queued meanwhile inside it
//! (each multi-statement job in its own savepoint, so a failing job leaves the others
//! intact), commits once, and only then answers each job. With many agents in flight a
//! commit carries dozens of writes instead of one.
use futures_util::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use baton_store::{StoreError, StoreResult};

/// Sends a job's answer once the commit's fate is known.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Given no connection (the transaction could not begin), a job only reports the error.
type Job =
    Box<dyn for<'c> FnOnce(Option<&'c mut SqliteConnection>) -> BoxFuture<'c, Answer> + Send>;

/// Jobs per commit at most, so one transaction never grows without bound.
const MAX_BATCH: usize = 256;

#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Writer {
    pub fn start(pool: SqlitePool) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, rx));
        Self { jobs }
    }

    /// Runs `f` in the next group transaction; its result is returned after that
    /// transaction commits (or the commit's error, if it fails).
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = match conn {
                    Some(conn) => f(conn).await,
                    None => Err(StoreError::database(std::io::Error::other("not run"))),
                };
                Box::new(move |commit: Result<(), String>| {
                    let _ = tx.send(match commit {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::database(std::io::Error::other(e))),
                    });
                }) as Answer
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::database(std::io::Error::other("the store is closed")))?;
        rx.await
            .map_err(|_| StoreError::database(std::io::Error::other("the writer stopped")))?
    }
}

async fn run(pool: SqlitePool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        let outcome = commit_batch(&pool, batch, &mut answers).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, jobs = answers.len(), "group commit failed");
        }
        for answer in answers {
            answer(outcome.clone());
        }
    }
}

async fn commit_batch(
    pool: &SqlitePool,
    batch: Vec<Job>,
    answers: &mut Vec<Answer>,
) -> Result<(), String> {
    let mut conn: PoolConnection<Sqlite> = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => return fail_all(batch, answers, e.to_string()).await,
    };
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(e) => return fail_all(batch, answers, e.to_string()).await,
    };
    for job in batch {
        answers.push(job(Some(&mut tx)).await);
    }
    tx.commit().await.map_err(|e| e.to_string())
}

/// Without a transaction no job runs; each still gets its answer (the error).
async fn fail_all(batch: Vec<Job>, answers: &mut Vec<Answer>, error: String) -> Result<(), String> {
    for job in batch {
        answers.push(job(None).await);
    }
    Err(error)
}
