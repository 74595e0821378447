import { describe, expect, it } from "vitest";
import { bar, buildTurns, flatten, fold, hitClass, isEmptyQuery, matchesQuery, offsets, pretty, queryFromParams, queryWords, TraceSet, windowOf } from "./traces";
import type { Trace } from "./types";

let n = 0;
function trace(p: Partial<Trace>): Trace {
  n += 1;
  return {
    id: p.id ?? `t${String(n).padStart(4, "0")}`,
    session_id: "s1",
    chat_id: "c1",
    run_id: null,
    parent_id: null,
    turn_number: 1,
    kind: "tool",
    tool_name: "read_file",
    input: {},
    output: null,
    started_at: "2026-11-22T10:00:00.000000Z",
    finished_at: "2026-11-22T10:00:01.000000Z",
    latency_ms: 1000,
    tokens_used: null,
    input_tokens: null,
    output_tokens: null,
    cache_tokens: null,
    cache_write_tokens: null,
    reasoning_tokens: null,
    cost_usd: null,
    error: null,
    outcome: "ok",
    meta: {},
    ...p,
  };
}

describe("buildTurns", () => {
  it("nests tool calls under the model call that asked for them, in turn order", () => {
    const llm = trace({ id: "llm1", kind: "llm", tool_name: "gpt", input_tokens: 1000, cache_tokens: 800 });
    const toolA = trace({ id: "a", parent_id: "llm1", started_at: "2026-11-22T10:00:02.000000Z", finished_at: "2026-11-22T10:00:03.000000Z" });
    const toolB = trace({ id: "b", parent_id: "llm1", started_at: "2026-11-22T10:00:02.500000Z", finished_at: "2026-11-22T10:00:04.000000Z", outcome: "error", error: "boom" });
    const second = trace({ id: "llm2", kind: "llm", turn_number: 2, started_at: "2026-11-22T10:01:00.000000Z", finished_at: null, outcome: "running" });
    const turns = buildTurns([second, toolB, toolA, llm], Date.parse("2026-11-22T10:01:05Z"));
    expect(turns.map((t) => t.number)).toEqual([1, 2]);
    const [first, running] = turns;
    expect(first.roots.map((r) => r.trace.id)).toEqual(["llm1"]);
    expect(first.roots[0].children.map((c) => c.trace.id)).toEqual(["a", "b"]);
    expect(first.errors).toBe(1);
    expect(first.calls).toBe(3);
    expect(first.end - first.start).toBe(4000);
    expect(first.cached / first.input).toBeCloseTo(0.8);
    // A running call stretches its turn to now.
    expect(running.running).toBe(true);
    expect(running.end - running.start).toBe(5000);
  });

  it("shows a child whose parent is not loaded yet at the top of its turn", () => {
    const orphan = trace({ id: "x", parent_id: "missing" });
    const turns = buildTurns([orphan], 0);
    expect(turns[0].roots.map((r) => r.trace.id)).toEqual(["x"]);
  });

  it("keeps sessions' turns apart", () => {
    const turns = buildTurns([trace({ session_id: "s1" }), trace({ session_id: "s2" })], 0);
    expect(turns).toHaveLength(2);
  });
});

describe("TraceSet", () => {
  it("never lets an older running copy replace a finished trace", () => {
    const set = new TraceSet();
    const done = trace({ id: "t", outcome: "ok" });
    expect(set.upsert(done)).toBe(true);
    expect(set.upsert({ ...done, outcome: "running", finished_at: null })).toBe(false);
    expect(set.get("t")!.outcome).toBe("ok");
    expect(set.upsert({ ...done, outcome: "error" })).toBe(true);
    expect(set.size).toBe(1);
  });
});

describe("bar", () => {
  it("places and sizes a call relative to its turn", () => {
    expect(bar(1000, 2000, 1250, 1750)).toEqual({ left: 25, width: 50 });
    expect(bar(1000, 2000, 1000, 2000)).toEqual({ left: 0, width: 100 });
  });
  it("keeps instant calls visible and never spills past the end", () => {
    expect(bar(0, 1000, 500, 500)).toEqual({ left: 50, width: 0.5 });
    expect(bar(0, 1000, 1000, 1000)).toEqual({ left: 99.5, width: 0.5 });
    expect(bar(0, 1000, 900, 5000)).toEqual({ left: 90, width: 10 });
  });
  it("copes with a zero-length turn and a clock that went backwards", () => {
    const b = bar(1000, 1000, 1000, 1000);
    expect(b.left + b.width).toBeLessThanOrEqual(100);
    expect(bar(1000, 2000, 1500, 1200)).toEqual({ left: 50, width: 0.5 });
  });
});

