// The Timeline tab's turns: sessions oldest first, each read a page at a time as the list
// scrolls, the newest turns re-read when frames say they changed.
import { signal } from "@preact/signals";
import { api } from "../api";
import { mergeTurns, tailFrom, type TurnRow } from "../timeline";

const PAGE = 200;

export class TimelineModel {
  rows = signal<TurnRow[]>([]);
  /** Every turn of every session known so far is loaded. */
  complete = signal(false);
  private sessions: string[] = [];
  /** The session being read and where its next page starts. */
  private at = 0;
  private cursor: string | null = null;
  private busy: Promise<void> | null = null;

  /** The chat's sessions, oldest first (more may start later). */
  setSessions(ids: string[]) {
    const grew = ids.length > this.sessions.length;
    this.sessions = ids;
    if (grew) this.complete.value = false;
  }

  /** Reads the next page, if any; one read at a time. */
  more(): Promise<void> {
    if (this.busy) return this.busy;
    if (this.complete.value || this.at >= this.sessions.length) return Promise.resolve();
    this.busy = (async () => {
      try {
        const session = this.sessions[this.at];
        const after = this.cursor === null ? null : Number(this.cursor);
        const page = await api.turns(session, this.cursor, PAGE);
        this.rows.value = mergeTurns(this.rows.value, session, after, page.items);
        if (page.next_cursor) this.cursor = page.next_cursor;
        else if (this.at + 1 < this.sessions.length) {
          this.at += 1;
          this.cursor = null;
        } else {
          // The last session's end: later turns arrive through `refresh`.
          this.cursor = page.items.length ? String(page.items[page.items.length - 1].turn_number) : this.cursor;
          this.complete.value = true;
        }
      } finally {
        this.busy = null;
      }
    })();
    return this.busy;
  }

  /** Re-reads the newest turns of the session being answered (their figures change
   * while it runs), once the list has reached it. */
  async refresh() {
    const session = this.sessions[this.sessions.length - 1];
    if (!session || !this.complete.value || this.busy) {
      if (this.rows.value.length === 0) await this.more();
      return;
    }
    const from = tailFrom(this.rows.value, session);
    const page = await api.turns(session, from === null ? null : String(from), PAGE);
    this.rows.value = mergeTurns(this.rows.value, session, from, page.items);
    const last = page.items[page.items.length - 1];
    if (last) this.cursor = String(last.turn_number);
    if (page.next_cursor) this.complete.value = false;
  }
}
