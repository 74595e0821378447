// How the chat pane groups messages.
import type { Message } from "./types";

export interface Exchange {
  /** The turn the user's message (or a notice) started. */
  turn: number;
  /** What the agent was given: the person's message, and notices of ended tasks. */
  user: Message[];
  answers: Message[];
}

const isInput = (m: Message) => m.role === "user" || m.role === "notice";

/** A user's message (or a task's notice) and everything until the next one: a turn is one
 * model call, so an exchange spans the turns from its question to its answer. Notices told
 * with a question, at the same turn, belong to its exchange. */
export function exchangesOf(messages: Message[]): Exchange[] {
  const out: Exchange[] = [];
  for (const m of messages) {
    const last = out[out.length - 1];
    const opens = isInput(m) && (!last || last.answers.length > 0 || last.turn !== m.turn_number);
    if (!last || opens) out.push({ turn: m.turn_number, user: [], answers: [] });
    const x = out[out.length - 1];
    if (isInput(m)) x.user.push(m);
    else x.answers.push(m);
  }
  return out;
}

/** The background task a `spawn_subagent` call started, from its output. */
export function spawnedTask(output: unknown): string | null {
  if (typeof output !== "string") return null;
  try {
    const v = JSON.parse(output) as { task_id?: unknown };
    return typeof v.task_id === "string" ? v.task_id : null;
  } catch {
    return null;
  }
}

/** The exchange (by its first turn) that holds `turn`. */
export function exchangeOf(exchanges: Exchange[], turn: number): number {
  let at = exchanges.length ? exchanges[0].turn : turn;
  for (const x of exchanges) if (x.turn <= turn) at = x.turn;
  return at;
}
