//! `GET /api/runs/:id`: the run with per-phase agent counts, tokens, cost and elapsed
//! time, and each agent with its session for drill-down.
use std::collections::BTreeMap;

use baton_core::{AgentStatus, JournalEntry, Run, SessionId, Timestamp};
use schemars::JsonSchema;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AgentView {
    pub key: String,
    pub label: Option<String>,
    pub phase: Option<String>,
    pub status: AgentStatus,
    pub session_id: Option<SessionId>,
    pub cached: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PhaseView {
    pub title: String,
    /// Agents by status: running, completed, failed, cancelled.
    pub agents: BTreeMap<String, u64>,
    pub tokens: i64,
    pub cost_usd: f64,
    /// From the first agent's start to the last one's finish (or now).
    pub elapsed_ms: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunView {
    #[serde(flatten)]
    pub run: Run,
    pub phases: Vec<PhaseView>,
    pub agents: Vec<AgentView>,
}

impl RunView {
    pub fn build(run: Run, declared_phases: &[String], journal: Vec<JournalEntry>) -> Self {
        let mut titles: Vec<String> = declared_phases.to_vec();
        for e in &journal {
            let t = e.phase.clone().unwrap_or_default();
            if !titles.contains(&t) {
                titles.push(t);
            }
        }
        let now = baton_core::time::now();
        let phases = titles
            .into_iter()
            .map(|title| {
                let of: Vec<&JournalEntry> = journal
                    .iter()
                    .filter(|e| e.phase.clone().unwrap_or_default() == title)
                    .collect();
                let mut agents = BTreeMap::new();
                for e in &of {
                    *agents.entry(e.status.as_str().to_string()).or_insert(0) += 1;
                }
                let start = of.iter().map(|e| e.started_at).min();
                let end = of.iter().map(|e| e.finished_at.unwrap_or(now)).max();
                PhaseView {
                    title,
                    agents,
                    tokens: of.iter().map(|e| e.input_tokens + e.output_tokens).sum(),
                    cost_usd: of.iter().map(|e| e.cost_usd).sum(),
                    elapsed_ms: match (start, end) {
                        (Some(s), Some(e)) => (e - s).num_milliseconds().max(0),
                        _ => 0,
                    },
                }
            })
            .collect();
        let agents = journal
            .into_iter()
            .map(|e| AgentView {
                key: e.key,
                label: e.label,
                phase: e.phase,
                status: e.status,
                session_id: e.session_id,
                cached: e.cached,
                input_tokens: e.input_tokens,
                output_tokens: e.output_tokens,
                cost_usd: e.cost_usd,
                started_at: e.started_at,
                finished_at: e.finished_at,
                error: e.error,
            })
            .collect();
        Self {
            run,
            phases,
            agents,
        }
    }
}
