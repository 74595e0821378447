//! The sandbox's host calls for one run: `agent()` is served from the journal when its
//! key is completed there, and otherwise runs a child agent session under the run's
//! caps, budget, pause and cancellation — all enforced here, in Rust.
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use baton_agent::AgentSpec;
use baton_core::{time, AgentStatus, Capabilities, JournalEntry, RunEvent, RunId, SessionStatus};
use baton_script::{Admission, AgentCall, Host};
use baton_store::Queued;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::agent_opts::{agent_name, effort_of, opt_u64, tool_names};
use crate::key;
use crate::live::Live;
use crate::shared::Inner;

#[derive(Clone)]
pub(crate) struct RunHost {
    pub inner: Arc<Inner>,
    /// The run as executing here: its epoch fences the journal, its slot is held while
    /// agents are admitted.
    pub live: Arc<Live>,
    pub run_id: RunId,
    pub slots: Arc<Semaphore>,
    pub cancel: CancellationToken,
    pub paused: watch::Receiver<bool>,
    pub budget_total: Option<u64>,
    pub spent: Arc<AtomicU64>,
    pub started: Arc<AtomicU32>,
    pub seq: Arc<AtomicI64>,
    pub occurrences: Arc<Mutex<HashMap<String, u64>>>,
    pub caps: Capabilities,
    pub workspace: Option<std::path::PathBuf>,
    /// 0 for a run; 1 inside `workflow()`, where nesting stops.
    pub depth: u32,
    /// The journal's completed entries as the run (re)started, by key: looked up here
    /// instead of one read per `agent()` call.
    pub completed: Arc<HashMap<String, JournalEntry>>,
    /// The notes already logged about agents' options (`note_options`), once each.
    pub noted: Arc<Mutex<std::collections::HashSet<String>>>,
    /// Agents beyond this many, or any once this many output tokens are spent, wait for
    /// a person's approval (`None`: approved).
    pub approval_at: Option<(u32, u64)>,
    /// Agents admitted whose journal entry is not yet written, and a wake when one is.
    pub in_flight: Arc<InFlight>,
    /// Siblings with one request prefix wait for the first one's cache.
    pub prefixes: Arc<crate::prefix_gate::PrefixGate>,
}

/// Counts the agents at work, so a run held for approval stops only once they are done.
#[derive(Default)]
pub(crate) struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

/// One admitted agent, until its journal entry is written (or it gives up).
struct AtWork(Arc<InFlight>);

impl AtWork {
    fn new(f: &Arc<InFlight>) -> Self {
        f.count.fetch_add(1, Ordering::SeqCst);
        Self(f.clone())
    }
}

impl Drop for AtWork {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
        self.0.done.notify_waiters();
    }
}

