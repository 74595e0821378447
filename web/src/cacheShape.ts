// The prompt-cache shape the server records on each model call (`meta.cache`), and the
// per-turn series drawn in the Timeline's cache chart.
import type { Trace } from "./types";
import { hitRate } from "./traces";

export interface Segment {
  name: "tools" | "system" | "history" | "new" | string;
  tokens: number;
  cached: number;
  written: number;
  fresh: number;
  images: number;
}

export interface Shape {
  segments: Segment[];
  changed: string[];
  calibrated: boolean;
}

const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

/** A model call's cache shape, or null when it has none (a tool call, an older trace). */
export function shapeOf(t: Trace): Shape | null {
  const c = (t.meta as { cache?: unknown } | null)?.cache as
    | { segments?: unknown; changed?: unknown; calibrated?: unknown }
    | undefined;
  if (!c || !Array.isArray(c.segments)) return null;
  const segments = c.segments.map((s: Record<string, unknown>) => {
    const tokens = num(s.tokens);
    const cached = num(s.cached);
    const written = num(s.written);
    return {
      name: String(s.name ?? "?"),
      tokens,
      cached,
      written,
      fresh: s.fresh === undefined ? Math.max(0, tokens - cached - written) : num(s.fresh),
      images: num(s.images),
    };
  });
  return {
    segments,
    changed: Array.isArray(c.changed) ? c.changed.map(String) : [],
    calibrated: c.calibrated === true,
  };
}

export const SEGMENT_LABEL: Record<string, string> = {
  tools: "tool schemas",
  system: "system prompt",
  history: "history",
  new: "new this call",
};

const CHANGE_LABEL: Record<string, string> = {
  tools: "tools changed",
  system: "system prompt changed",
  model: "model changed",
};

export interface TurnPoint {
  turn: number;
  input: number;
  cached: number;
  rate: number;
  cost: number;
  /** What the turn would have cost with nothing cached. */
  uncached: number;
  /** Running totals up to and including this turn. */
  totalCost: number;
  totalUncached: number;
  /** Prefix parts that changed from the call before. */
  changed: string[];
  /** Set when the hit rate fell sharply from the turn before: why, as far as is known. */
  drop: string | null;
}

/** A sharp fall: from at least 40 % down by 30 points or more. */
const DROP_FROM = 0.4;
const DROP_BY = 0.3;

/** Per-turn cache figures of a session's (or chat's) model calls, oldest turn first. */
export function turnSeries(traces: Iterable<Trace>): TurnPoint[] {
  const byTurn = new Map<number, Trace[]>();
  for (const t of traces) {
    if (t.kind !== "llm" || t.outcome === "running") continue;
    const list = byTurn.get(t.turn_number) ?? [];
    list.push(t);
    byTurn.set(t.turn_number, list);
  }
  const out: TurnPoint[] = [];
  let totalCost = 0;
  let totalUncached = 0;
  for (const turn of [...byTurn.keys()].sort((a, b) => a - b)) {
    const calls = (byTurn.get(turn) ?? []).sort((a, b) => a.started_at.localeCompare(b.started_at));
    let input = 0;
    let cached = 0;
    let cost = 0;
    let uncached = 0;
    const changed = new Set<string>();
    for (const t of calls) {
      input += t.input_tokens ?? 0;
      cached += t.cache_tokens ?? 0;
      cost += t.cost_usd ?? 0;
      const u = (t.meta as { uncached_cost_usd?: unknown } | null)?.uncached_cost_usd;
      uncached += typeof u === "number" ? u : (t.cost_usd ?? 0);
      for (const c of shapeOf(t)?.changed ?? []) changed.add(c);
    }
    totalCost += cost;
    totalUncached += uncached;
    const rate = hitRate(input, cached);
    const prev = out[out.length - 1];
    const fell = prev !== undefined && prev.rate >= DROP_FROM && prev.rate - rate >= DROP_BY;
    const why = [...changed].map((c) => CHANGE_LABEL[c] ?? `${c} changed`);
    out.push({
      turn,
      input,
      cached,
      rate,
      cost,
      uncached,
      totalCost,
      totalUncached,
      changed: [...changed],
      drop: fell ? (why.length ? why.join(", ") : "cache expired or evicted (the prompt's start did not change)") : null,
    });
  }
  return out;
}
