//! The run manager: starts runs (or holds them for approval) and answers control
//! commands from any instance. Runs execute where they are claimed (`cluster`), under
//! this instance's run capacity (`live`); what a command does is `lifecycle`'s decision.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_agent::AgentRuntime;
use baton_core::{time, Capabilities, NewFrame, Run, RunControl, RunId, RunStatus, Topic};
use baton_events::EventHub;
use baton_script::Limits;
use baton_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::{self, canonical_name, Definition, Source};
use crate::lifecycle::{self, Command, Holder, Step};
use crate::live::Live;
use crate::WorkflowError;

/// This instance among those sharing the store (SPEC 4.6).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Stable for the life of the process; shown in `/api/health` and in logs.
    pub instance: String,
    /// How long a claim on a run or session lasts unless renewed.
    pub lease_ttl: Duration,
    /// How often the holder renews its leases.
    pub lease_renew: Duration,
    /// How often the instance looks for work to claim (queued, or whose holder died).
    pub sweep: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            instance: instance_id(),
            lease_ttl: Duration::from_secs(15),
            lease_renew: Duration::from_secs(5),
            sweep: Duration::from_secs(2),
        }
    }
}

/// `<host>-<pid>-<random>`: readable in logs, never reused by a later process.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "baton".into());
    // The tail of a v7 id is random.
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &random[random.len() - 6..]
    )
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub run_concurrency: usize,
    pub agents_per_run: u32,
    pub items_per_call: usize,
    pub concurrent_runs: usize,
    pub script_memory_bytes: usize,
    pub run_wall_clock: Duration,
    pub agent_timeout: Duration,
    pub approval_agents: u64,
    pub approval_tokens: u64,
    pub default_workspace: PathBuf,
    /// For `~/.baton/workflows`.
    pub home: Option<PathBuf>,
    pub cluster: ClusterConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            run_concurrency: 8,
            agents_per_run: 1000,
            items_per_call: 4096,
            concurrent_runs: 4,
            script_memory_bytes: 64 << 20,
            run_wall_clock: Duration::from_secs(7200),
            agent_timeout: Duration::from_secs(600),
            approval_agents: 25,
            approval_tokens: 1_500_000,
            default_workspace: PathBuf::from("."),
            home: std::env::var_os("HOME").map(PathBuf::from),
            cluster: ClusterConfig::default(),
        }
    }
}

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

/// Stored in `Run.options`.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
pub(crate) struct Options {
    pub budget_tokens: Option<u64>,
    pub concurrency: usize,
    pub workspace: Option<String>,
    #[serde(default)]
    pub capabilities: Capabilities,
    pub projected_agents: u64,
    pub projected_tokens: u64,
    /// `meta.phases` titles, read once when the script is parsed.
    #[serde(default)]
    pub phases: Vec<String>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub agents: AgentRuntime,
    pub config: EngineConfig,
    /// The runs executing here.
    pub active: Mutex<HashMap<RunId, Arc<Live>>>,
    /// This instance's run capacity (`concurrent_runs`): a running run holds one slot, a
    /// paused one none.
    pub run_slots: Arc<Semaphore>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
    /// Log lines waiting to be written, per run.
    pub logs: Mutex<HashMap<RunId, Vec<String>>>,
    /// Wakes the cluster loop: work may be claimable, or a slot came free.
    pub wake: Notify,
    /// Set when the cluster loop started (`WorkflowEngine::start`).
    pub started: std::sync::atomic::AtomicBool,
    /// A test's stand-in for a stalled process: renewals stop while set.
    pub hold_renewals: std::sync::atomic::AtomicBool,
}

#[derive(Clone)]
pub struct WorkflowEngine {
    inner: Arc<Inner>,
}

/// Tokens assumed per agent when projecting a run's cost for approval.
const TOKENS_PER_AGENT: u64 = 60_000;
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

impl Inner {
    /// Queued in order; nothing waits for the commit.
    pub(crate) async fn publish_run(&self, run: RunId, body: Value) {
        self.hub
            .enqueue(Topic::Run(run), NewFrame::new("run_event", body))
            .await;
    }

    /// For host calls that are synchronous in the script: queued at once, so `phase` and
    /// `log` events keep the script's order (a spawned send only if the queue is full).
    pub(crate) fn spawn_publish(self: &Arc<Self>, run: RunId, body: Value) {
        let frame = NewFrame::new("run_event", body);
        if let Err(frame) = self.hub.try_enqueue(Topic::Run(run), frame) {
            let inner = self.clone();
            tokio::spawn(async move { inner.hub.enqueue(Topic::Run(run), frame).await });
        }
    }