describe("flatten and virtual window", () => {
  const llm = trace({ id: "p", kind: "llm" });
  const kids = [trace({ id: "k1", parent_id: "p" }), trace({ id: "k2", parent_id: "p" })];
  const turns = buildTurns([llm, ...kids], 0);

  it("opens everything by default and hides what is closed", () => {
    expect(flatten(turns, new Set(), new Set()).map((r) => r.key)).toEqual(["s1:1", "p", "k1", "k2"]);
    expect(flatten(turns, new Set(["p"]), new Set()).map((r) => r.key)).toEqual(["s1:1", "p"]);
    expect(flatten(turns, new Set(["s1:1"]), new Set()).map((r) => r.key)).toEqual(["s1:1"]);
  });

  it("puts a detail row under an expanded trace and accounts for its height", () => {
    const rows = flatten(turns, new Set(), new Set(["k1"]));
    expect(rows.map((r) => r.type)).toEqual(["turn", "trace", "trace", "detail", "trace"]);
    const offs = offsets(rows);
    expect(offs[rows.length]).toBe(28 * 4 + 300);
  });

  it("draws only the rows in view out of ten thousand", () => {
    const many = Array.from({ length: 10_000 }, (_, i) =>
      trace({ id: `m${String(i).padStart(5, "0")}`, turn_number: Math.floor(i / 100) }),
    );
    const rows = flatten(buildTurns(many, 0), new Set(), new Set());
    expect(rows).toHaveLength(10_100);
    const offs = offsets(rows);
    const { first, last } = windowOf(offs, 28 * 5000, 800, 5);
    expect(first).toBe(4995);
    expect(last - first).toBeLessThan(50);
    expect(windowOf(offs, 0, 800, 5).first).toBe(0);
    expect(windowOf(offs, offs[rows.length], 800, 5).last).toBe(rows.length);
  });
});

describe("text", () => {
  it("folds long text and pretty-prints JSON strings", () => {
    expect(fold("x".repeat(10), 4)).toEqual({ shown: "xxxx", hidden: 6 });
    expect(pretty('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(pretty("plain")).toBe("plain");
    expect(pretty(null)).toBe("—");
  });
  it("grades cache hit rates", () => {
    expect(hitClass(0.9)).toBe("good");
    expect(hitClass(0.5)).toBe("fair");
    expect(hitClass(0.1)).toBe("poor");
  });
});

describe("finding calls", () => {
  const call = (over: Partial<Trace>): Trace =>
    ({
      id: "x",
      session_id: "s",
      chat_id: "c",
      run_id: null,
      parent_id: null,
      turn_number: 1,
      kind: "tool",
      tool_name: "read_file",
      input: { path: "src/module_17.rs" },
      output: "first line\nsecondline",
      started_at: "2026-01-01T00:00:00Z",
      finished_at: "2026-01-01T00:00:01Z",
      latency_ms: 250,
      outcome: "ok",
      error: null,
      meta: {},
      ...over,
    }) as Trace;

  it("splits words as the server does and matches their starts", () => {
    expect(queryWords("a'); DROP table_x --")).toEqual(["a", "drop", "table", "x"]);
    expect(matchesQuery({ q: "MODULE 17" }, call({}))).toBe(true);
    expect(matchesQuery({ q: "secondl" }, call({})), "a line break in the JSON text separates words").toBe(true);
    expect(matchesQuery({ q: "nsecondline" }, call({}))).toBe(false);
    expect(matchesQuery({ q: "module nowhere" }, call({}))).toBe(false);
  });

  it("applies kind, tool, status and duration, and reads them from the address", () => {
    const q = queryFromParams(new URLSearchParams("kind=tool&status=failed&slow=200&tool=read_file&q=x"));
    expect(q).toEqual({ kind: "tool", status: "failed", min_ms: 200, tool: "read_file", q: "x" });
    expect(matchesQuery({ status: "failed" }, call({ outcome: "timeout" }))).toBe(true);
    expect(matchesQuery({ status: "failed" }, call({}))).toBe(false);
    expect(matchesQuery({ min_ms: 300 }, call({}))).toBe(false);
    expect(matchesQuery({ kind: "llm" }, call({}))).toBe(false);
    expect(isEmptyQuery(queryFromParams(new URLSearchParams("kind=robot&q=%2A%2A")))).toBe(true);
  });
});
