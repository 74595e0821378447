//! A run executing on this instance: its state, the one place its status changes are
//! written (conditional on its lease epoch) and published, its log, and its run slot.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::{time, FrameBody, NewFrame, Run, RunControl, RunEvent, RunId, RunStatus, Topic};
use baton_events::EventHub;
use baton_store::{Store, StoreError};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::lifecycle;

/// A slot of this instance's run capacity, held while the run runs and given back
/// while it is paused.
pub(crate) struct RunSlot {
    slots: Arc<Semaphore>,
    held: tokio::sync::Mutex<Option<OwnedSemaphorePermit>>,
}

impl RunSlot {
    fn new(slots: Arc<Semaphore>, permit: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            slots,
            held: tokio::sync::Mutex::new(permit),
        }
    }

    /// Waits for a slot unless one is held; `false` if `cancel` fired first.
    pub async fn take(&self, cancel: &CancellationToken) -> bool {
        let mut held = self.held.lock().await;
        if held.is_some() {
            return true;
        }
        tokio::select! {
            p = self.slots.clone().acquire_owned() => match p {
                Ok(p) => {
                    *held = Some(p);
                    true
                }
                Err(_) => false,
            },
            _ = cancel.cancelled() => false,
        }
    }

    /// Takes a free slot now, if there is one (a resumed run, before new runs claim it).
    async fn try_take(&self) {
        let mut held = self.held.lock().await;
        if held.is_none() {
            *held = self.slots.clone().try_acquire_owned().ok();
        }
    }

    pub async fn give_back(&self) -> bool {
        self.held.lock().await.take().is_some()
    }
}

pub(crate) struct Live {
    /// The run as this instance last wrote it; its `lease.epoch` fences every write.
    run: tokio::sync::Mutex<Run>,
    pub epoch: i64,
    pub cancel: CancellationToken,
    pub paused: watch::Sender<bool>,
    pub slot: RunSlot,
    /// Set when another instance has claimed the run: nothing more is written for it.
    pub lost: AtomicBool,
    /// Set when the run stopped at the approval gate: it ends as `awaiting_approval`.
    pub held: AtomicBool,
    /// Set when a person cancelled it (which wins over the approval gate).
    cancel_requested: AtomicBool,
    pub id: RunId,
    store: Arc<dyn Store>,
    hub: Arc<EventHub>,
    /// Wakes this instance's cluster loop when the run's slot comes free.
    wake: Arc<Notify>,
    /// `log()` lines not yet written with the run.
    log: Mutex<Vec<String>>,
    /// A resumed run's script runs again from its start: its `log()` calls that repeat the
    /// lines already logged, in order, are those lines (kept and sent before), not new ones.
    /// The lines and how many of them were met again; `None` once a call differs.
    logged: Mutex<Option<(Vec<String>, usize)>>,
}

/// What a `Live` run writes to and wakes.
pub(crate) struct Links {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub wake: Arc<Notify>,
}

impl Live {
    pub fn new(
        run: Run,
        shutdown: &CancellationToken,
        slots: Arc<Semaphore>,
        permit: Option<OwnedSemaphorePermit>,
        links: Links,
    ) -> Self {
        let (paused, _) = watch::channel(run.status == RunStatus::Paused);
        Self {
            id: run.id,
            store: links.store,
            hub: links.hub,
            wake: links.wake,
            log: Mutex::new(Vec::new()),
            logged: Mutex::new((!run.log.is_empty()).then(|| (run.log.clone(), 0))),
            epoch: run.lease.epoch,
            run: tokio::sync::Mutex::new(run),
            cancel: shutdown.child_token(),
            paused,
            slot: RunSlot::new(slots, permit),
            lost: AtomicBool::new(false),
            held: AtomicBool::new(false),
            cancel_requested: AtomicBool::new(false),
        }
    }

