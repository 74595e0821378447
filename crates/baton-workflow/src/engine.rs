//! The run manager: starts runs (or holds them for approval), queues them under the
//! concurrent-run cap, executes their scripts, and pauses, cancels and resumes them.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_agent::AgentRuntime;
use baton_core::{time, AgentStatus, Capabilities, NewFrame, Run, RunId, RunStatus, Topic};
use baton_events::EventHub;
use baton_script::{Limits, ScriptError};
use baton_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::discovery::{self, canonical_name, Definition, Source};
use crate::host::RunHost;
use crate::WorkflowError;

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
struct Options {
    budget_tokens: Option<u64>,
    concurrency: usize,
    workspace: Option<String>,
    #[serde(default)]
    capabilities: Capabilities,
    projected_agents: u64,
    projected_tokens: u64,
    /// `meta.phases` titles, read once when the script is parsed.
    #[serde(default)]
    phases: Vec<String>,
}

struct Control {
    cancel: CancellationToken,
    paused: watch::Sender<bool>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub agents: AgentRuntime,
    pub config: EngineConfig,
    active: Mutex<HashMap<RunId, Control>>,
    run_slots: Arc<Semaphore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Log lines waiting to be written, per run.
    logs: Mutex<HashMap<RunId, Vec<String>>>,
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
            }),
        }
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
    pub async fn start(&self, name: &str, req: StartRequest) -> Result<Run, WorkflowError> {
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
        };
        self.inner.store.create_run(&run).await?;
        tracing::info!(run = %run.id, name = %run.name, status = run.status.as_str(), "run created");
        if status == RunStatus::Queued {
            self.spawn(run.clone());
        }
        Ok(run)
    }

    fn spawn(&self, run: Run) {
        let cancel = self.inner.shutdown.child_token();
        let (paused_tx, paused_rx) = watch::channel(run.status == RunStatus::Paused);
        self.inner.active.lock().expect("active lock").insert(
            run.id,
            Control {
                cancel: cancel.clone(),
                paused: paused_tx,
            },
        );
        let inner = self.inner.clone();
        let span = tracing::info_span!("run", run = %run.id, name = %run.name);
        self.inner.tasks.spawn(tracing::Instrument::instrument(
            async move {
                let id = run.id;
                execute(inner.clone(), run, cancel, paused_rx).await;
                inner.active.lock().expect("active lock").remove(&id);
            },
            span,
        ));
    }

    async fn get(&self, id: RunId) -> Result<Run, WorkflowError> {
        self.inner
            .store
            .get_run(id)
            .await?
            .ok_or(WorkflowError::NotFound("run"))
    }

    pub async fn approve(&self, id: RunId) -> Result<Run, WorkflowError> {
        let mut run = self.get(id).await?;
        if run.status != RunStatus::AwaitingApproval {
            return Err(WorkflowError::Conflict(format!(
                "the run is {}, not awaiting approval",
                run.status.as_str()
            )));
        }
        run.status = RunStatus::Queued;
        run.updated_at = time::now();
        self.inner.store.update_run(&run).await?;
        self.inner
            .publish_run(id, json!({ "event": "status", "status": run.status }))
            .await;
        self.spawn(run.clone());
        Ok(run)
    }

    pub async fn cancel(&self, id: RunId) -> Result<Run, WorkflowError> {
        let mut run = self.get(id).await?;
        if run.status.is_finished() {
            return Err(WorkflowError::Conflict(format!(
                "the run is already {}",
                run.status.as_str()
            )));
        }
        let control = self
            .inner
            .active
            .lock()
            .expect("active lock")
            .get(&id)
            .map(|c| c.cancel.clone());
        match control {
            Some(cancel) => {
                cancel.cancel();
                Ok(run)
            }
            None => {
                // Held for approval, or paused across a restart: nothing runs.
                run.status = RunStatus::Cancelled;
                run.error = Some("cancelled".into());
                run.finished_at = Some(time::now());
                run.updated_at = time::now();
                self.inner.store.update_run(&run).await?;
                self.inner
                    .publish_run(id, json!({ "event": "status", "status": run.status }))
                    .await;
                Ok(run)
            }
        }
    }

    /// Stops scheduling new agents; running ones finish.
    pub async fn pause(&self, id: RunId) -> Result<Run, WorkflowError> {
        let mut run = self.get(id).await?;
        if !matches!(run.status, RunStatus::Running | RunStatus::Queued) {
            return Err(WorkflowError::Conflict(format!(
                "the run is {}; only a running run can be paused",
                run.status.as_str()
            )));
        }
        if let Some(c) = self.inner.active.lock().expect("active lock").get(&id) {
            let _ = c.paused.send(true);
        }
        run.status = RunStatus::Paused;
        run.updated_at = time::now();
        self.inner.store.update_run(&run).await?;
        self.inner
            .publish_run(id, json!({ "event": "status", "status": run.status }))
            .await;
        Ok(run)
    }

    /// Continues a paused run, or runs a stopped one again from the top with its journal
    /// (optionally with an edited script): completed agents are not run again.
    pub async fn resume(
        &self,
        id: RunId,
        edited_script: Option<String>,
    ) -> Result<Run, WorkflowError> {
        let mut run = self.get(id).await?;
        let edited = edited_script.is_some();
        if let Some(script) = edited_script {
            let parsed = baton_script::parse(&script)
                .await
                .map_err(WorkflowError::Script)?;
            let mut options: Options =
                serde_json::from_value(run.options.clone()).unwrap_or_default();
            options.phases = parsed.meta.phases.into_iter().map(|p| p.title).collect();
            run.options = serde_json::to_value(&options).expect("options serialize");
            run.script = script;
        }
        let live = self
            .inner
            .active
            .lock()
            .expect("active lock")
            .get(&id)
            .map(|c| c.paused.clone());
        if edited && live.is_some() {
            return Err(WorkflowError::Conflict(
                "the run is still active; cancel or wait before re-running an edited script".into(),
            ));
        }
        match (run.status, live) {
            (RunStatus::Completed, _) if !edited => Err(WorkflowError::Conflict(format!(
                "the run is {}; nothing to resume (send an edited script to re-run it)",
                run.status.as_str()
            ))),
            (RunStatus::AwaitingApproval, _) => Err(WorkflowError::Conflict(format!(
                "the run is {}; nothing to resume",
                run.status.as_str()
            ))),
            (_, Some(paused)) => {
                let _ = paused.send(false);
                run.status = RunStatus::Running;
                run.updated_at = time::now();
                self.inner.store.update_run(&run).await?;
                self.inner
                    .publish_run(id, json!({ "event": "status", "status": run.status }))
                    .await;
                Ok(run)
            }
            (_, None) => {
                run.status = RunStatus::Queued;
                run.error = None;
                run.result = None;
                run.finished_at = None;
                run.updated_at = time::now();
                self.inner.store.update_run(&run).await?;
                self.spawn(run.clone());
                Ok(run)
            }
        }
    }

    /// Runs that were running, queued or paused when the process stopped continue.
    pub async fn resume_interrupted(&self) -> Result<usize, WorkflowError> {
        let mut n = 0;
        for status in [RunStatus::Running, RunStatus::Queued, RunStatus::Paused] {
            let mut before = None;
            loop {
                let page = self
                    .inner
                    .store
                    .list_runs(Some(status), 200, before)
                    .await?;
                let Some(last) = page.last() else { break };
                before = Some(last.id);
                for run in page {
                    if self
                        .inner
                        .active
                        .lock()
                        .expect("active lock")
                        .contains_key(&run.id)
                    {
                        continue;
                    }
                    tracing::info!(run = %run.id, "resuming a run interrupted by the last stop");
                    self.spawn(run);
                    n += 1;
                }
            }
        }
        Ok(n)
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

    /// Waits until no run is active (tests and benchmarks).
    pub async fn idle(&self) {
        while !self.inner.active.lock().expect("active lock").is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn save(inner: &Inner, run: &mut Run) {
    if let Some(lines) = inner.logs.lock().expect("logs lock").remove(&run.id) {
        run.log.extend(lines);
    }
    run.updated_at = time::now();
    if let Err(e) = inner.store.update_run(run).await {
        tracing::error!(error = %e, "saving the run failed");
    }
}

async fn execute(
    inner: Arc<Inner>,
    mut run: Run,
    cancel: CancellationToken,
    paused: watch::Receiver<bool>,
) {
    let options: Options = serde_json::from_value(run.options.clone()).unwrap_or_default();
    // Queued until a run slot is free.
    let _slot = tokio::select! {
        s = inner.run_slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
        _ = cancel.cancelled() => {
            if !inner.shutdown.is_cancelled() {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(time::now());
                save(&inner, &mut run).await;
            }
            return;
        }
    };
    if run.status != RunStatus::Paused {
        run.status = RunStatus::Running;
    }
    run.started_at = run.started_at.or(Some(time::now()));
    save(&inner, &mut run).await;
    inner
        .publish_run(run.id, json!({ "event": "status", "status": run.status }))
        .await;

    let journal = inner.store.list_journal(run.id).await.unwrap_or_default();
    let spent: u64 = journal
        .iter()
        .filter(|e| e.status == AgentStatus::Completed)
        .map(|e| (e.input_tokens + e.output_tokens) as u64)
        .sum();
    let host = Arc::new(RunHost {
        inner: inner.clone(),
        run_id: run.id,
        slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
        cancel: cancel.clone(),
        paused,
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
                cancel.clone(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    if inner.shutdown.is_cancelled() {
        // Left as it is: the next start resumes it from its journal.
        tracing::info!("stopping for shutdown; the run resumes at the next start");
        let mut r = run.clone();
        save(&inner, &mut r).await;
        return;
    }
    // Nothing of a finished run may keep running: agents still marked running were
    // stopped with it (after their own queued writes, which this one follows).
    if let Err(e) = inner.store.stop_running_agents(run.id, time::now()).await {
        tracing::error!(error = %e, "marking the run's stopped agents failed");
    }
    let journal = inner.store.list_journal(run.id).await.unwrap_or_default();
    run.totals = json!({
        "agents": journal.len(),
        "input_tokens": journal.iter().map(|e| e.input_tokens).sum::<i64>(),
        "output_tokens": journal.iter().map(|e| e.output_tokens).sum::<i64>(),
        "cost_usd": journal.iter().map(|e| e.cost_usd).sum::<f64>(),
    });
    match outcome {
        Ok(v) => {
            run.status = RunStatus::Completed;
            run.result = Some(v);
            run.error = None;
        }
        Err(ScriptError::Cancelled) => {
            run.status = RunStatus::Cancelled;
            run.error = Some("cancelled".into());
        }
        Err(e) => {
            run.status = RunStatus::Failed;
            run.error = Some(e.to_string());
        }
    }
    run.finished_at = Some(time::now());
    save(&inner, &mut run).await;
    inner
        .publish_run(run.id, json!({ "event": "status", "status": run.status, "error": run.error, "totals": run.totals }))
        .await;
}
