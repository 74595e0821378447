// Cursor paging: pages are fetched one at a time, on demand, never twice at once; a page
// that fails can be asked for again.
import type { Page } from "./types";

export class Pager<T> {
  private cursor: string | null = null;
  private inflight: Promise<T[]> | null = null;
  done = false;
  pages = 0;
  error: string | null = null;

  constructor(private fetchPage: (cursor: string | null) => Promise<Page<T>>) {}

  /** The next page's items (empty once the end is reached). */
  next(): Promise<T[]> {
    if (this.done) return Promise.resolve([]);
    if (this.inflight) return this.inflight;
    this.inflight = this.fetchPage(this.cursor)
      .then((page) => {
        this.pages += 1;
        this.error = null;
        this.cursor = page.next_cursor;
        if (!page.next_cursor) this.done = true;
        return page.items;
      })
      .catch((e: unknown) => {
        this.error = e instanceof Error ? e.message : String(e);
        throw e;
      })
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }

  get loading() {
    return this.inflight !== null;
  }
}
