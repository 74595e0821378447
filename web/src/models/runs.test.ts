import { describe, expect, it } from "vitest";
import { adoptView, applyEvent, mergeAgents, phasesOf, withEarlierLog, type LiveRun } from "./runs";
import type { RunEvent, RunOptions, RunView } from "../types";

const options = (phases: string[]): RunOptions => ({
  approved: true, budget_tokens: null, capabilities: { write: false, exec: false }, concurrency: 4,
  phases, projected_agents: 0, projected_tokens: 0, workspace: null,
});
const totals = { agents: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 };
const start = (key: string, label: string | null = null, phase: string | null = null): RunEvent =>
  ({ event: "agent_start", key, label, phase, order: 1 });
const finish = (key: string, phase: string, fields: Partial<Extract<RunEvent, { event: "agent_finish" }>>): RunEvent => ({
  event: "agent_finish", key, order: 1, label: null, phase, status: "completed", cached: false, session_id: null, error: null,
  input_tokens: 0, output_tokens: 0, cost_usd: 0, ...fields,
});
const status = (s: RunView["status"], owner: string | null = null): RunEvent =>
  ({ event: "status", status: s, error: null, totals, owner });

function run(): LiveRun {
  const view: RunView = {
    id: "r",
    name: "w",
    status: "running",
    source: "builtin",
    script: "",
    args: null,
    options: options(["Plan", "Work"]),
    result: null,
    error: null,
    totals,
    log: [],
    created_at: "2026-11-22T10:00:00Z",
    started_at: "2026-11-22T10:00:00Z",
    finished_at: null,
    updated_at: "2026-11-22T10:00:00Z",
    lease: { owner: "host-1-aaaaaa", epoch: 1, expires_at: "2026-11-22T10:00:15Z" },
    phases: [],
    agents: [],
    agents_total: 0,
    agents_next: null,
    log_total: 0,
    log_next: null,
  };
  return { run: view, budget: null };
}

describe("run events", () => {
  it("counts agents per phase by status as they start and finish", () => {
    const s = run();
    applyEvent(s, start("a", "one", "Work"), "2026-11-22T10:00:01Z");
    applyEvent(s, start("b", "two", "Work"), "2026-11-22T10:00:02Z");
    applyEvent(s, finish("a", "Work", { input_tokens: 100, output_tokens: 20, cost_usd: 0.5, session_id: "s" }), "2026-11-22T10:00:04Z");
    const phases = phasesOf(s.run, Date.parse("2026-11-22T10:00:05Z"));
    expect(phases.map((p) => p.title)).toEqual(["Plan", "Work"]);
    expect(phases[0].agents).toEqual({});
    expect(phases[1].agents).toEqual({ running: 1, completed: 1 });
    expect(phases[1].tokens).toBe(120);
    expect(phases[1].cost_usd).toBe(0.5);
    expect(phases[1].elapsed_ms).toBe(4000); // b is still running: until now
    expect(s.run.agents[0].session_id).toBe("s");
  });

  it("shows a journaled (cached) agent as completed without a start", () => {
    const s = run();
    applyEvent(s, finish("c", "Plan", { label: "x", cached: true, session_id: "old" }), "2026-11-22T10:00:01Z");
    expect(s.run.agents).toHaveLength(1);
    expect(s.run.agents[0]).toMatchObject({ cached: true, status: "completed", session_id: "old" });
  });

  it("follows the run to the instance that took it over", () => {
    const s = run();
    applyEvent(s, { event: "log", message: "taken over by instance host-2-bbbbbb (lease epoch 2)" }, "");
    applyEvent(s, status("running", "host-2-bbbbbb"), "");
    expect(s.run.lease.owner).toBe("host-2-bbbbbb");
    expect(s.run.lease.epoch).toBe(1); // the epoch is the store's business; the view shows the owner
    applyEvent(s, status("paused", "host-2-bbbbbb"), "");
    expect(s.run.lease.owner).toBe("host-2-bbbbbb");
    applyEvent(s, status("cancelled"), "");
    expect(s.run.lease.owner).toBeNull();
  });

  it("keeps the log, the budget and the status, and asks for a re-read at the end", () => {
    const s = run();
    expect(applyEvent(s, { event: "log", message: "hello" }, "")).toBe(true);
    expect(applyEvent(s, { event: "budget", total: 10, spent: 4 }, "")).toBe(true);
    expect(applyEvent(s, status("paused"), "")).toBe(true);
    expect(applyEvent(s, status("completed"), "")).toBe(false);
    expect(s.run.log).toEqual(["hello"]);
    expect(s.budget).toEqual({ total: 10, spent: 4 });
    expect(s.run.status).toBe("completed");
    expect(applyEvent(s, { event: "mystery" } as never, "")).toBe(false);
  });

  it("adds phases announced by the script that were not declared", () => {
    const s = run();
    applyEvent(s, { event: "phase", title: "Extra" }, "");
    expect(phasesOf(s.run, 0).map((p) => p.title)).toEqual(["Plan", "Work", "Extra"]);
  });
});

