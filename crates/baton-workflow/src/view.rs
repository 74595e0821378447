//! Builds `GET /api/runs/:id`'s view from the run and its journal.
use std::collections::BTreeMap;

use baton_core::{AgentView, JournalEntry, PhaseView, Run, RunView};

/// Phases in declared order, then in the order the journal first names them; each with
/// its agents counted by status, tokens, cost and elapsed time.
pub fn build(run: Run, declared_phases: &[String], journal: Vec<JournalEntry>) -> RunView {
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
                *agents.entry(e.status).or_insert(0) += 1;
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
    RunView {
        run,
        phases,
        agents: journal.into_iter().map(AgentView::from).collect(),
    }
}
