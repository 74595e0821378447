// A run's view kept current from `run_event` frames, without refetching it on every event:
// a 1,000-agent run sends thousands of frames, and each is applied in place.
import type { AgentStatus, AgentView, PhaseView, RunEvent, RunStatus, RunView } from "../types";

export type { RunEvent };

export interface LiveRun {
  run: RunView;
  budget: { total: number; spent: number } | null;
}

const STATUSES: AgentStatus[] = ["running", "completed", "failed", "cancelled"];

/** Applies one event; returns false when the run should be read again from the server (an
 * event it cannot place, or a final status whose totals only the server has). */
export function applyEvent(state: LiveRun, e: RunEvent, at: string): boolean {
  const run = state.run;
  if (partial(run)) countInPhases(run, e, at);
  switch (e.event) {
    case "phase": {
      if (!run.phases.some((p) => p.title === e.title)) run.phases.push(emptyPhase(e.title));
      return true;
    }
    case "agent_start": {
      const existing = run.agents.find((a) => a.key === e.key);
      const agent = existing ?? newAgent(e, e.order, at);
      agent.status = "running";
      agent.started_at = existing ? existing.started_at : at;
      if (!existing) run.agents.push(agent);
      return true;
    }
    case "agent_finish": {
      let agent = run.agents.find((a) => a.key === e.key);
      if (!agent) {
        // A cached agent finishes without starting.
        agent = newAgent(e, e.order, at);
        agent.finished_at = at;
        run.agents.push(agent);
      }
      agent.status = e.status;
      agent.cached = e.cached;
      agent.session_id = e.session_id ?? agent.session_id;
      agent.error = e.error;
      agent.input_tokens = e.input_tokens;
      agent.output_tokens = e.output_tokens;
      agent.cost_usd = e.cost_usd;
      if (!e.cached) agent.finished_at = at;
      return true;
    }
    case "agent_hold": {
      // A sibling waiting for the first one with its request prefix, to read its cache.
      const agent = run.agents.find((a) => a.key === e.key);
      if (!agent) return true;
      if (typeof e.held_ms === "number") {
        agent.holding = false;
        agent.held_ms = e.held_ms;
      } else agent.holding = true;
      return true;
    }
    case "log":
      run.log.push(e.message);
      run.log_total += 1;
      return true;
    case "budget":
      state.budget = { total: e.total, spent: e.spent };
      return true;
    case "status": {
      run.status = e.status;
      run.error = e.error;
      run.totals = e.totals;
      // Another instance took the run over, or it was given up.
      run.lease = { ...run.lease, owner: e.owner };
      return !["completed", "failed", "cancelled"].includes(run.status);
    }
    default:
      return false;
  }
}

function newAgent(e: { key: string; label: string | null; phase: string | null }, order: number, at: string): AgentView {
  return {
    key: e.key,
    order,
    label: e.label,
    phase: e.phase,
    status: "running",
    session_id: null,
    cached: false,
    input_tokens: 0,
    output_tokens: 0,
    cost_usd: 0,
    started_at: at,
    finished_at: null,
    error: null,
  };
}

function emptyPhase(title: string): PhaseView {
  return { title, agents: {}, tokens: 0, cost_usd: 0, elapsed_ms: 0, started_at: null, finished_at: null };
}

/** Whether only some of the run's agents are here (the view carries the first 200; the rest
 * are paged in as the list scrolls): then its phases are the server's, kept by events. */
export const partial = (run: RunView) => run.agents_next !== null;

/** A large run's phase counts as agents start and finish, for agents that may not be here,
 * and when each phase started and (once none of its agents runs) finished. */