describe("cache holds", () => {
  it("shows a sibling waiting for the first one's cache, then how long it waited", () => {
    const state = run();
    const at = "2026-01-01T00:00:00Z";
    expect(applyEvent(state, start("k-hold"), at)).toBe(true);
    expect(applyEvent(state, { event: "agent_hold", key: "k-hold", label: null, max_ms: 5000 }, at)).toBe(true);
    const agent = () => state.run.agents.find((a) => a.key === "k-hold");
    expect(agent()?.holding).toBe(true);
    expect(applyEvent(state, { event: "agent_hold", key: "k-hold", label: null, held_ms: 140 }, at)).toBe(true);
    expect(agent()).toMatchObject({ holding: false, held_ms: 140 });
  });
});

describe("a run with more agents than are here", () => {
  it("counts agents it has not read in the server's phases, and pages the rest in order", () => {
    const s = run();
    const agent = (key: string, order: number) => ({
      key, order, label: null, phase: "Work", status: "completed" as const, session_id: null, cached: false,
      input_tokens: 1, output_tokens: 1, cost_usd: 0.1, started_at: "2026-11-22T10:00:00Z",
      finished_at: "2026-11-22T10:00:01Z", error: null,
    });
    s.run.agents = [agent("a1", 1), agent("a2", 2)];
    s.run.agents_total = 300;
    s.run.agents_next = "2";
    s.run.phases = [
      { title: "Work", agents: { completed: 250, running: 50 }, tokens: 500, cost_usd: 25, elapsed_ms: 9000, started_at: null, finished_at: null },
    ];
    applyEvent(s, finish("far-away", "Work", { order: 280, input_tokens: 10, output_tokens: 5, cost_usd: 1 }), "");
    applyEvent(s, { event: "agent_start", key: "new-one", label: null, phase: "Work", order: 301 }, "");
    const [work] = phasesOf(s.run, 0);
    expect(work.agents).toEqual({ completed: 251, running: 50 });
    expect(work.tokens).toBe(515);
    expect(s.run.agents_total).toBe(301);
    // A page read later slots in by start order, the live ones kept.
    s.run.agents = mergeAgents(s.run.agents, [agent("a3", 3), agent("a2", 2)]);
    expect(s.run.agents.map((a) => a.key).slice(0, 3)).toEqual(["a1", "a2", "a3"]);
    // A fresh view (its first page only) keeps what was paged in, and where paging stands.
    const fresh = { ...s.run, agents: [agent("a1", 1)], agents_next: "1" };
    const kept = adoptView(s.run, fresh);
    expect(kept.agents.length).toBe(s.run.agents.length);
    expect(kept.agents_next).toBe("2");
  });
});

describe("a large run's phase timer", () => {
  it("runs on while the phase's agents run and stops at the last one's finish", () => {
    const s = run();
    s.run.agents_total = 300;
    s.run.agents_next = "200";
    // As the server read it at 10:00:09: one agent still running, started at 10:00:00.
    s.run.phases = [
      { title: "Work", agents: { completed: 299, running: 1 }, tokens: 0, cost_usd: 0, elapsed_ms: 9000,
        started_at: "2026-11-22T10:00:00Z", finished_at: null },
      { title: "Plan", agents: { completed: 2 }, tokens: 0, cost_usd: 0, elapsed_ms: 2000,
        started_at: "2026-11-21T09:00:00Z", finished_at: "2026-11-21T09:00:02Z" },
    ];
    const at = (t: string) => Date.parse(`2026-11-22T10:00:${t}Z`);
    expect(phasesOf(s.run, at("30")).map((p) => p.elapsed_ms)).toEqual([30_000, 2000]);
    applyEvent(s, finish("last", "Work", { order: 300 }), "2026-11-22T10:00:40Z");
    expect(phasesOf(s.run, at("55")).map((p) => p.elapsed_ms)).toEqual([40_000, 2000]);
    // A new agent starts the clock again, from the phase's first start.
    applyEvent(s, { event: "agent_start", key: "again", label: null, phase: "Work", order: 301 }, "2026-11-22T10:00:50Z");
    expect(phasesOf(s.run, at("58"))[0].elapsed_ms).toBe(58_000);
  });
});

describe("a long log", () => {
  it("numbers lines from the start: earlier pages go in front, a fresh view keeps them", () => {
    const s = run();
    s.run.log = ["l300", "l301"];
    s.run.log_total = 302;
    s.run.log_next = "300";
    applyEvent(s, { event: "log", message: "l302" }, "");
    expect(s.run.log_total).toBe(303);
    const paged = withEarlierLog(s.run, ["l298", "l299"], "298");
    expect(paged.log).toEqual(["l298", "l299", "l300", "l301", "l302"]);
    // The server's next view holds the newest lines only; the earlier ones read stay.
    const fresh = { ...paged, log: ["l301", "l302", "l303"], log_total: 304, log_next: "301" };
    const kept = adoptView(paged, fresh);
    expect(kept.log).toEqual(["l298", "l299", "l300", "l301", "l302", "l303"]);
    expect(kept.log_next).toBe("298");
  });
});