    /// Stops the run at once and writes nothing more for it: another instance holds it.
    pub fn lose(&self, why: &str) {
        if !self.lost.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                epoch = self.epoch,
                "{why}; stopping the run here without writing"
            );
        }
        self.cancel.cancel();
    }

    /// Changes the run and writes it under this instance's epoch, with the log lines
    /// waiting; publishes its status if `publish`. `false` if the write was refused.
    pub async fn apply(&self, publish: bool, change: impl FnOnce(&mut Run)) -> bool {
        if self.lost.load(Ordering::SeqCst) {
            return false;
        }
        let mut run = self.run.lock().await;
        change(&mut run);
        run.log
            .extend(std::mem::take(&mut *self.log.lock().expect("log lock")));
        run.updated_at = time::now();
        match self.store.update_run(&run).await {
            Ok(()) => {}
            Err(StoreError::Fenced(_)) => {
                drop(run);
                self.lose("the run's lease passed to another instance (a write was refused)");
                return false;
            }
            Err(e) => tracing::error!(error = %e, "saving the run failed"),
        }
        if publish {
            let event = RunEvent::Status {
                status: run.status,
                error: run.error.clone(),
                totals: run.totals.clone(),
                owner: run.lease.owner.clone(),
            };
            self.publish(event).await;
        }
        true
    }

    /// A `run_event` frame, queued in order; nothing waits for the commit.
    pub async fn publish(&self, event: RunEvent) {
        self.hub
            .enqueue(Topic::Run(self.id), FrameBody::RunEvent(event).into())
            .await;
    }

    /// For host calls that are synchronous in the script: queued at once, so `phase` and
    /// `log` events keep the script's order (a spawned send only if the queue is full).
    pub fn publish_now(&self, event: RunEvent) {
        let frame = NewFrame::from(FrameBody::RunEvent(event));
        let topic = Topic::Run(self.id);
        if let Err(frame) = self.hub.try_enqueue(topic, frame) {
            let hub = self.hub.clone();
            tokio::spawn(async move { hub.enqueue(topic, frame).await });
        }
    }

    /// A narrator line: shown live now, written with the run's next write; on a resumed
    /// run, nothing if it repeats the next line the run logged before.
    pub fn log(&self, line: String) {
        {
            let mut logged = self.logged.lock().expect("log lock");
            if let Some((lines, met)) = logged.as_mut() {
                if lines.get(*met) == Some(&line) {
                    *met += 1;
                    if *met == lines.len() {
                        *logged = None;
                    }
                    return;
                }
                *logged = None;
            }
        }
        self.log.lock().expect("log lock").push(line.clone());
        self.publish_now(RunEvent::Log { message: line });
    }

    pub fn cancelled_by_request(&self) -> bool {
        self.cancel_requested.load(Ordering::SeqCst)
    }

    /// The run as this instance last wrote it.
    pub async fn snapshot(&self) -> Run {
        self.run.lock().await.clone()
    }

    pub async fn status(&self) -> RunStatus {
        self.run.lock().await.status
    }

    /// Acts on a control command for this run.
    pub async fn control(&self, control: RunControl) {
        match control {
            RunControl::Cancel => {
                self.cancel_requested.store(true, Ordering::SeqCst);
                self.cancel.cancel();
            }
            RunControl::Pause => {
                if !matches!(self.status().await, RunStatus::Running | RunStatus::Queued) {
                    return;
                }
                let _ = self.paused.send(true);
                if self.slot.give_back().await {
                    self.wake.notify_one();
                }
                self.apply(true, |r| lifecycle::enter_now(r, RunStatus::Paused))
                    .await;
            }
            RunControl::Resume => {
                if self.status().await != RunStatus::Paused {
                    return;
                }
                // Its slot again, if one is free; else its next agent waits for one.
                self.slot.try_take().await;
                let _ = self.paused.send(false);
                self.apply(true, |r| lifecycle::enter_now(r, RunStatus::Running))
                    .await;
            }
        }
    }
}
