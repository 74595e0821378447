//! The run manager: starts runs (or holds them for approval) and answers control
//! commands from any instance. Runs execute where they are claimed (`cluster`), under
//! this instance's run capacity (`live`); what a command does is `lifecycle`'s decision.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_agent::AgentRuntime;
use baton_core::{time, Capabilities, Run, RunControl, RunEvent, RunId, RunOptions, RunStatus};
use baton_events::EventHub;
use baton_store::Store;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EngineConfig;
use crate::discovery::{self, Definition, Source};
use crate::lifecycle::{self, Command, Holder, Step};
use crate::shared::Inner;
use crate::WorkflowError;

/// What a run is started with.
#[derive(Debug, Clone, Default)]
pub struct StartRequest {
    pub args: Option<Value>,
    pub budget_tokens: Option<u64>,
    pub concurrency: Option<usize>,
    pub workspace: Option<PathBuf>,
    pub auto_approve: bool,
    pub capabilities: Capabilities,
}

#[derive(Clone)]
pub struct WorkflowEngine {
    inner: Arc<Inner>,
}

/// Output tokens assumed per agent when projecting a run's cost for approval (a budget
/// counts output tokens, as Claude Code's does).
const TOKENS_PER_AGENT: u64 = 4_000;
/// Fan-out assumed for an `agent()` inside `parallel`/`pipeline`/`map` when the args do
/// not say how many items there are.
const DEFAULT_FANOUT: u64 = 8;

/// A rough count of the agents a script will start: its `agent(` call sites, multiplied
/// by the fan-out when it fans out (the longest array in its args, else 8).
fn project_agents(script: &str, args: Option<&Value>) -> u64 {
    let sites = script.matches("agent(").count() as u64;
    let fans = ["parallel(", "pipeline(", ".map("]
        .iter()
        .any(|p| script.contains(p));
    if !fans {
        return sites.max(1);
    }
    fn longest(v: &Value) -> u64 {
        match v {
            Value::Array(a) => (a.len() as u64).max(a.iter().map(longest).max().unwrap_or(0)),
            Value::Object(o) => o.values().map(longest).max().unwrap_or(0),
            _ => 0,
        }
    }
    let fanout = args
        .map(longest)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_FANOUT);
    sites.max(1) * fanout
}