impl InFlight {
    async fn settled(&self) {
        loop {
            let done = self.done.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

impl RunHost {
    async fn publish(&self, event: RunEvent) {
        self.live.publish(event).await;
    }

    async fn wait_while_paused(&self) -> Result<(), String> {
        let mut rx = self.paused.clone();
        loop {
            if self.cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            if !*rx.borrow_and_update() {
                // A paused run gave its slot back; it needs one again to go on.
                if self.live.slot.take(&self.cancel).await {
                    return Ok(());
                }
                return Err("cancelled".into());
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err("cancelled".into()),
                r = rx.changed() => if r.is_err() { return Ok(()) },
            }
        }
    }
}

impl RunHost {
    /// The run would start more agents than runs may without a person's approval: no more
    /// are admitted; once those at work are done the run stops as `awaiting_approval`
    /// (with what it has done so far in its journal), and approving it runs it again from
    /// the top, its finished agents answered from the journal.
    async fn hold_for_approval(&self, why: String) -> String {
        if !self.live.held.swap(true, Ordering::SeqCst) {
            self.live
                .log(format!("{why} and waits for approval; approve it to go on"));
        }
        self.in_flight.settled().await;
        self.cancel.cancel();
        // The script stops here: the call never answers, so nothing after it runs (the
        // sandbox ends the script on the cancel and drops this call).
        std::future::pending().await
    }

    /// The admission of an `agent()` call, in the script's call order: limits, the
    /// journal's cache, pause, a slot and the agent's number; then its work.
    async fn admit(&self, call: AgentCall) -> Result<Admission, String> {
        let limits = &self.inner.config;
        if let Some(total) = self.budget_total {
            let spent = self.spent.load(Ordering::SeqCst);
            if spent >= total {
                return Err(format!(
                    "the run's token budget of {total} is spent ({spent} used)"
                ));
            }
        }
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        if n > limits.agents_per_run {
            let why = format!(
                "the run reached its limit of {} agents (limits.agents_per_run); agent() calls after that throw",
                limits.agents_per_run
            );
            if n == limits.agents_per_run + 1 {
                self.live.log(why.clone());
            }
            return Err(why);
        }
        if let Some((agents, tokens)) = self.approval_at {
            let spent = self.spent.load(Ordering::SeqCst);
            if n > agents {
                return Err(self
                    .hold_for_approval(format!(
                        "the run would start more than {agents} agents (limits.approval_agents)"
                    ))
                    .await);
            }
            if spent >= tokens {
                return Err(self
                    .hold_for_approval(format!(
                        "the run has written {spent} output tokens, past {tokens} (limits.approval_tokens)"
                    ))
                    .await);
            }
        }
        // At work from its number on, until its journal entry is written: the approval
        // gate waits for every agent numbered before it, those waiting for a slot too.
        let at_work = AtWork::new(&self.in_flight);
        self.note_options(&call);
        let agent_type = match call.opts.get("agentType") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(self.agent_type(name, &call)?),
            Some(other) => return Err(format!("agentType must be a name, not {other}")),
        };
        let content = key::content(&call.prompt, &call.opts);
        let occurrence = {
            let mut occ = self.occurrences.lock().expect("occurrences lock");
            let c = occ.entry(key::content_id(&content)).or_insert(0);
            let o = *c;
            *c += 1;
            o
        };
        let key = key::key(&content, occurrence);
        let label = call
            .opts
            .get("label")
            .and_then(Value::as_str)
            .map(str::to_string);
        let store = &self.inner.store;
        let previous = self.completed.get(&key).cloned();
        if let Some(mut done) = previous.filter(|e| e.status == AgentStatus::Completed) {
            if !done.cached {
                done.cached = true;
                done.epoch = self.live.epoch;
                if let Err(baton_store::StoreError::Fenced(_)) = store.put_journal(&done).await {
                    self.live.lose(
                        "the run's lease passed to another instance (a journal write was refused)",
                    );
                    return Err("cancelled".into());
                }
            }
            self.publish(RunEvent::AgentFinish {
                key: key.clone(),
                order: done.seq,
                label: done.label.clone(),
                phase: done.phase.clone(),
                status: AgentStatus::Completed,
                cached: true,
                session_id: done.session_id,
                error: None,
                input_tokens: done.input_tokens,
                output_tokens: done.output_tokens,
                cost_usd: done.cost_usd,
            })
            .await;
            return Ok(Admission::Answered(Ok(done.result.unwrap_or(Value::Null))));
        }
        // A pause that lands while this agent waits for a slot holds it too: only an
        // agent already asking the model when the run is paused goes on.
        let permit = loop {
            self.wait_while_paused().await?;
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.map_err(|_| "the run is stopping".to_string())?,
                _ = self.cancel.cancelled() => return Ok(Admission::Answered(Ok(Value::Null))),
            };
            if !*self.paused.borrow() {
                break permit;
            }
        };
        let mut entry = JournalEntry {
            run_id: self.run_id,
            key: key.clone(),
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            label: label.clone(),
            phase: call.phase.clone(),
            status: AgentStatus::Running,
            session_id: None,
            prompt: call.prompt.clone(),
            result: None,
            error: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: 0.0,
            cached: false,
            started_at: time::now(),
            finished_at: None,
            epoch: self.live.epoch,
        };
        // Queued: the `completed` entry, awaited below, commits after it.
        store.queue(Queued::Journal(entry.clone())).await;
        self.publish(RunEvent::AgentStart {
            key: key.clone(),
            label: label.clone(),
            phase: call.phase.clone(),
            order: entry.seq,
        })
        .await;
        let spec = AgentSpec {
            prompt: call.prompt.clone(),
            model: call
                .opts
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| agent_type.as_ref().and_then(|t| t.model.clone())),
            schema: call.opts.get("schema").cloned().filter(|s| !s.is_null()),
            caps: self.caps,
            max_tool_calls: opt_u64(&call.opts, "max_tool_calls").map(|n| n.min(10_000) as u32),
            timeout: Some(
                opt_u64(&call.opts, "timeout_ms")
                    .map(Duration::from_millis)
                    .unwrap_or(limits.agent_timeout)
                    .min(limits.agent_timeout),
            ),
            budget_tokens: self
                .budget_total
                .map(|t| t.saturating_sub(self.spent.load(Ordering::SeqCst))),
            tools: tool_names(&call.opts).0.or_else(|| {
                let listed = agent_type.as_ref()?.tools.clone()?;
                tool_names(&json!({ "tools": listed })).0
            }),
            system: agent_type.as_ref().map(|t| t.prompt.clone()),
            effort: effort_of(&call.opts),
            workspace: self.workspace.clone(),
            run_id: Some(self.run_id),
            parent_id: None,
            response_started: None,
        };
        let isolated = self.caps.write
            && call.opts.get("isolation").and_then(Value::as_str) == Some("worktree");
        let name = agent_name(&call);
        // What follows runs as the agent's own task.
        let this = self.clone();
        Ok(Admission::Running(Box::pin(async move {
            let _at_work = at_work;
            let mut spec = spec;
            spec.response_started = this.hold_for_cache(&spec, &key, &label).await;
            let worktree = if isolated {
                let root = spec
                    .workspace
                    .clone()
                    .unwrap_or(this.inner.config.default_workspace.clone());
                let parent = std::env::temp_dir()
                    .join("baton-worktrees")
                    .join(this.run_id.to_string());
                let branch = format!("baton/{}/agent-{}", this.run_id, entry.seq);
                Some(crate::worktree::create(&root, &parent, &branch).await)
            } else {
                None
            };
            let outcome = match &worktree {
                Some(Err(why)) => {
                    this.live.log(format!("agent '{name}': {why}"));
                    Err(baton_agent::AgentError::BadInput(why.clone()))
                }
                Some(Ok(w)) => {
                    spec.workspace = Some(w.path.clone());
                    this.inner
                        .agents
                        .run_agent(spec, this.cancel.child_token())
                        .await
                }
                None => {
                    this.inner
                        .agents
                        .run_agent(spec, this.cancel.child_token())
                        .await
                }
            };
            if let Some(Ok(w)) = &worktree {
                match w.finish().await {
                    Ok(None) => {}
                    Ok(Some(changed)) => this.live.log(format!(
                        "agent '{name}' left its changes in the worktree {} on branch {} ({changed})",
                        w.path.display(),
                        w.branch
                    )),
                    Err(e) => this.live.log(format!(
                        "agent '{name}': its worktree {} could not be checked: {e}",
                        w.path.display()
                    )),
                }
            }
            // The agent's work is done: its slot goes to the next agent while its journal
            // entry commits, so the commit's wait does not hold up the run's other agents.
            drop(permit);
            let (value, status, error) = match outcome {
                Ok(out) => {
                    entry.session_id = Some(out.session_id);
                    entry.input_tokens = out.usage.input_tokens as i64;
                    entry.output_tokens = out.usage.output_tokens as i64;
                    entry.cost_usd = out.cost_usd;
                    // Output tokens, as Claude Code counts a budget; input and cached
                    // tokens show in the run's totals and cost.
                    this.spent
                        .fetch_add(out.usage.output_tokens, Ordering::SeqCst);
                    match out.status {
                        SessionStatus::Completed => (
                            out.result.unwrap_or(Value::Null),
                            AgentStatus::Completed,
                            None,
                        ),
                        SessionStatus::Cancelled => {
                            (Value::Null, AgentStatus::Cancelled, out.error)
                        }
                        _ => (Value::Null, AgentStatus::Failed, out.error),
                    }
                }
                Err(e) => (Value::Null, AgentStatus::Failed, Some(e.to_string())),
            };
            entry.status = status;
            entry.result = (status == AgentStatus::Completed).then(|| value.clone());
            entry.error = error.clone();
            entry.finished_at = Some(time::now());
            match this.inner.store.put_journal(&entry).await {
                Ok(()) => {}
                Err(baton_store::StoreError::Fenced(_)) => {
                    this.live.lose(
                        "the run's lease passed to another instance (a journal write was refused)",
                    );
                    return Err("cancelled".to_string());
                }
                Err(e) => return Err(e.to_string()),
            }
            this.publish(RunEvent::AgentFinish {
                key: key.clone(),
                order: entry.seq,
                label: label.clone(),
                phase: call.phase.clone(),
                status,
                cached: false,
                session_id: entry.session_id,
                error,
                input_tokens: entry.input_tokens,
                output_tokens: entry.output_tokens,
                cost_usd: entry.cost_usd,
            })
            .await;
            if let Some(total) = this.budget_total {
                let spent = this.spent.load(Ordering::SeqCst);
                this.publish(RunEvent::Budget { total, spent }).await;
            }
            Ok(value)
        })))
    }
}

