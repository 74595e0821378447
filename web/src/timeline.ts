// A chat's timeline, read a page of turns at a time (`GET /api/sessions/:id/turns`) and
// kept current by re-reading its tail, so a chat of 100,000 turns costs what is on screen.
import type { TurnSummary } from "./types";

export interface TurnRow extends TurnSummary {
  session: string;
}

/** `rows` with the turns of `session` numbered above `after` replaced by `fetched`. */
export function mergeTurns(rows: TurnRow[], session: string, after: number | null, fetched: TurnSummary[]): TurnRow[] {
  const kept = rows.filter((r) => r.session !== session || (after !== null && r.turn_number <= after));
  const added = fetched.map((t) => ({ ...t, session }));
  // Sessions stay in the order they were read; within one, turns in order.
  const at = kept.findIndex((r, i) => r.session === session && kept[i + 1]?.session !== session);
  if (at === -1) {
    const firstOther = rows.findIndex((r) => r.session === session);
    if (firstOther === -1) return [...kept, ...added];
    const before = rows.slice(0, firstOther).filter((r) => r.session !== session);
    return [...before, ...added, ...kept.slice(before.length)];
  }
  return [...kept.slice(0, at + 1), ...added, ...kept.slice(at + 1)];
}

/** Where a re-read of the tail starts: after the last turn known finished before the
 * newest one (whose figures may still change). */
export function tailFrom(rows: TurnRow[], session: string): number | null {
  const own = rows.filter((r) => r.session === session);
  if (own.length < 2) return null;
  return own[own.length - 2].turn_number;
}
