import { describe, expect, it } from "vitest";
import { shapeOf, turnSeries } from "./cacheShape";
import type { Trace } from "./types";

function llm(turn: number, input: number, cached: number, changed: string[] = [], at = turn): Trace {
  return {
    id: `t${turn}-${at}`,
    session_id: "s",
    chat_id: "c",
    run_id: null,
    parent_id: null,
    turn_number: turn,
    kind: "llm",
    tool_name: "m",
    input: {},
    output: {},
    started_at: `2026-01-01T00:00:${String(at).padStart(2, "0")}Z`,
    finished_at: `2026-01-01T00:00:${String(at).padStart(2, "0")}Z`,
    latency_ms: 10,
    tokens_used: input + 10,
    input_tokens: input,
    output_tokens: 10,
    cache_tokens: cached,
    cache_write_tokens: 0,
    reasoning_tokens: 0,
    cost_usd: (input - cached) * 1e-6 + cached * 1e-7,
    error: null,
    outcome: "ok",
    meta: {
      uncached_cost_usd: input * 1e-6,
      cache: {
        calibrated: true,
        changed,
        segments: [
          { name: "tools", tokens: 100, cached: Math.min(100, cached), written: 0, fresh: 100 - Math.min(100, cached), images: 0 },
          { name: "new", tokens: input - 100, cached: Math.max(0, cached - 100), written: 0, fresh: input - 100 - Math.max(0, cached - 100), images: 1 },
        ],
      },
    },
  } as unknown as Trace;
}

describe("cache shape", () => {
  it("reads a call's segments and what changed", () => {
    const s = shapeOf(llm(1, 1000, 150, ["tools"]));
    expect(s?.segments.map((x) => [x.name, x.tokens, x.cached, x.fresh])).toEqual([
      ["tools", 100, 100, 0],
      ["new", 900, 50, 850],
    ]);
    expect(s?.changed).toEqual(["tools"]);
    expect(shapeOf({ ...llm(1, 10, 0), meta: {} } as Trace)).toBeNull();
  });

  it("marks a sharp drop with the part of the prompt that changed", () => {
    const series = turnSeries([llm(1, 1000, 0), llm(2, 1000, 900), llm(3, 1000, 850), llm(4, 1000, 100, ["system"]), llm(5, 1000, 800), llm(6, 1000, 0)]);
    expect(series.map((p) => Math.round(p.rate * 100))).toEqual([0, 90, 85, 10, 80, 0]);
    expect(series.map((p) => p.drop)).toEqual([
      null,
      null,
      null,
      "system prompt changed",
      null,
      "cache expired or evicted (the prompt's start did not change)",
    ]);
    // Cumulative cost stays below what the same turns would have cost uncached.
    const last = series[series.length - 1];
    expect(last.totalCost).toBeLessThan(last.totalUncached);
    expect(last.totalUncached).toBeCloseTo(6000e-6);
  });
});
