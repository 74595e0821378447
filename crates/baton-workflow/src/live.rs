//! A run executing on this instance: its state, the one place its status changes are
//! written (conditional on its lease epoch) and published, its run slot, and the
//! execution of its script.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::{time, AgentStatus, Run, RunControl, RunStatus};
use baton_script::ScriptError;
use baton_store::StoreError;
use serde_json::json;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::engine::{Inner, Options};
use crate::host::RunHost;
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

    async fn give_back(&self) -> bool {
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
}

impl Live {
    pub fn new(
        run: Run,
        shutdown: &CancellationToken,
        slots: Arc<Semaphore>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let (paused, _) = watch::channel(run.status == RunStatus::Paused);
        Self {
            epoch: run.lease.epoch,
            run: tokio::sync::Mutex::new(run),
            cancel: shutdown.child_token(),
            paused,
            slot: RunSlot::new(slots, permit),
            lost: AtomicBool::new(false),
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
    pub async fn apply(&self, inner: &Inner, publish: bool, change: impl FnOnce(&mut Run)) -> bool {
        if self.lost.load(Ordering::SeqCst) {
            return false;
        }
        let mut run = self.run.lock().await;
        change(&mut run);
        if let Some(lines) = inner.logs.lock().expect("logs lock").remove(&run.id) {
            run.log.extend(lines);
        }
        run.updated_at = time::now();
        match inner.store.update_run(&run).await {
            Ok(()) => {}
            Err(StoreError::Fenced(_)) => {
                drop(run);
                self.lose("the run's lease passed to another instance (a write was refused)");
                return false;
            }
            Err(e) => tracing::error!(error = %e, "saving the run failed"),
        }
        if publish {
            let body = json!({ "event": "status", "status": run.status, "error": run.error,
                "totals": run.totals });
            inner.publish_run(run.id, body).await;
        }
        true
    }

    pub async fn status(&self) -> RunStatus {
        self.run.lock().await.status
    }

    /// Acts on a control command for this run.
    pub async fn control(&self, inner: &Inner, control: RunControl) {
        match control {
            RunControl::Cancel => self.cancel.cancel(),
            RunControl::Pause => {
                if !matches!(self.status().await, RunStatus::Running | RunStatus::Queued) {
                    return;
                }
                let _ = self.paused.send(true);
                if self.slot.give_back().await {
                    inner.wake.notify_one();
                }
                self.apply(inner, true, |r| lifecycle::enter_now(r, RunStatus::Paused))
                    .await;
            }
            RunControl::Resume => {
                if self.status().await != RunStatus::Paused {
                    return;
                }
                // Its slot again, if one is free; else its next agent waits for one.
                self.slot.try_take().await;
                let _ = self.paused.send(false);
                self.apply(inner, true, |r| lifecycle::enter_now(r, RunStatus::Running))
                    .await;
            }
        }
    }
}

/// Runs a claimed run's script to its end here (or until it is lost or shut down).
pub(crate) async fn execute(inner: Arc<Inner>, live: Arc<Live>) {
    let run = live.run.lock().await.clone();
    let options: Options = serde_json::from_value(run.options.clone()).unwrap_or_default();
    let me = &inner.config.cluster.instance;
    if run.status == RunStatus::Running {
        // Its last holder stopped with agents in flight: those agents' sessions end here,
        // and the script's re-run asks for them again (completed ones come from the
        // journal).
        let why = "interrupted: the instance running it stopped";
        if let Err(e) = inner.store.close_run_sessions(run.id, why).await {
            tracing::warn!(error = %e, "closing the agents of the last holder failed");
        }
        if run.lease.epoch > 1 {
            inner.append_log(
                run.id,
                format!(
                    "taken over by instance {me} (lease epoch {})",
                    run.lease.epoch
                ),
            );
        }
    }
    tracing::info!(epoch = live.epoch, "running here");
    if !live.slot.take(&live.cancel).await {
        finish_early(&inner, &live).await;
        return;
    }
    if !live
        .apply(&inner, true, |r| {
            lifecycle::enter_now(r, RunStatus::Running)
        })
        .await
    {
        return;
    }

    let journal = inner.store.list_journal(run.id).await.unwrap_or_default();
    let spent: u64 = journal
        .iter()
        .filter(|e| e.status == AgentStatus::Completed)
        .map(|e| (e.input_tokens + e.output_tokens) as u64)
        .sum();
    let host = Arc::new(RunHost {
        inner: inner.clone(),
        live: live.clone(),
        run_id: run.id,
        slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
        cancel: live.cancel.clone(),
        paused: live.paused.subscribe(),
        budget_total: options.budget_tokens,
        spent: Arc::new(AtomicU64::new(spent)),
        started: Arc::new(AtomicU32::new(0)),
        seq: Arc::new(AtomicI64::new(
            journal.iter().map(|e| e.seq).max().unwrap_or(0),
        )),
        occurrences: Arc::new(Mutex::new(HashMap::new())),
        caps: options.capabilities,
        workspace: options.workspace.as_ref().map(PathBuf::from),
        depth: 0,
        completed: Arc::new(
            journal
                .iter()
                .filter(|e| e.status == AgentStatus::Completed)
                .map(|e| (e.key.clone(), e.clone()))
                .collect(),
        ),
    });
    let outcome = match baton_script::parse(&run.script).await {
        Ok(script) => {
            baton_script::run(
                &script,
                run.args.as_ref(),
                options.budget_tokens,
                host,
                inner.script_limits(),
                live.cancel.clone(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    // The script is done: its slot goes to the next run now, not after the writes.
    live.slot.give_back().await;
    if live.lost.load(Ordering::SeqCst) {
        return;
    }
    if inner.shutdown.is_cancelled() {
        // Left as it is: whoever claims it next resumes it from its journal.
        tracing::info!("stopping for shutdown; the run resumes from its journal");
        live.apply(&inner, false, |_| {}).await;
        return;
    }
    // Nothing of a finished run may keep running: agents still marked running were
    // stopped with it (after their own queued writes, which this one follows).
    match inner
        .store
        .stop_running_agents(run.id, live.epoch, time::now())
        .await
    {
        Ok(_) => {}
        Err(StoreError::Fenced(_)) => {
            live.lose("the run's lease passed to another instance");
            return;
        }
        Err(e) => tracing::error!(error = %e, "marking the run's stopped agents failed"),
    }
    let journal = inner.store.list_journal(run.id).await.unwrap_or_default();
    let totals = json!({
        "agents": journal.len(),
        "input_tokens": journal.iter().map(|e| e.input_tokens).sum::<i64>(),
        "output_tokens": journal.iter().map(|e| e.output_tokens).sum::<i64>(),
        "cost_usd": journal.iter().map(|e| e.cost_usd).sum::<f64>(),
    });
    live.apply(&inner, true, |r| {
        r.totals = totals;
        match outcome {
            Ok(v) => {
                r.result = Some(v);
                r.error = None;
                lifecycle::enter_now(r, RunStatus::Completed);
            }
            Err(ScriptError::Cancelled) => lifecycle::enter_now(r, RunStatus::Cancelled),
            Err(e) => {
                r.error = Some(e.to_string());
                lifecycle::enter_now(r, RunStatus::Failed);
            }
        }
    })
    .await;
}

/// A run stopped before it got a slot: cancelled, or left queued for shutdown.
async fn finish_early(inner: &Inner, live: &Live) {
    if live.lost.load(Ordering::SeqCst) {
        return;
    }
    if inner.shutdown.is_cancelled() {
        return;
    }
    live.apply(inner, true, |r| {
        r.lease.owner = None;
        lifecycle::enter_now(r, RunStatus::Cancelled)
    })
    .await;
}
