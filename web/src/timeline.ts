// A chat's timeline, read a page of turns at a time (`GET /api/sessions/:id/turns`) and
// kept current by re-reading its tail, so a chat of 100,000 turns costs what is on screen.
import type { TurnSummary } from "./types";

export interface TurnRow extends TurnSummary {
  session: string;
}

/** `rows` with the turns of `session` numbered above `after` replaced by `fetched`; sessions
 * stay in the order they were first read, each one's turns in order. */
export function mergeTurns(rows: TurnRow[], session: string, after: number | null, fetched: TurnSummary[]): TurnRow[] {
  const sessions = [...new Set([...rows.map((r) => r.session), session])];
  const kept = (s: string) =>
    rows.filter((r) => r.session === s && (s !== session || (after !== null && r.turn_number <= after)));
  return sessions.flatMap((s) => (s === session ? [...kept(s), ...fetched.map((t) => ({ ...t, session }))] : kept(s)));
}

/** Where a re-read of the tail starts: after the last turn known finished before the
 * newest one (whose figures may still change). */
export function tailFrom(rows: TurnRow[], session: string): number | null {
  const own = rows.filter((r) => r.session === session);
  if (own.length < 2) return null;
  return own[own.length - 2].turn_number;
}
