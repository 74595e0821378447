// How the chat pane groups messages.
import type { Message } from "./types";

export interface Exchange {
  /** The turn the user's message started. */
  turn: number;
  user: Message[];
  answers: Message[];
}

/** A user's message and everything until the next one: a turn is one model call, so an
 * exchange spans the turns from its question to its answer. */
export function exchangesOf(messages: Message[]): Exchange[] {
  const out: Exchange[] = [];
  for (const m of messages) {
    if (m.role === "user" || out.length === 0) out.push({ turn: m.turn_number, user: [], answers: [] });
    const x = out[out.length - 1];
    if (m.role === "user") x.user.push(m);
    else x.answers.push(m);
  }
  return out;
}

/** The exchange (by its first turn) that holds `turn`. */
export function exchangeOf(exchanges: Exchange[], turn: number): number {
  let at = exchanges.length ? exchanges[0].turn : turn;
  for (const x of exchanges) if (x.turn <= turn) at = x.turn;
  return at;
}
