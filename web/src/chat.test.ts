import { describe, expect, it } from "vitest";
import { exchangeOf, exchangesOf, spawnedTask } from "./chat";
import type { Message } from "./types";

const m = (role: Message["role"], turn: number): Message => ({
  id: `${role}${turn}`,
  chat_id: "c",
  role,
  content: "",
  attachments: [],
  turn_number: turn,
  created_at: "",
  task_id: role === "notice" ? `t${turn}` : null,
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

describe("notices", () => {
  it("open an exchange when they wake the agent, and join a question told with them", () => {
    const xs = exchangesOf([
      m("user", 1),
      m("assistant", 1),
      // Woke the agent: its own exchange.
      m("notice", 2),
      m("assistant", 2),
      // Told with the next question, at its turn.
      m("notice", 3),
      m("user", 3),
      m("assistant", 4),
      // Told mid-answer, at a turn boundary.
      m("user", 5),
      m("notice", 6),
      m("assistant", 6),
    ]);
    expect(xs.map((x) => [x.turn, x.user.map((u) => u.role), x.answers.length])).toEqual([
      [1, ["user"], 1],
      [2, ["notice"], 1],
      [3, ["notice", "user"], 1],
      [5, ["user"], 0],
      [6, ["notice"], 1],
    ]);
  });

  it("a spawn call's output names its task; anything else names none", () => {
    expect(spawnedTask('{"task_id":"abc","status":"queued"}')).toBe("abc");
    expect(spawnedTask("not json")).toBeNull();
    expect(spawnedTask('{"error":"limit"}')).toBeNull();
    expect(spawnedTask({ task_id: "x" })).toBeNull();
  });
});
