//! The loop by which an instance holds and finds work (SPEC 4.6): it renews its leases
//! and stops whatever another instance has claimed since; acts on control requests left
//! for its runs, sessions and tasks; and claims queued runs and tasks up to its free
//! slots, and runs, chat sessions and tasks whose holder's lease lapsed. It wakes on its sweep interval, when a slot
//! frees or a run is queued here, and on other instances' notices.
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use baton_core::{RunId, SessionId};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::execute;
use crate::live::{Links, Live};
use crate::shared::Inner;

/// Sessions claimed per sweep at most; the next sweep takes more.
const SESSIONS_PER_SWEEP: u32 = 64;

pub(crate) async fn spawn(inner: Arc<Inner>, started_at: baton_core::Timestamp) {
    let notices = match inner.store.work_notifications().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other instances' notices; sweeping only");
            None
        }
    };
    let me = inner.config.cluster.instance.clone();
    let span = tracing::info_span!("cluster", instance = %me);
    tokio::spawn(tracing::Instrument::instrument(
        run(inner, notices, started_at),
        span,
    ));
}

async fn run(
    inner: Arc<Inner>,
    mut notices: Option<baton_store::WorkNotifications>,
    started_at: baton_core::Timestamp,
) {
    let cfg = inner.config.cluster.clone();
    let mut renew_at = Instant::now();
    let task_wake = inner.agents.work_signal();
    loop {
        if inner.shutdown.is_cancelled() {
            return;
        }
        if Instant::now() >= renew_at {
            renew_at = Instant::now() + cfg.lease_renew;
            if !inner.hold_renewals.load(Ordering::SeqCst) {
                renew(&inner, started_at).await;
            }
        }
        controls(&inner).await;
        claim(&inner).await;
        let wait = cfg
            .sweep
            .min(renew_at.saturating_duration_since(Instant::now()));
        let notice = async {
            match notices.as_mut() {
                Some(n) => {
                    n.next().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(10))) => {}
            _ = inner.wake.notified() => {}
            _ = task_wake.notified() => {}
            _ = notice => {}
            _ = inner.shutdown.cancelled() => return,
        }
    }
}

async fn renew(inner: &Arc<Inner>, started_at: baton_core::Timestamp) {
    let cfg = &inner.config.cluster;
    if let Err(e) = inner
        .store
        .heartbeat(&cfg.instance, started_at, cfg.lease_ttl)
        .await
    {
        tracing::warn!(error = %e, "heartbeat failed");
    }
    // What is active before the renewal was held before it: anything claimed while
    // the renewal ran is judged at the next one.
    let runs: Vec<(RunId, Arc<Live>)> = inner
        .active
        .lock()
        .expect("active lock")
        .iter()
        .map(|(id, l)| (*id, l.clone()))
        .collect();
    let sessions = inner.agents.leased_sessions();
    let tasks = inner.agents.leased_tasks();
    let held = match inner.store.renew_leases(&cfg.instance, cfg.lease_ttl).await {
        Ok(h) => h,
        Err(e) => {
            // Not lost yet: the lease lasts its TTL, and the next renewal may get through.
            tracing::warn!(error = %e, "renewing leases failed");
            return;
        }
    };
    for (id, live) in runs {
        if !held.runs.contains(&(id, live.epoch)) && !live.cancel.is_cancelled() {
            let _span = tracing::info_span!("run", run = %id).entered();
            live.lose("another instance claimed the run (its lease renewal found it gone)");
        }
    }
    for (id, epoch) in sessions {
        if !held.sessions.contains(&(id, epoch)) {
            inner.agents.lose(id, epoch);
        }
    }
    for (id, epoch) in tasks {
        if !held.tasks.contains(&(id, epoch)) {
            inner.agents.lose_task(id, epoch);
        }
    }
}

async fn controls(inner: &Arc<Inner>) {
    let me = &inner.config.cluster.instance;
    let requests = match inner.store.take_run_controls(me).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reading control requests failed");
            return;
        }
    };
    match inner.store.take_session_cancels(me).await {
        Ok(ids) => {
            for id in ids {
                if inner.agents.cancel_here(id) {
                    tracing::info!(session = %id, "cancelling a session at another instance's request");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading session cancel requests failed"),
    }
    match inner.store.take_task_cancels(me).await {
        Ok(ids) => {
            for id in ids {
                if inner.agents.cancel_task_here(id) {
                    tracing::info!(task = %id, "cancelling a task at another instance's request");
                } else if let Err(e) = inner.store.request_task_cancel(id).await {
                    // Claimed here but still starting: asked again, it is cancelled at
                    // the next sweep, once it runs.
                    tracing::warn!(task = %id, error = %e, "keeping a cancel request failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "reading task cancel requests failed"),
    }
    for (id, control) in requests {
        match inner.live(id) {
            Some(live) => {
                tracing::info!(run = %id, control = control.as_str(), "acting on a request from another instance");
                live.control(control).await;
            }
            None => {
                tracing::warn!(run = %id, control = control.as_str(), "a control request for a run not running here")
            }
        }
    }
}

async fn claim(inner: &Arc<Inner>) {
    let cfg = &inner.config.cluster;
    let free = inner.run_slots.available_permits();
    if free > 0 {
        match inner
            .store
            .claim_runs(&cfg.instance, cfg.lease_ttl, free as u32)
            .await
        {
            Ok(runs) => {
                for run in runs {
                    let permit = inner.run_slots.clone().try_acquire_owned().ok();
                    let live = Arc::new(Live::new(
                        run.clone(),
                        &inner.shutdown,
                        inner.run_slots.clone(),
                        permit,
                        Links {
                            store: inner.store.clone(),
                            hub: inner.hub.clone(),
                            wake: inner.wake.clone(),
                        },
                    ));
                    let id = run.id;
                    inner
                        .active
                        .lock()
                        .expect("active lock")
                        .insert(id, live.clone());
                    let task_inner = inner.clone();
                    let span = tracing::info_span!("run", run = %id, name = %run.name);
                    inner.tasks.spawn(tracing::Instrument::instrument(
                        async move {
                            execute::execute(task_inner.clone(), live.clone()).await;
                            let mut active = task_inner.active.lock().expect("active lock");
                            if active.get(&id).is_some_and(|l| Arc::ptr_eq(l, &live)) {
                                active.remove(&id);
                            }
                            drop(active);
                            // Its slot is free (dropped with `live`): another run may start.
                            task_inner.wake.notify_one();
                        },
                        span,
                    ));
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming runs failed"),
        }
    }
    match inner
        .store
        .claim_sessions(&cfg.instance, cfg.lease_ttl, SESSIONS_PER_SWEEP)
        .await
    {
        Ok(sessions) => {
            for s in sessions {
                let id: SessionId = s.id;
                if let Err(e) = inner.agents.adopt(s).await {
                    tracing::warn!(session = %id, error = %e, "taking over a session failed");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "claiming sessions failed"),
    }
    inner.agents.claim_and_start_tasks().await;
    inner.agents.tell_untold_chats().await;
    inner.agents.sweep_orphan_attachments().await;
}
