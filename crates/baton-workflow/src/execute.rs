//! Executing a claimed run's script here, from its journal, to its end.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton_core::{time, AgentStatus, RunStatus, RunTotals};
use baton_script::ScriptError;
use baton_store::StoreError;
use tokio::sync::Semaphore;

use crate::host::RunHost;
use crate::lifecycle;
use crate::live::Live;
use crate::shared::Inner;

/// Runs a claimed run's script to its end here (or until it is lost or shut down).
pub(crate) async fn execute(inner: Arc<Inner>, live: Arc<Live>) {
    let run = live.snapshot().await;
    let options = run.options.clone();
    let me = &inner.config.cluster.instance;
    if run.lease.epoch > 1 {
        // An earlier holder may have stopped with agents in flight (its instance died, or
        // it was resumed after that): those agents' sessions end here, and the script's
        // re-run asks for them again (completed ones come from the journal).
        let why = "interrupted: the instance running it stopped";
        if let Err(e) = inner.store.close_run_sessions(run.id, why).await {
            tracing::warn!(error = %e, "closing the agents of the last holder failed");
        }
        if run.status == RunStatus::Running {
            live.log(format!(
                "taken over by instance {me} (lease epoch {})",
                run.lease.epoch
            ));
        }
    }
    tracing::info!(epoch = live.epoch, "running here");
    if !live.slot.take(&live.cancel).await {
        finish_early(&inner, &live).await;
        return;
    }
    if !live
        .apply(true, |r| lifecycle::enter_now(r, RunStatus::Running))
        .await
    {
        return;
    }

    let journal = inner.store.list_journal(run.id).await.unwrap_or_default();
    let spent: u64 = journal
        .iter()
        .filter(|e| e.status == AgentStatus::Completed)
        // The budget counts output tokens (`RunHost::admit`).
        .map(|e| e.output_tokens.max(0) as u64)
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
        noted: Default::default(),
        prefixes: Default::default(),
        approval_at: (!options.approved).then_some((
            u32::try_from(inner.config.approval_agents).unwrap_or(u32::MAX),
            inner.config.approval_tokens,
        )),
        in_flight: Default::default(),
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
        live.apply(false, |_| {}).await;
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
    let totals = RunTotals {
        agents: journal.len() as u64,
        input_tokens: journal.iter().map(|e| e.input_tokens).sum(),
        output_tokens: journal.iter().map(|e| e.output_tokens).sum(),
        cost_usd: journal.iter().map(|e| e.cost_usd).sum(),
    };
    let held = live.held.load(Ordering::SeqCst) && !live.cancelled_by_request();
    live.apply(true, |r| {
        r.totals = totals;
        if held {
            // Stopped at the approval gate: nobody holds it until a person approves.
            r.lease.owner = None;
            lifecycle::enter_now(r, RunStatus::AwaitingApproval);
            return;
        }
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
    live.apply(true, |r| {
        r.lease.owner = None;
        lifecycle::enter_now(r, RunStatus::Cancelled)
    })
    .await;
}
