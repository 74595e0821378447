import { describe, expect, it } from "vitest";
import { exchangeOf, exchangesOf } from "./chat";
import type { Message } from "./types";

const m = (role: Message["role"], turn: number): Message => ({
  id: `${role}${turn}`,
  chat_id: "c",
  role,
  content: "",
  attachments: [],
  turn_number: turn,
  created_at: "",
});

describe("exchanges", () => {
  it("span from a question's turn to its answer's, with tool turns in between", () => {
    // Question at turn 1, two tool turns, answer at turn 3; next question at turn 4.
    const xs = exchangesOf([m("user", 1), m("assistant", 3), m("user", 4), m("assistant", 4)]);
    expect(xs.map((x) => [x.turn, x.user.length, x.answers.length])).toEqual([
      [1, 1, 1],
      [4, 1, 1],
    ]);
    expect(exchangeOf(xs, 2)).toBe(1);
    expect(exchangeOf(xs, 3)).toBe(1);
    expect(exchangeOf(xs, 4)).toBe(4);
    expect(exchangeOf(xs, 9)).toBe(4);
    expect(exchangeOf([], 7)).toBe(7);
  });
});