impl RunHost {
    /// Waits, if a sibling with the same request prefix is starting, until its response
    /// has started (`[limits] prefix_stagger_ms` at most), telling the run view; answers
    /// the token to cancel when this agent's own response starts, if it goes first.
    async fn hold_for_cache(
        &self,
        spec: &AgentSpec,
        key: &str,
        label: &Option<String>,
    ) -> Option<CancellationToken> {
        use crate::prefix_gate::{prefix_key, Turn};
        let most = self.inner.config.prefix_stagger;
        if most.is_zero() {
            return None;
        }
        let model = self
            .inner
            .agents
            .model_for(spec.model.as_deref())
            .unwrap_or_else(|_| spec.model.clone().unwrap_or_default());
        let started = match self.prefixes.enter(prefix_key(&model, spec)) {
            Turn::Lead(token) => return Some(token),
            Turn::Go => return None,
            Turn::Follow(started) => started,
        };
        self.publish(RunEvent::AgentHold {
            key: key.to_string(),
            label: label.clone(),
            max_ms: Some(most.as_millis() as u64),
            held_ms: None,
        })
        .await;
        let since = std::time::Instant::now();
        tokio::select! {
            _ = started.cancelled() => {}
            _ = tokio::time::sleep(most) => {}
            _ = self.cancel.cancelled() => {}
        }
        self.publish(RunEvent::AgentHold {
            key: key.to_string(),
            label: label.clone(),
            max_ms: None,
            held_ms: Some(since.elapsed().as_millis() as u64),
        })
        .await;
        // A pause that landed during the hold holds this agent too: it has not asked the
        // model yet. (Cancelled, it goes on to end at once on its cancelled token.)
        let _ = self.wait_while_paused().await;
        None
    }
}

