// The trace tree: traces grouped into turns, each model call followed by the tool calls it
// asked for, flattened into the rows a virtualised list draws.
import type { Trace } from "./types";

export const ms = (iso: string | null | undefined): number | null => (iso ? Date.parse(iso) : null);

/** Keeps the newest knowledge of each trace: a finished trace is never replaced by an older
 * "running" copy (a page fetched before its `finish` frame arrived). */
export class TraceSet {
  private byId = new Map<string, Trace>();
  version = 0;

  get size() {
    return this.byId.size;
  }

  get(id: string) {
    return this.byId.get(id);
  }

  upsert(t: Trace): boolean {
    const old = this.byId.get(t.id);
    if (old && old.outcome !== "running" && t.outcome === "running") return false;
    this.byId.set(t.id, t);
    this.version += 1;
    return true;
  }

  all(): Trace[] {
    return [...this.byId.values()];
  }
}

export interface TraceNode {
  trace: Trace;
  children: TraceNode[];
}

export interface Turn {
  key: string;
  session: string | null;
  number: number;
  start: number;
  /** The last finish, or `now` while something runs. */
  end: number;
  running: boolean;
  errors: number;
  calls: number;
  input: number;
  cached: number;
  cost: number;
  roots: TraceNode[];
}

const order = (a: Trace, b: Trace) =>
  a.turn_number - b.turn_number ||
  a.started_at.localeCompare(b.started_at) ||
  a.id.localeCompare(b.id);

/** Groups traces into turns (per session, in turn order) and nests each tool call under the
 * model call that asked for it. A child whose parent is not loaded yet shows at the top. */
export function buildTurns(traces: Trace[], now: number): Turn[] {
  const sorted = [...traces].sort(order);
  const turns = new Map<string, Turn>();
  const nodes = new Map<string, TraceNode>();
  for (const t of sorted) nodes.set(t.id, { trace: t, children: [] });
  for (const t of sorted) {
    const key = `${t.session_id ?? "-"}:${t.turn_number}`;
    let turn = turns.get(key);
    const start = ms(t.started_at)!;
    const end = t.outcome === "running" ? Math.max(now, start) : (ms(t.finished_at) ?? start);
    if (!turn) {
      turn = {
        key,
        session: t.session_id,
        number: t.turn_number,
        start,
        end,
        running: false,
        errors: 0,
        calls: 0,
        input: 0,
        cached: 0,
        cost: 0,
        roots: [],
      };
      turns.set(key, turn);
    }
    turn.start = Math.min(turn.start, start);
    turn.end = Math.max(turn.end, end);
    turn.calls += 1;
    if (t.outcome === "running") turn.running = true;
    if (t.outcome === "error" || t.outcome === "timeout") turn.errors += 1;
    if (t.kind === "llm") {
      turn.input += t.input_tokens ?? 0;
      turn.cached += t.cache_tokens ?? 0;
    }
    turn.cost += t.cost_usd ?? 0;
    const node = nodes.get(t.id)!;
    const parent = t.parent_id ? nodes.get(t.parent_id) : undefined;
    if (parent) parent.children.push(node);
    else turn.roots.push(node);
  }
  return [...turns.values()].sort((a, b) => a.start - b.start || a.number - b.number);
}

/** Cached input ÷ input, 0 when there was no input. */
export const hitRate = (input: number, cached: number) => (input > 0 ? cached / input : 0);

/** Green at 70 % and above, yellow from 40 %, red below. */
export function hitClass(rate: number): "good" | "fair" | "poor" {
  return rate >= 0.7 ? "good" : rate >= 0.4 ? "fair" : "poor";
}

/** Where a call's bar sits within its turn, in percent of the turn's width. A bar is never
 * thinner than `min` so an instant call stays visible, and never spills past the end. */
export function bar(turnStart: number, turnEnd: number, start: number, end: number, min = 0.5) {
  const span = Math.max(1, turnEnd - turnStart);
  const left = Math.min(100, Math.max(0, ((start - turnStart) / span) * 100));
  let width = Math.max(min, ((Math.max(end, start) - start) / span) * 100);
  width = Math.min(width, 100 - left);
  if (width < min) {
    return { left: Math.max(0, 100 - min), width: min };
  }
  return { left, width };
}

export type Row =
  | { type: "turn"; key: string; depth: 0; turn: Turn; open: boolean }
  | { type: "trace"; key: string; depth: number; turn: Turn; node: TraceNode; open: boolean; hasChildren: boolean }
  | { type: "detail"; key: string; depth: number; turn: Turn; node: TraceNode };

/** Row heights in pixels: a list of fixed heights per kind keeps virtualisation exact. */
export const ROW_HEIGHT = 28;
export const DETAIL_HEIGHT = 300;
export const heightOf = (r: Row) => (r.type === "detail" ? DETAIL_HEIGHT : ROW_HEIGHT);