    pub(crate) fn append_log(self: &Arc<Self>, run: RunId, line: String) {
        self.logs
            .lock()
            .expect("logs lock")
            .entry(run)
            .or_default()
            .push(line.clone());
        self.spawn_publish(run, json!({ "event": "log", "message": line }));
    }

    pub(crate) fn live(&self, id: RunId) -> Option<Arc<Live>> {
        self.active.lock().expect("active lock").get(&id).cloned()
    }

    pub(crate) fn script_limits(&self) -> Limits {
        Limits {
            memory_bytes: self.config.script_memory_bytes,
            stack_bytes: 1 << 20,
            wall_clock: self.config.run_wall_clock,
        }
    }

    pub(crate) async fn find(
        &self,
        name: &str,
        workspace: &Path,
    ) -> Result<Definition, WorkflowError> {
        let name = canonical_name(name);
        if !discovery::valid_name(name) {
            return Err(WorkflowError::BadInput(format!(
                "'{name}' is not a valid workflow name"
            )));
        }
        discovery::discover(workspace, self.config.home.as_deref())
            .await
            .into_iter()
            .find(|d| d.name == name)
            .ok_or(WorkflowError::NotFound("workflow"))
    }
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
                logs: Mutex::new(HashMap::new()),
                wake: Notify::new(),
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
        crate::cluster::spawn(self.inner.clone()).await;
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

    pub async fn definition(
        &self,
        name: &str,
        workspace: Option<&Path>,
    ) -> Result<Definition, WorkflowError> {
        self.inner.find(name, &self.workspace_of(workspace)).await
    }

    /// Starts a run of a discovered workflow.
    pub async fn start_run(&self, name: &str, req: StartRequest) -> Result<Run, WorkflowError> {
        let def = self.definition(name, req.workspace.as_deref()).await?;
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
        let name = parsed.meta.name.clone().unwrap_or_else(|| "inline".into());
        let def = Definition {
            name,
            description: parsed.meta.description.clone().unwrap_or_default(),
            source: Source::Inline,
            path: None,
            phases: parsed.meta.phases.iter().map(|p| p.title.clone()).collect(),
            script: script.to_string(),
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
        if let Some(w) = &req.workspace {
            if !w.is_dir() {
                return Err(WorkflowError::BadInput(format!(
                    "workspace '{}' is not an existing directory",
                    w.display()
                )));
            }
        }
        let projected_agents = project_agents(&def.script, req.args.as_ref());
        let projected_tokens = req
            .budget_tokens
            .unwrap_or(projected_agents * TOKENS_PER_AGENT);
        let large = projected_agents > cfg.approval_agents
            || projected_tokens > cfg.approval_tokens
            || concurrency > cfg.run_concurrency;
        let status = if large && !req.auto_approve {
            RunStatus::AwaitingApproval
        } else {
            RunStatus::Queued
        };
        let options = Options {
            budget_tokens: req.budget_tokens,
            concurrency,
            workspace: req.workspace.as_ref().map(|w| w.display().to_string()),
            capabilities: req.capabilities,
            projected_agents,
            projected_tokens,
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
            options: serde_json::to_value(&options).expect("options serialize"),
            result: None,
            error: None,
            totals: json!({}),
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
                    live.control(&self.inner, control).await;
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
                        let mut options: Options =
                            serde_json::from_value(claimed.options.clone()).unwrap_or_default();
                        options.phases = parsed.meta.phases.into_iter().map(|p| p.title).collect();
                        claimed.options =
                            serde_json::to_value(&options).expect("options serialize");
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
                    lifecycle::enter_now(&mut claimed, status);
                    claimed.lease.owner = None;
                    self.inner.store.update_run(&claimed).await?;
                    self.inner
                        .publish_run(id, json!({ "event": "status", "status": claimed.status }))
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

    /// The run with its phases and agents.
    pub async fn view(&self, id: RunId) -> Result<crate::RunView, WorkflowError> {
        let run = self.get(id).await?;
        let declared = serde_json::from_value::<Options>(run.options.clone())
            .map(|o| o.phases)
            .unwrap_or_default();
        let journal = self.inner.store.list_journal(id).await?;
        Ok(crate::RunView::build(run, &declared, journal))
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