function countInPhases(run: RunView, e: RunEvent, at: string) {
  if (e.event !== "agent_start" && e.event !== "agent_finish") return;
  const title = e.phase ?? "";
  let phase = run.phases.find((p) => p.title === title);
  if (!phase) run.phases.push((phase = emptyPhase(title)));
  const known = run.agents.find((a) => a.key === e.key);
  const add = (s: AgentStatus, n: number) => (phase.agents[s] = Math.max(0, (phase.agents[s] ?? 0) + n));
  if (e.event === "agent_start") {
    if (!known || known.status !== "running") add("running", 1);
    if (known && known.status !== "running") add(known.status, -1);
    if (!known) run.agents_total += 1;
    phase.started_at ??= at;
    phase.finished_at = null;
    return;
  }
  // A cached agent finishes without starting; any other was counted running.
  if (e.cached && !known) run.agents_total += 1;
  else add(known?.status ?? "running", -1);
  add(e.status, 1);
  if (!e.cached) {
    phase.tokens += e.input_tokens + e.output_tokens;
    phase.cost_usd += e.cost_usd;
  }
  phase.started_at ??= at;
  if (!phase.agents.running) phase.finished_at = at;
}

/** A phase's time from its first start to its last finish, or on to `now` while it runs. */
function elapsed(p: PhaseView, now: number): number {
  if (!p.started_at) return p.elapsed_ms;
  const end = p.finished_at ? Date.parse(p.finished_at) : now;
  return Math.max(0, end - Date.parse(p.started_at));
}

/** Agents by key, the later read winning, in start order. */
export function mergeAgents(have: AgentView[], page: AgentView[]): AgentView[] {
  const byKey = new Map(have.map((a) => [a.key, a]));
  for (const a of page) byKey.set(a.key, { ...byKey.get(a.key), ...a });
  return [...byKey.values()].sort((a, b) => a.order - b.order);
}

/** A fresh view of the run, keeping the agents and the log lines already paged in beyond
 * what it carries. */
export function adoptView(current: RunView | null, next: RunView): RunView {
  if (!current) return next;
  let view = next;
  if (current.agents.length > next.agents.length)
    view = { ...view, agents: mergeAgents(current.agents, next.agents), agents_next: current.agents_next };
  // Lines are numbered from the log's start: keep those read before the view's first.
  const had = current.log_total - current.log.length;
  const from = next.log_total - next.log.length;
  if (had < from) view = { ...view, log: [...current.log.slice(0, from - had), ...next.log], log_next: current.log_next };
  return view;
}

/** The run with `lines`, the page of its log before those it has, put in front. */
export function withEarlierLog(run: RunView, lines: string[], next: string | null): RunView {
  return { ...run, log: [...lines, ...run.log], log_next: next };
}

/** Phases with agent counts by status, tokens, cost and elapsed time, from the agents (the
 * server's when only some agents are here). Declared phases come first, in their order, even
 * before any agent reaches them. */
export function phasesOf(run: RunView, now: number): PhaseView[] {
  if (partial(run)) return run.phases.map((p) => ({ ...p, elapsed_ms: elapsed(p, now) }));
  const titles: string[] = [...(run.options?.phases ?? [])];
  for (const p of run.phases) if (!titles.includes(p.title)) titles.push(p.title);
  for (const a of run.agents) {
    const t = a.phase ?? "";
    if (!titles.includes(t)) titles.push(t);
  }
  return titles.map((title) => {
    const of = run.agents.filter((a) => (a.phase ?? "") === title);
    const agents: Partial<Record<AgentStatus, number>> = {};
    for (const s of STATUSES) {
      const n = of.filter((a) => a.status === s).length;
      if (n) agents[s] = n;
    }
    const starts = of.map((a) => Date.parse(a.started_at));
    const ends = of.map((a) => (a.finished_at ? Date.parse(a.finished_at) : now));
    const first = of.length ? Math.min(...starts) : null;
    const last = of.length && !agents.running ? Math.max(...ends) : null;
    return {
      title,
      agents,
      tokens: of.reduce((n, a) => n + a.input_tokens + a.output_tokens, 0),
      cost_usd: of.reduce((n, a) => n + a.cost_usd, 0),
      elapsed_ms: of.length ? Math.max(0, Math.max(...ends) - Math.min(...starts)) : 0,
      started_at: first === null ? null : new Date(first).toISOString(),
      finished_at: last === null ? null : new Date(last).toISOString(),
    };
  });
}

export const finished = (s: RunStatus) => s === "completed" || s === "failed" || s === "cancelled";
