import { describe, expect, it } from "vitest";
import { itemAt, offsetsOf, shiftAbove, spanOf } from "./windowing";

describe("a windowed list", () => {
  const keys = [1, 2, 3, 4, 5];
  const heights = new Map([
    [2, 300],
    [4, 50],
  ]);

  it("places measured items at their height and the rest at the estimate", () => {
    expect(offsetsOf(keys, heights, 100)).toEqual([0, 100, 400, 500, 550, 650]);
    expect(offsetsOf([], heights, 100)).toEqual([0]);
  });

  it("finds the item at a height, the last one past the end", () => {
    const o = offsetsOf(keys, heights, 100);
    expect([0, 99, 100, 399, 400, 549, 550, 649, 10_000].map((y) => itemAt(o, y))).toEqual([0, 0, 1, 1, 2, 3, 4, 4, 4]);
    expect(itemAt([0], 50)).toBe(0);
  });

  it("draws only what is near the view, with room kept above and below", () => {
    const o = offsetsOf(keys, heights, 100);
    expect(spanOf(o, 420, 100, 0)).toEqual({ start: 2, end: 4, before: 400, after: 100 });
    expect(spanOf(o, 420, 100, 200)).toEqual({ start: 1, end: 5, before: 100, after: 0 });
    expect(spanOf(o, 0, 10_000, 0)).toEqual({ start: 0, end: 5, before: 0, after: 0 });
    expect(spanOf([0], 0, 500, 100)).toEqual({ start: 0, end: 0, before: 0, after: 0 });
  });

  it("keeps the view on its item when items above it turn out taller or shorter", () => {
    const was = new Map([[2, 300]]);
    const now = new Map([
      [1, 180],
      [2, 300],
      [3, 60],
    ]);
    // Item 1 grew by 80 (from the estimate); item 3 is not above the anchor (index 2).
    expect(shiftAbove(keys, 2, was, now, 100)).toBe(80);
    expect(shiftAbove(keys, 3, was, now, 100)).toBe(40);
    expect(shiftAbove(keys, 0, was, now, 100)).toBe(0);
  });

  it("handles 10,000 items at once", () => {
    const many = Array.from({ length: 10_000 }, (_, i) => i);
    const o = offsetsOf(many, new Map(), 120);
    const s = spanOf(o, 600_000, 800, 400);
    expect(s.end - s.start).toBeLessThan(20);
    expect(s.before + (o[s.end] - o[s.start]) + s.after).toBe(1_200_000);
  });
});
