import { describe, expect, it } from "vitest";
import { duration, percent, tokens, usd } from "./format";
import { parse } from "./router";

describe("format", () => {
  it("prints durations, tokens, money and rates", () => {
    expect(duration(12)).toBe("12 ms");
    expect(duration(1500)).toBe("1.50 s");
    expect(duration(75_000)).toBe("1 m 15 s");
    expect(duration(null)).toBe("—");
    expect(tokens(999)).toBe("999");
    expect(tokens(12_345)).toBe("12k");
    expect(tokens(2_500_000)).toBe("2.50M");
    expect(usd(0.00123)).toBe("$0.0012");
    expect(usd(1.5)).toBe("$1.50");
    expect(percent(0.734)).toBe("73%");
  });
});

describe("routes", () => {
  it("reads every address the app links to", () => {
    expect(parse("/")).toEqual({ page: "home" });
    expect(parse("/chats/abc")).toEqual({ page: "chat", id: "abc" });
    expect(parse("/runs/r1")).toEqual({ page: "run", id: "r1" });
    expect(parse("/runs")).toEqual({ page: "runs" });
    expect(parse("/workflows")).toEqual({ page: "workflows", name: null });
    expect(parse("/workflows/deep-research")).toEqual({ page: "workflows", name: "deep-research" });
    expect(parse("/chats/a/b")).toEqual({ page: "missing", path: "/chats/a/b" });
  });
});
