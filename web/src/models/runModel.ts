// One run as the page keeps it: its view read over REST, then kept current by `run:<id>`
// frames applied in place, and the traces of the agent being looked at.
import { signal } from "@preact/signals";
import { api, ApiError } from "../api";
import { debounce, live, perFrame } from "../app";
import { adoptView, applyEvent, finished, mergeAgents, withEarlierLog, type LiveRun } from "./runs";
import type { Frame } from "../types";
import { TraceModel } from "./traceModel";

export class RunModel {
  state = signal<LiveRun | null>(null);
  version = signal(0);
  error = signal<string | null>(null);
  notFound = signal(false);
  /** The agent whose traces are open, and their model (live frames feed it). */
  agentTraces: { session: string; model: TraceModel } | null = null;
  private off: (() => void) | null = null;
  private bump = perFrame(() => (this.version.value += 1));
  private reread = debounce(() => void this.load(), 200, 1000);
  private pending: Frame[] = [];

  constructor(readonly id: string) {}

  start() {
    this.off = live.subscribe(`run:${this.id}`, (f) => this.onFrame(f));
    void this.load();
  }

  stop() {
    this.off?.();
  }

  /** Reads the run over REST. The `snapshot` frame is the source of truth while the socket
   * is up (it is ordered with the frames after it, a REST answer is not), so a read only
   * fills in before the first snapshot, or once the run has finished and no frame can follow
   * (the result and totals come with no event of their own). */
  async load() {
    try {
      const view = await api.run(this.id);
      const current = this.state.value;
      if (current && !finished(view.status)) return;
      this.state.value = { run: adoptView(current?.run ?? null, view), budget: current?.budget ?? null };
      const pending = this.pending;
      this.pending = [];
      for (const f of pending) this.onFrame(f);
      this.bump();
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) this.notFound.value = true;
      else this.error.value = e instanceof Error ? e.message : String(e);
    }
  }

  onFrame(f: Frame) {
    if (f.type === "snapshot") {
      const view = "run" in f.state ? f.state.run : null;
      if (view) {
        const current = this.state.value;
        this.state.value = { run: adoptView(current?.run ?? null, view), budget: current?.budget ?? null };
        this.bump();
      }
      return;
    }
    if (f.type === "tool_trace") {
      const t = f.trace;
      if (this.agentTraces && t.session_id === this.agentTraces.session) this.agentTraces.model.apply(t);
      return;
    }
    if (f.type !== "run_event") return;
    const state = this.state.value;
    if (!state) {
      this.pending.push(f);
      return;
    }
    if (!applyEvent(state, f, f.at)) this.reread();
    this.bump();
  }

  private agentsBusy = false;

  /** Reads the next page of agents, when the list has scrolled near the end of those here. */
  async moreAgents() {
    const state = this.state.value;
    const cursor = state?.run.agents_next;
    if (!state || !cursor || this.agentsBusy) return;
    this.agentsBusy = true;
    try {
      const page = await api.runAgents(this.id, cursor);
      const run = this.state.value?.run;
      if (!run) return;
      run.agents = mergeAgents(run.agents, page.items);
      run.agents_next = page.next_cursor;
      this.bump();
    } catch (e) {
      this.error.value = e instanceof Error ? e.message : String(e);
    } finally {
      this.agentsBusy = false;
    }
  }

  /** Reads the page of log lines before those here. */
  async earlierLog() {
    const state = this.state.value;
    const cursor = state?.run.log_next;
    if (!state || !cursor) return;
    try {
      const page = await api.runLog(this.id, cursor);
      const current = this.state.value;
      if (!current || current.run.log_next !== cursor) return;
      this.state.value = { ...current, run: withEarlierLog(current.run, page.items, page.next_cursor) };
      this.bump();
    } catch (e) {
      this.error.value = e instanceof Error ? e.message : String(e);
    }
  }

  async control(action: "approve" | "cancel" | "pause" | "resume") {
    this.error.value = null;
    try {
      await api.control(this.id, action);
      this.reread();
    } catch (e) {
      this.error.value = e instanceof Error ? e.message : String(e);
    }
  }

  tracesOf(session: string): TraceModel {
    if (this.agentTraces?.session !== session) {
      const model = new TraceModel((cursor) => api.sessionTraces(session, cursor));
      this.agentTraces = { session, model };
      void model.more();
    }
    return this.agentTraces.model;
  }
}
