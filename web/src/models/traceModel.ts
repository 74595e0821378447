// The traces of one chat or one agent session: pages fetched on demand, live frames merged.
import { signal } from "@preact/signals";
import { perFrame } from "../app";
import { Pager } from "../paging";
import { TraceSet } from "../traces";
import type { Page, Trace } from "../types";

export class TraceModel {
  set = new TraceSet();
  /** Bumped (at most once per frame) whenever the set changes. */
  version = signal(0);
  loading = signal(false);
  done = signal(false);
  error = signal<string | null>(null);
  private pager: Pager<Trace>;
  private bump = perFrame(() => (this.version.value = this.set.version));

  constructor(private fetchPage: (cursor: string | null) => Promise<Page<Trace>>) {
    this.pager = new Pager(fetchPage);
  }

  /** Forgets everything and starts paging from the beginning (after a `reset` snapshot). */
  reset() {
    this.set = new TraceSet();
    this.pager = new Pager(this.fetchPage);
    this.done.value = false;
    this.version.value = -1;
    return this.more();
  }

  async more(): Promise<void> {
    if (this.pager.done) return;
    this.loading.value = true;
    try {
      const items = await this.pager.next();
      for (const t of items) this.set.upsert(t);
      this.error.value = null;
      this.bump();
    } catch (e) {
      this.error.value = e instanceof Error ? e.message : String(e);
    } finally {
      this.loading.value = this.pager.loading;
      this.done.value = this.pager.done;
    }
  }

  /** Pages fetched so far (0 before the first one arrives or is asked for). */
  pagesRead(): number {
    return this.pager.pages + (this.pager.loading ? 1 : 0);
  }

  apply(trace: Trace) {
    if (this.set.upsert(trace)) this.bump();
  }
}