#[async_trait]
impl Host for RunHost {
    async fn agent(&self, call: AgentCall) -> Admission {
        match self.admit(call).await {
            Ok(a) => a,
            Err(e) => Admission::Answered(Err(e)),
        }
    }

    fn items(&self, n: usize) -> Result<(), String> {
        let max = self.inner.config.items_per_call;
        if n > max {
            return Err(format!(
                "{n} items is over the limit of {max} per parallel()/pipeline() call"
            ));
        }
        Ok(())
    }

    fn phase(&self, title: &str) -> Result<(), String> {
        self.live.publish_now(RunEvent::Phase {
            title: title.to_string(),
        });
        Ok(())
    }

    fn log(&self, message: &str) -> Result<(), String> {
        let message: String = message.chars().take(2000).collect();
        self.live.log(message);
        Ok(())
    }

    fn spent(&self) -> u64 {
        self.spent.load(Ordering::SeqCst)
    }

    async fn workflow(&self, name: String, args: Value) -> Result<Value, String> {
        if self.depth >= 1 {
            return Err("workflow() may not be nested more than one level".into());
        }
        let root = self
            .workspace
            .clone()
            .unwrap_or(self.inner.config.default_workspace.clone());
        let def = self
            .inner
            .find(&name, &root)
            .await
            .map_err(|e| e.to_string())?;
        let script = baton_script::parse(&def.script)
            .await
            .map_err(|e| format!("workflow '{name}': {e}"))?;
        let child = RunHost {
            inner: self.inner.clone(),
            live: self.live.clone(),
            run_id: self.run_id,
            slots: self.slots.clone(),
            cancel: self.cancel.clone(),
            paused: self.paused.clone(),
            budget_total: self.budget_total,
            spent: self.spent.clone(),
            started: self.started.clone(),
            seq: self.seq.clone(),
            occurrences: self.occurrences.clone(),
            caps: self.caps,
            workspace: self.workspace.clone(),
            depth: self.depth + 1,
            completed: self.completed.clone(),
            noted: self.noted.clone(),
            approval_at: self.approval_at,
            in_flight: self.in_flight.clone(),
            prefixes: self.prefixes.clone(),
        };
        let args = (!args.is_null()).then_some(args);
        let limits = self.inner.script_limits();
        baton_script::run(
            &script,
            args.as_ref(),
            self.budget_total,
            Arc::new(child),
            limits,
            self.cancel.clone(),
        )
        .await
        .map_err(|e| format!("workflow '{name}': {e}"))
    }
}
