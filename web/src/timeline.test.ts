import { describe, expect, it } from "vitest";
import { mergeTurns, tailFrom, type TurnRow } from "./timeline";
import type { TurnSummary } from "./types";

const turn = (n: number, input = 10): TurnSummary => ({
  turn_number: n,
  started_at: "2026-01-01T00:00:00Z",
  finished_at: null,
  tool_count: 0,
  input_tokens: input,
  output_tokens: 1,
  cache_tokens: 0,
  cache_hit_rate: 0,
  cost_usd: 0,
});

const numbers = (rows: TurnRow[]) => rows.map((r) => `${r.session}:${r.turn_number}`);

describe("a paged timeline", () => {
  it("appends pages and replaces its tail when re-read", () => {
    let rows = mergeTurns([], "a", null, [turn(1), turn(2)]);
    rows = mergeTurns(rows, "a", 2, [turn(3, 5)]);
    expect(numbers(rows)).toEqual(["a:1", "a:2", "a:3"]);
    expect(tailFrom(rows, "a")).toBe(2);
    // The newest turn finished with other figures, and one more began.
    rows = mergeTurns(rows, "a", tailFrom(rows, "a"), [turn(3, 50), turn(4)]);
    expect(numbers(rows)).toEqual(["a:1", "a:2", "a:3", "a:4"]);
    expect(rows[2].input_tokens).toBe(50);
  });

  it("keeps sessions in the order they were read", () => {
    let rows = mergeTurns([], "a", null, [turn(1), turn(2)]);
    rows = mergeTurns(rows, "b", null, [turn(1)]);
    rows = mergeTurns(rows, "a", 1, [turn(2), turn(3)]);
    expect(numbers(rows)).toEqual(["a:1", "a:2", "a:3", "b:1"]);
    expect(tailFrom(rows, "b")).toBeNull();
  });
});
