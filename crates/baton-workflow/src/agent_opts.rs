//! What an `agent()` call's options mean here: Claude Code's tool names and effort, the
//! name it is logged under, its agent type, and the notes the run's log gets about
//! options Baton cannot honour as written.
use baton_script::AgentCall;
use serde_json::Value;

use crate::host::RunHost;

pub(crate) fn opt_u64(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// An `agent()` call's `tools`, as Baton's tool names (Claude Code's names map to them),
/// and the entries that name no tool of Baton's.
pub(crate) fn tool_names(opts: &Value) -> (Option<Vec<String>>, Vec<String>) {
    let Some(list) = opts.get("tools").and_then(Value::as_array) else {
        return (None, Vec::new());
    };
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for v in list {
        let name = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        match baton_agent::tools::canonical(&name) {
            Some(t) => known.push(t.to_string()),
            None if baton_agent::tasks::is_task_tool(&name) => known.push(name),
            None => unknown.push(name),
        }
    }
    known.dedup();
    (Some(known), unknown)
}

/// `effort: 'low' | 'medium' | 'high'`.
pub(crate) fn effort_of(opts: &Value) -> Option<baton_llm::Effort> {
    opts.get("effort")
        .and_then(Value::as_str)
        .and_then(baton_llm::Effort::parse)
}

/// How an agent is named in the run's log: its label, or its prompt's start.
pub(crate) fn agent_name(call: &AgentCall) -> String {
    match call.opts.get("label").and_then(Value::as_str) {
        Some(l) => l.to_string(),
        None => {
            let start: String = call.prompt.chars().take(40).collect();
            if start.len() < call.prompt.len() {
                format!("{start}…")
            } else {
                start
            }
        }
    }
}

impl RunHost {
    /// Says on the run's log what in an `agent()` call's options Baton cannot honour as
    /// written: a model that resolves to no configured one, tool names that are no tools
    /// of Baton's, and options it does not act on — once per kind of note.
    pub(crate) fn note_options(&self, call: &AgentCall) {
        let mut notes = Vec::new();
        if let Some(m) = call.opts.get("model").and_then(Value::as_str) {
            if let Err(why) = self.inner.agents.model_for(Some(m)) {
                notes.push((format!("model:{m}"), why));
            }
        }
        if let Some(e) = call.opts.get("effort").filter(|v| !v.is_null()) {
            if effort_of(&call.opts).is_none() {
                notes.push((
                    format!("effort:{e}"),
                    format!("effort {e} is not low, medium or high and is ignored"),
                ));
            }
        }
        let (_, unknown) = tool_names(&call.opts);
        if !unknown.is_empty() {
            notes.push((
                format!("tools:{}", unknown.join(",")),
                format!(
                    "tools {} are not Baton tools and were left out (Baton's: {}; Claude Code's Read, Grep, Glob, LS, Edit, MultiEdit, Write and Bash map to them)",
                    unknown.join(", "),
                    baton_agent::tools::NAMES.join(", ")
                ),
            ));
        }
        match call.opts.get("isolation") {
            None | Some(Value::Null) => {}
            Some(Value::String(w)) if w == "worktree" => {
                if !self.caps.write {
                    notes.push((
                        "isolation".into(),
                        "isolation: 'worktree' matters only for a run granted write; the agent reads the run's workspace".into(),
                    ));
                }
            }
            Some(other) => notes.push((
                format!("isolation:{other}"),
                format!("isolation {other} is not known (only 'worktree'); the agent works in the run's workspace"),
            )),
        }
        if notes.is_empty() {
            return;
        }
        let name = agent_name(call);
        let mut seen = self.noted.lock().expect("notes lock");
        for (key, note) in notes {
            if seen.insert(key) {
                self.live.log(format!("agent '{name}': {note}"));
            }
        }
    }

    /// The agent type `name` for `call`, or an error the script gets (and the run's log
    /// shows, once per type).
    pub(crate) fn agent_type(
        &self,
        name: &str,
        call: &AgentCall,
    ) -> Result<crate::AgentType, String> {
        let root = self
            .workspace
            .clone()
            .unwrap_or(self.inner.config.default_workspace.clone());
        let found = crate::agent_types::find(name, &root, self.inner.config.home.as_deref());
        if let Err(why) = &found {
            if self
                .noted
                .lock()
                .expect("notes lock")
                .insert(format!("agentType:{name}"))
            {
                self.live
                    .log(format!("agent '{}': {why}", agent_name(call)));
            }
        }
        found
    }
}
