//! Builds `GET /api/runs/:id`'s view from the run, its journal's totals per phase and
//! its first agents: however many agents a run has, the view reads a bounded amount.
use std::collections::BTreeMap;

use baton_core::{AgentView, JournalEntry, PhaseView, Run, RunView};
use baton_store::PhaseTotals;

/// Agents the view carries; the rest are paged.
pub const AGENTS_IN_VIEW: u32 = 200;
/// Log lines the view carries, the newest; earlier ones are paged.
pub const LOG_IN_VIEW: usize = 200;

/// Phases in declared order, then in the order their first agent started; each with its
/// agents counted by status, tokens, cost and elapsed time. `first` holds up to
/// `AGENTS_IN_VIEW + 1` agents: one more says there are more.
pub fn build(
    mut run: Run,
    declared_phases: &[String],
    totals: Vec<PhaseTotals>,
    mut first: Vec<JournalEntry>,
) -> RunView {
    let mut titles: Vec<String> = declared_phases.to_vec();
    for t in &totals {
        let title = t.phase.clone().unwrap_or_default();
        if !titles.contains(&title) {
            titles.push(title);
        }
    }
    let now = baton_core::time::now();
    let phases = titles
        .into_iter()
        .map(|title| {
            let of: Vec<&PhaseTotals> = totals
                .iter()
                .filter(|t| t.phase.as_deref().unwrap_or_default() == title)
                .collect();
            let mut agents = BTreeMap::new();
            for t in &of {
                *agents.entry(t.status).or_insert(0) += t.agents as u64;
            }
            let start = of.iter().map(|t| t.first_started).min();
            let running = of.iter().any(|t| t.unfinished > 0);
            let finished = if running {
                None
            } else {
                of.iter().filter_map(|t| t.last_finished).max()
            };
            let end = if running { Some(now) } else { finished };
            PhaseView {
                title,
                agents,
                tokens: of.iter().map(|t| t.tokens).sum(),
                cost_usd: of.iter().map(|t| t.cost_usd).sum(),
                elapsed_ms: match (start, end) {
                    (Some(s), Some(e)) => (e - s).num_milliseconds().max(0),
                    _ => 0,
                },
                started_at: start,
                finished_at: finished,
            }
        })
        .collect();
    let more = first.len() > AGENTS_IN_VIEW as usize;
    first.truncate(AGENTS_IN_VIEW as usize);
    let agents_next = more
        .then(|| first.last().map(|e| e.seq.to_string()))
        .flatten();
    let log_total = run.log.len() as u64;
    let older = run.log.len().saturating_sub(LOG_IN_VIEW);
    run.log.drain(..older);
    RunView {
        run,
        log_total,
        log_next: (older > 0).then(|| older.to_string()),
        phases,
        agents: first.into_iter().map(AgentView::from).collect(),
        agents_total: totals.iter().map(|t| t.agents as u64).sum(),
        agents_next,
    }
}