impl WorkflowEngine {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<EventHub>,
        agents: AgentRuntime,
        config: EngineConfig,
    ) -> Self {
        let slots = config.concurrent_runs.max(1);
        Self {
            inner: Arc::new(Inner {
                store,
                hub,
                agents,
                config,
                active: Mutex::new(HashMap::new()),
                run_slots: Arc::new(Semaphore::new(slots)),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                wake: Arc::new(Notify::new()),
                started: std::sync::atomic::AtomicBool::new(false),
                hold_renewals: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.inner.config.cluster.instance
    }

    /// Starts claiming work: queued runs, runs and chat sessions whose holder's lease
    /// lapsed (a dead instance's), and renewing what this instance holds. With SQLite,
    /// whose file one process holds, every lease left by an earlier process is released
    /// first, so its work continues at once.
    pub async fn start(&self) -> Result<(), WorkflowError> {
        if self
            .inner
            .started
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        if self.inner.store.backend() == baton_store::Backend::Sqlite {
            self.inner.store.release_leases(None).await?;
            self.inner.agents.close_orphaned_agents().await?;
        }
        // Listed among the live instances before it serves anything.
        let cluster = &self.inner.config.cluster;
        let started_at = time::now();
        self.inner
            .store
            .heartbeat(&cluster.instance, started_at, cluster.lease_ttl)
            .await?;
        crate::cluster::spawn(self.inner.clone(), started_at).await;
        Ok(())
    }

    /// For tests: stops (or restarts) renewing this instance's leases, as a process
    /// stalled past its TTL would, while its runs keep going.
    #[doc(hidden)]
    pub fn hold_renewals(&self, hold: bool) {
        self.inner
            .hold_renewals
            .store(hold, std::sync::atomic::Ordering::SeqCst);
    }

    fn workspace_of(&self, w: Option<&Path>) -> PathBuf {
        w.map(Path::to_path_buf)
            .unwrap_or(self.inner.config.default_workspace.clone())
    }

    pub async fn definitions(&self, workspace: Option<&Path>) -> Vec<Definition> {
        discovery::discover(
            &self.workspace_of(workspace),
            self.inner.config.home.as_deref(),
        )
        .await
    }

    /// The agent types (`agentType`) visible from `workspace`, with what is wrong with any
    /// that cannot be used.
    pub fn agent_types(&self, workspace: Option<&Path>) -> Vec<crate::AgentType> {
        crate::agent_types::list(
            &self.workspace_of(workspace),
            self.inner.config.home.as_deref(),
        )
    }

    pub async fn definition(
        &self,
        name: &str,
        workspace: Option<&Path>,
    ) -> Result<Definition, WorkflowError> {
        self.inner.find(name, &self.workspace_of(workspace)).await
    }

    /// Starts a run of a discovered workflow.
    pub async fn start_run(&self, name: &str, mut req: StartRequest) -> Result<Run, WorkflowError> {
        req.workspace = self
            .inner
            .agents
            .resolve_workspace(req.workspace.as_deref(), &req.capabilities)?;
        let def = self.definition(name, req.workspace.as_deref()).await?;
        if let Some(e) = def.error {
            return Err(WorkflowError::Unrunnable(e));
        }
        self.start_definition(def, req).await
    }

    /// Starts a run of a script given inline.
    pub async fn start_inline(
        &self,
        script: &str,
        req: StartRequest,
    ) -> Result<Run, WorkflowError> {
        let parsed = baton_script::parse(script)
            .await
            .map_err(WorkflowError::Script)?;
        let mut req = req;
        req.workspace = self
            .inner
            .agents
            .resolve_workspace(req.workspace.as_deref(), &req.capabilities)?;
        let name = parsed.meta.name.clone().unwrap_or_else(|| "inline".into());
        let def = Definition {
            name,
            description: parsed.meta.description.clone().unwrap_or_default(),
            source: Source::Inline,
            path: None,
            phases: parsed.meta.phases.iter().map(|p| p.title.clone()).collect(),
            script: script.to_string(),
            error: None,
        };
        self.start_definition(def, req).await
    }

    async fn start_definition(
        &self,
        def: Definition,
        req: StartRequest,
    ) -> Result<Run, WorkflowError> {
        baton_script::parse(&def.script)
            .await
            .map_err(WorkflowError::Script)?;
        let cfg = &self.inner.config;
        let concurrency = req.concurrency.unwrap_or(cfg.run_concurrency);
        if concurrency == 0 || concurrency > 256 {
            return Err(WorkflowError::BadInput(
                "concurrency must be between 1 and 256".into(),
            ));
        }
        let projected_agents = project_agents(&def.script, req.args.as_ref());
        let projected_tokens = req
            .budget_tokens
            .unwrap_or(projected_agents * TOKENS_PER_AGENT);
        // What a run asks for up front is decided now; how many agents it starts is
        // decided as it runs (`RunHost::admit` holds it at the gate).
        let large = req.budget_tokens.is_some_and(|b| b > cfg.approval_tokens)
            || concurrency > cfg.run_concurrency;
        let status = if large && !req.auto_approve {
            RunStatus::AwaitingApproval
        } else {
            RunStatus::Queued
        };
        let options = RunOptions {
            budget_tokens: req.budget_tokens,
            concurrency,
            workspace: req.workspace.as_ref().map(|w| w.display().to_string()),
            capabilities: req.capabilities,
            projected_agents,
            projected_tokens,
            approved: req.auto_approve,
            phases: def.phases.clone(),
        };
        let now = time::now();
        let run = Run {
            id: RunId::new(),
            name: def.name.clone(),
            status,
            source: def.source.as_str().to_string(),
            script: def.script.clone(),
            args: req.args,
            options,
            result: None,
            error: None,
            totals: Default::default(),
            log: vec![],
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            lease: Default::default(),
        };
        self.inner.store.create_run(&run).await?;
        tracing::info!(run = %run.id, name = %run.name, status = run.status.as_str(), "run created");
        if status == RunStatus::Queued {
            self.work_queued().await;
        }
        Ok(run)
    }

    /// Tells this instance and the others that a run is waiting for a slot.
    async fn work_queued(&self) {
        self.inner.wake.notify_one();
        if let Err(e) = self.inner.store.notify_work().await {
            tracing::warn!(error = %e, "telling other instances about queued work failed");
        }
    }

    async fn get(&self, id: RunId) -> Result<Run, WorkflowError> {
        self.inner
            .store
            .get_run(id)
            .await?
            .ok_or(WorkflowError::NotFound("run"))
    }

    pub async fn approve(&self, id: RunId) -> Result<Run, WorkflowError> {
        self.command(id, Command::Approve, None).await
    }

    pub async fn cancel(&self, id: RunId) -> Result<Run, WorkflowError> {
        self.command(id, Command::Cancel, None).await
    }

    /// Stops scheduling new agents; running ones finish. The run gives its slot back.
    pub async fn pause(&self, id: RunId) -> Result<Run, WorkflowError> {
        self.command(id, Command::Pause, None).await
    }

    /// Continues a paused run, or runs a stopped one again from the top with its journal
    /// (optionally with an edited script): completed agents are not run again.
    pub async fn resume(
        &self,
        id: RunId,
        edited_script: Option<String>,
    ) -> Result<Run, WorkflowError> {
        if let Some(script) = &edited_script {
            baton_script::parse(script)
                .await
                .map_err(WorkflowError::Script)?;
        }
        let edited = edited_script.is_some();
        self.command(id, Command::Resume { edited }, edited_script)
            .await
    }

    /// Applies a command wherever the run is: here, on the instance that executes it,
    /// or (nobody executes it) directly in the store under a fresh claim.
    async fn command(
        &self,
        id: RunId,
        command: Command,
        edited_script: Option<String>,
    ) -> Result<Run, WorkflowError> {
        // Twice at most: a run found unheld may be claimed by another instance between
        // the read and the claim; the second look sees that holder.
        for _ in 0..2 {
            let run = self.get(id).await?;
            let holder = if self.inner.live(id).is_some() {
                Holder::Here
            } else if held_by_another(&run, self.instance()) {
                Holder::Elsewhere
            } else {
                Holder::Nobody
            };
            let step = lifecycle::decide(run.status, holder, command)
                .map_err(|c| WorkflowError::Conflict(c.0))?;
            match step {
                Step::Local(control) => {
                    let Some(live) = self.inner.live(id) else {
                        continue;
                    };
                    live.control(control).await;
                    return self.settled(id, control).await;
                }
                Step::Ask(control) => {
                    self.inner.store.request_run_control(id, control).await?;
                    tracing::info!(run = %id, holder = ?run.lease.owner, control = control.as_str(),
                        "asked the instance that runs it");
                    return self.settled(id, control).await;
                }
                Step::Set(status) => {
                    let cluster = &self.inner.config.cluster;
                    let Some(mut claimed) = self
                        .inner
                        .store
                        .claim_run(id, &cluster.instance, cluster.lease_ttl)
                        .await?
                    else {
                        continue;
                    };
                    if claimed.status != run.status {
                        // Changed since the read: decide again on what it is now.
                        self.give_up(&mut claimed).await;
                        continue;
                    }
                    if let Some(script) = &edited_script {
                        let parsed = baton_script::parse(script)
                            .await
                            .map_err(WorkflowError::Script)?;
                        claimed.options.phases =
                            parsed.meta.phases.into_iter().map(|p| p.title).collect();
                        claimed.script = script.clone();
                    }
                    if status == RunStatus::Cancelled {
                        // Agents a dead holder left running stop with the run.
                        self.inner
                            .store
                            .stop_running_agents(id, claimed.lease.epoch, time::now())
                            .await?;
                        self.inner
                            .store
                            .close_run_sessions(id, "cancelled with its run")
                            .await?;
                    }
                    if command == Command::Approve {
                        claimed.options.approved = true;
                    }
                    lifecycle::enter_now(&mut claimed, status);
                    claimed.lease.owner = None;
                    self.inner.store.update_run(&claimed).await?;
                    self.inner
                        .publish_run(
                            id,
                            RunEvent::Status {
                                status: claimed.status,
                                error: claimed.error.clone(),
                                totals: claimed.totals.clone(),
                                owner: None,
                            },
                        )
                        .await;
                    if status == RunStatus::Queued {
                        self.work_queued().await;
                    }
                    return Ok(claimed);
                }
            }
        }
        Err(WorkflowError::Conflict(
            "the run changed hands while the command was applied; try again".into(),
        ))
    }

    /// Lets go of a run claimed only to look at it.
    async fn give_up(&self, run: &mut Run) {
        run.lease.owner = None;
        if let Err(e) = self.inner.store.update_run(run).await {
            tracing::warn!(run = %run.id, error = %e, "giving a claimed run back failed");
        }
    }

    /// The run once `control` has taken effect where it runs, or as it stands after a
    /// few seconds if it has not (the answer is what the store says, never a guess).
    async fn settled(&self, id: RunId, control: RunControl) -> Result<Run, WorkflowError> {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let run = self.get(id).await?;
            let done = match control {
                RunControl::Cancel => run.status.is_finished(),
                RunControl::Pause => run.status != RunStatus::Running,
                RunControl::Resume => run.status != RunStatus::Paused,
            };
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(run);
            }
            // A holder that died after being asked: nobody will act, so act here.
            if control == RunControl::Cancel
                && self.inner.live(id).is_none()
                && !held_by_another(&run, self.instance())
            {
                return Box::pin(self.command(id, Command::Cancel, None)).await;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some runs did not stop in time");
        }
    }

    /// Gives this instance's leases back (after `shutdown` and the agents' shutdown), so
    /// another instance takes the work over at once instead of after the TTL.
    pub async fn release(&self) {
        let me = self.instance();
        match self.inner.store.release_leases(Some(me)).await {
            Ok(n) if n > 0 => tracing::info!(leases = n, "handed this instance's work back"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "releasing leases failed; they lapse after the TTL")
            }
        }
        if let Err(e) = self.inner.store.forget_instance(me).await {
            tracing::warn!(error = %e, "removing this instance's heartbeat failed");
        }
    }

    pub async fn get_run(&self, id: RunId) -> Result<Run, WorkflowError> {
        self.get(id).await
    }

    pub async fn list(
        &self,
        status: Option<RunStatus>,
        limit: u32,
        before: Option<RunId>,
    ) -> Result<Vec<Run>, WorkflowError> {
        Ok(self.inner.store.list_runs(status, limit, before).await?)
    }

    /// The run with its phases and its first agents.
    pub async fn view(&self, id: RunId) -> Result<crate::RunView, WorkflowError> {
        let run = self.get(id).await?;
        let declared = run.options.phases.clone();
        let store = &self.inner.store;
        let totals = store.journal_totals(id).await?;
        let first = store
            .journal_page(id, None, crate::view::AGENTS_IN_VIEW + 1)
            .await?;
        Ok(crate::view::build(run, &declared, totals, first))
    }

    /// Up to `limit` lines of the run's log just before line `before` (0-based; the end of
    /// the log when absent or past it), oldest first, with the number of lines in all.
    pub async fn log_lines(
        &self,
        id: RunId,
        before: Option<usize>,
        limit: usize,
    ) -> Result<(usize, Vec<String>), WorkflowError> {
        let mut run = self.get(id).await?;
        let total = run.log.len();
        let end = before.unwrap_or(total).min(total);
        let start = end.saturating_sub(limit);
        run.log.truncate(end);
        Ok((total, run.log.split_off(start)))
    }

    /// At most `limit` of the run's agents in start order after the one started
    /// `after`-th, and the start order of its latest agent (0 before any).
    pub async fn agents(
        &self,
        id: RunId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<(i64, Vec<baton_core::AgentView>), WorkflowError> {
        self.get(id).await?;
        let store = &self.inner.store;
        let last = store
            .journal_totals(id)
            .await?
            .iter()
            .map(|t| t.last_seq)
            .max()
            .unwrap_or(0);
        let page = store.journal_page(id, after, limit).await?;
        Ok((last, page.into_iter().map(Into::into).collect()))
    }

    pub async fn journal(&self, id: RunId) -> Result<Vec<baton_core::JournalEntry>, WorkflowError> {
        Ok(self.inner.store.list_journal(id).await?)
    }

    /// Instances whose heartbeat is live, this one included.
    pub async fn instances(&self) -> Result<Vec<baton_core::Instance>, WorkflowError> {
        Ok(self.inner.store.live_instances().await?)
    }

    /// Waits until no run is active here (tests and benchmarks).
    pub async fn idle(&self) {
        while !self.inner.active.lock().expect("active lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// How long a command waits for the instance that runs the run to act.
const SETTLE: Duration = Duration::from_secs(10);

/// Whether a live lease of another instance holds `run`. Lease times come from the
/// database's clock; an instance's own clock is trusted to agree within the renewal
/// margin (a lapsed lease is claimed only through the store, which decides by its clock).
fn held_by_another(run: &Run, me: &str) -> bool {
    match (&run.lease.owner, run.lease.expires_at) {
        (Some(owner), Some(until)) => owner != me && until > time::now(),
        _ => false,
    }
}