/** The visible rows: turns and nodes are open unless `closed` names them; a trace's input and
 * output show below it when `details` names it. */
export function flatten(turns: Turn[], closed: Set<string>, details: Set<string>): Row[] {
  const rows: Row[] = [];
  const walk = (turn: Turn, n: TraceNode, depth: number) => {
    const open = !closed.has(n.trace.id);
    rows.push({ type: "trace", key: n.trace.id, depth, turn, node: n, open, hasChildren: n.children.length > 0 });
    if (details.has(n.trace.id)) rows.push({ type: "detail", key: `${n.trace.id}:detail`, depth, turn, node: n });
    if (open) for (const c of n.children) walk(turn, c, depth + 1);
  };
  for (const turn of turns) {
    const open = !closed.has(turn.key);
    rows.push({ type: "turn", key: turn.key, depth: 0, turn, open });
    if (open) for (const n of turn.roots) walk(turn, n, 1);
  }
  return rows;
}

/** Prefix sums of row heights: offsets[i] is where row i starts; the last is the total. */
export function offsets(rows: Row[]): Float64Array {
  const out = new Float64Array(rows.length + 1);
  for (let i = 0; i < rows.length; i++) out[i + 1] = out[i] + heightOf(rows[i]);
  return out;
}

/** The rows to draw for a viewport, with `overscan` extra on each side. */
export function windowOf(offs: Float64Array, scrollTop: number, height: number, overscan = 8) {
  const n = offs.length - 1;
  const find = (y: number) => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (offs[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const first = Math.max(0, find(scrollTop) - overscan);
  const last = Math.min(n, find(scrollTop + height) + 1 + overscan);
  return { first, last };
}

/** Long text is folded: the first `keep` characters and a count of the rest. */
export function fold(text: string, keep = 4000): { shown: string; hidden: number } {
  return text.length <= keep ? { shown: text, hidden: 0 } : { shown: text.slice(0, keep), hidden: text.length - keep };
}

/** A value as readable text: strings as they are, anything else as indented JSON. */
export function pretty(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "string") {
    const s = v.trim();
    if ((s.startsWith("{") && s.endsWith("}")) || (s.startsWith("[") && s.endsWith("]"))) {
      try {
        return JSON.stringify(JSON.parse(s), null, 2);
      } catch {
        return v;
      }
    }
    return v;
  }
  return JSON.stringify(v, null, 2);
}

/** What the Traces pane's finder asks the server for (`GET …/traces?kind=&tool=&status=&min_ms=&q=`). */
export interface TraceQuery {
  kind?: "llm" | "tool";
  tool?: string;
  status?: "failed" | "running";
  min_ms?: number;
  q?: string;
}

export const isEmptyQuery = (f: TraceQuery) =>
  !f.kind && !f.tool && !f.status && f.min_ms === undefined && !(f.q && queryWords(f.q).length);

/** A search's words as the server splits them: runs of letters and digits, lower-cased. */
export function queryWords(q: string): string[] {
  return q
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean)
    .map((w) => w.slice(0, 64).toLowerCase())
    .slice(0, 8);
}

/** Whether a trace arriving live belongs in a search's results (the server decides for
 * what it sends; this keeps the results current). */
export function matchesQuery(f: TraceQuery, t: Trace): boolean {
  if (f.kind && t.kind !== f.kind) return false;
  if (f.tool && t.tool_name !== f.tool) return false;
  if (f.status === "failed" && t.outcome !== "error" && t.outcome !== "timeout") return false;
  if (f.status === "running" && t.outcome !== "running") return false;
  if (f.min_ms !== undefined && (t.latency_ms ?? -1) < f.min_ms) return false;
  const words = f.q ? queryWords(f.q) : [];
  if (words.length) {
    // The text the server indexes, its JSON line and tab escapes read as spaces as it does.
    const text = `${t.tool_name} ${JSON.stringify(t.input)} ${JSON.stringify(t.output ?? "")} ${t.error ?? ""}`.replace(
      /\\[nrt]/g,
      " ",
    );
    const have = text.split(/[^\p{L}\p{N}]+/u).map((w) => w.toLowerCase());
    if (!words.every((w) => have.some((x) => x.startsWith(w)))) return false;
  }
  return true;
}

/** The finder's query from the page's address, so a refresh keeps it. */
export function queryFromParams(p: URLSearchParams): TraceQuery {
  const kind = p.get("kind");
  const status = p.get("status");
  const ms = Number(p.get("slow") ?? "");
  return {
    kind: kind === "llm" || kind === "tool" ? kind : undefined,
    tool: p.get("tool") || undefined,
    status: status === "failed" || status === "running" ? status : undefined,
    min_ms: p.get("slow") && Number.isFinite(ms) && ms >= 0 ? Math.floor(ms) : undefined,
    q: p.get("q") || undefined,
  };
}
