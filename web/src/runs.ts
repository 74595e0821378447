// A run's view kept current from `run_event` frames, without refetching it on every event:
// a 1,000-agent run sends thousands of frames, and each is applied in place.
import type { AgentStatus, AgentView, PhaseView, RunStatus, RunView } from "./types";

export interface RunEvent {
  event: "phase" | "agent_start" | "agent_finish" | "agent_hold" | "log" | "status" | "budget";
  [field: string]: unknown;
}

export interface LiveRun {
  run: RunView;
  budget: { total: number; spent: number } | null;
}

const STATUSES: AgentStatus[] = ["running", "completed", "failed", "cancelled"];

/** Applies one event; returns false when the run should be read again from the server (an
 * event it cannot place, or a final status whose totals only the server has). */
export function applyEvent(state: LiveRun, e: RunEvent, at: string): boolean {
  const run = state.run;
  switch (e.event) {
    case "phase": {
      const title = String(e.title ?? "");
      if (!run.phases.some((p) => p.title === title)) run.phases.push(emptyPhase(title));
      return true;
    }
    case "agent_start": {
      const key = String(e.key);
      const existing = run.agents.find((a) => a.key === key);
      const agent = existing ?? newAgent(e, at);
      agent.status = "running";
      agent.started_at = existing ? existing.started_at : at;
      if (!existing) run.agents.push(agent);
      return true;
    }
    case "agent_finish": {
      const key = String(e.key);
      let agent = run.agents.find((a) => a.key === key);
      if (!agent) {
        // A cached agent finishes without starting.
        agent = newAgent(e, at);
        agent.finished_at = at;
        run.agents.push(agent);
      }
      agent.status = (e.status as AgentStatus) ?? "completed";
      agent.cached = Boolean(e.cached);
      agent.session_id = (e.session_id as string | null) ?? agent.session_id;
      agent.error = (e.error as string | null) ?? null;
      if (!e.cached) {
        agent.input_tokens = Number(e.input_tokens ?? 0);
        agent.output_tokens = Number(e.output_tokens ?? 0);
        agent.cost_usd = Number(e.cost_usd ?? 0);
        agent.finished_at = at;
      }
      return true;
    }
    case "agent_hold": {
      // A sibling waiting for the first one with its request prefix, to read its cache.
      const agent = run.agents.find((a) => a.key === String(e.key));
      if (!agent) return true;
      if (typeof e.held_ms === "number") {
        agent.holding = false;
        agent.held_ms = e.held_ms;
      } else agent.holding = true;
      return true;
    }
    case "log":
      run.log.push(String(e.message ?? ""));
      return true;
    case "budget":
      state.budget = { total: Number(e.total), spent: Number(e.spent) };
      return true;
    case "status": {
      run.status = e.status as RunStatus;
      if (e.error !== undefined) run.error = (e.error as string | null) ?? null;
      // Another instance took the run over, or it was given up.
      if (e.owner !== undefined) run.lease = { ...run.lease, owner: (e.owner as string | null) ?? null };
      return !["completed", "failed", "cancelled"].includes(run.status);
    }
    default:
      return false;
  }
}

function newAgent(e: RunEvent, at: string): AgentView {
  return {
    key: String(e.key),
    label: (e.label as string | null) ?? null,
    phase: (e.phase as string | null) ?? null,
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
  return { title, agents: {}, tokens: 0, cost_usd: 0, elapsed_ms: 0 };
}

/** Phases with agent counts by status, tokens, cost and elapsed time, from the agents. Declared
 * phases come first, in their order, even before any agent reaches them. */
export function phasesOf(run: RunView, now: number): PhaseView[] {
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
    return {
      title,
      agents,
      tokens: of.reduce((n, a) => n + a.input_tokens + a.output_tokens, 0),
      cost_usd: of.reduce((n, a) => n + a.cost_usd, 0),
      elapsed_ms: of.length ? Math.max(0, Math.max(...ends) - Math.min(...starts)) : 0,
    };
  });
}

export const finished = (s: RunStatus) => s === "completed" || s === "failed" || s === "cancelled";
