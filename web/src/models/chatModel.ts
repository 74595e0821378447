// One chat as the page shows it: messages, the answer streaming in, the session, its
// timeline and its traces, loaded over REST and kept current by `chat:<id>` frames.
import { signal, type Signal } from "@preact/signals";
import { api, ApiError } from "../api";
import { debounce, live } from "../app";
import type { Chat, Frame, Message, SessionView } from "../types";
import { TraceModel } from "./traceModel";
import { TimelineModel } from "./timelineModel";
import { isEmptyQuery, matchesQuery, type TraceQuery } from "../traces";
import { added, pick, readyIds, removed, uploaded, uploadError, type Draft } from "../attachments";

/** Messages read at a time: the newest when a chat opens, older ones as it scrolls up. */
const MESSAGE_PAGE = 100;

export interface Streaming {
  session: string;
  turn: number;
  text: string;
}

export class ChatModel {
  chat = signal<Chat | null>(null);
  messages = signal<Message[]>([]);
  session = signal<SessionView | null>(null);
  sessions = signal<SessionView[]>([]);
  streaming = signal<Streaming | null>(null);
  error = signal<string | null>(null);
  notFound = signal(false);
  /** Images attached to the next message, and why the last one could not be. */
  drafts: Signal<Draft[]>;
  attachError = signal<string | null>(null);
  traces: TraceModel;
  timeline = new TimelineModel();
  /** The Traces pane's search, and its results (null when nothing is asked). */
  finding = signal<TraceQuery>({});
  found = signal<TraceModel | null>(null);
  private off: (() => void) | null = null;
  private refreshTimeline = debounce(() => void this.loadSessions(), 300, 1500);

  constructor(readonly id: string) {
    this.traces = new TraceModel((cursor) => api.chatTraces(id, cursor));
    this.drafts = signal(this.savedDrafts());
  }

  private get draftKey() {
    return `baton.draft.${this.id}.images`;
  }

  /** Uploaded images survive a reload with the draft's text. */
  private savedDrafts(): Draft[] {
    try {
      const v = JSON.parse(sessionStorage.getItem(this.draftKey) ?? "[]") as Draft[];
      return Array.isArray(v) ? v.filter((d) => d.state === "ready" && typeof d.id === "string") : [];
    } catch {
      return [];
    }
  }

  private setDrafts(list: Draft[]) {
    this.drafts.value = list;
    const ready = list.filter((d) => d.state === "ready");
    if (ready.length) sessionStorage.setItem(this.draftKey, JSON.stringify(ready));
    else sessionStorage.removeItem(this.draftKey);
  }

  private uploads = 0;

  /** Uploads dropped, pasted or picked files; what is refused is said at the composer. */
  async attach(files: ArrayLike<File>) {
    const { images, rejected } = pick(files);
    this.attachError.value = rejected.length ? `${rejected.join(", ")}: not an image; attach PNG, JPEG, GIF or WebP` : null;
    await Promise.all(
      images.map(async (f) => {
        const key = `upload-${++this.uploads}`;
        const name = f.name || "pasted image";
        this.setDrafts(added(this.drafts.value, key, name));
        try {
          const a = await api.upload(f, name);
          this.setDrafts(uploaded(this.drafts.value, key, a.id));
        } catch (e) {
          this.setDrafts(removed(this.drafts.value, key));
          this.attachError.value =
            e instanceof ApiError ? uploadError(name, e.code, e.message) : `${name}: ${String(e)}`;
        }
      }),
    );
  }

  /** Asks the server for the traces `query` matches; an empty query shows them all. */
  find(query: TraceQuery) {
    this.finding.value = query;
    if (isEmptyQuery(query)) {
      this.found.value = null;
      return;
    }
    const model = new TraceModel((cursor) => api.chatTraces(this.id, cursor, 500, query));
    this.found.value = model;
    void model.more();
  }

  detach(key: string) {
    this.setDrafts(removed(this.drafts.value, key));
  }

  private snapshots = 0;
  private fallback: ReturnType<typeof setTimeout> | undefined;

  start() {
    // The snapshot marks a seq: frames after it arrive live, but what it covers (messages,
    // traces) must be read after it, or a frame sent in between is lost. So the REST read
    // follows each snapshot; only if none comes soon (offline) is the page read without.
    this.off = live.subscribe(`chat:${this.id}`, (f) => this.onFrame(f));
    this.fallback = setTimeout(() => {
      if (this.snapshots === 0) void this.load(false);
    }, 1500);
  }

  stop() {
    clearTimeout(this.fallback);
    this.off?.();
  }

  /** Reads messages, sessions and the first page of traces; `again` drops traces paged so
   * far and starts over (after a snapshot that follows an earlier read). */
  async load(again: boolean) {
    try {
      const [chat, messages] = await Promise.all([api.chat(this.id), api.messagesPage(this.id, MESSAGE_PAGE)]);
      this.chat.value = chat;
      this.mergeMessages(messages.items);
      // Older pages come as the list is scrolled up; a later read of the newest page
      // keeps what was paged in and where paging stands.
      if (!this.pagedOlder) this.older.value = messages.next_cursor;
      await Promise.all([this.loadSessions(), again ? this.traces.reset() : this.traces.more()]);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) this.notFound.value = true;
      else this.error.value = e instanceof Error ? e.message : String(e);
    }
  }

  async loadSessions() {
    try {
      const page = await api.sessions(this.id);
      this.sessions.value = page.items;
      this.timeline.setSessions(page.items.map((s) => s.id));
      void this.timeline.refresh().catch(() => {});
      const latest = page.items[page.items.length - 1];
      const cur = this.session.value;
      // A REST answer may be older than the last `session_state` frame: never step back.
      if (latest && (!cur || (cur.id === latest.id && (cur.updated_at ?? "") <= (latest.updated_at ?? ""))))
        this.session.value = latest;
    } catch {
      /* the timeline retries on the next frame */
    }
  }

  /** The exchange the message list is to scroll to (a Timeline click); the list clears it. */
  jump = signal<number | null>(null);

  /** The `before` cursor of the next older page of messages; null when all are here. */
  older = signal<string | null>(null);
  private pagedOlder = false;
  private olderBusy: Promise<void> | null = null;

  /** Reads the page of messages before the oldest one here. */
  loadOlder(limit = MESSAGE_PAGE): Promise<void> {
    const before = this.older.value;
    if (!before) return Promise.resolve();
    if (this.olderBusy) return this.olderBusy;
    this.olderBusy = (async () => {
      try {
        const page = await api.messagesPage(this.id, limit, before);
        this.pagedOlder = true;
        this.mergeMessages(page.items);
        this.older.value = page.next_cursor;
      } catch (e) {
        this.error.value = e instanceof Error ? e.message : String(e);
      } finally {
        this.olderBusy = null;
      }
    })();
    return this.olderBusy;
  }

  private mergeMessages(items: Message[]) {
    const byId = new Map(this.messages.value.map((m) => [m.id, m]));
    for (const m of items) byId.set(m.id, m);
    this.messages.value = [...byId.values()].sort(
      (a, b) => a.turn_number - b.turn_number || a.created_at.localeCompare(b.created_at),
    );
  }

  onFrame(f: Frame) {
    switch (f.type) {
      case "snapshot": {
        const state = f.state;
        if ("chat" in state) {
          this.chat.value = state.chat;
          if (state.session) this.session.value = state.session;
        }
        // A reset means frames were missed and are gone: forget what was shown.
        if (f.reset) this.messages.value = [];
        const loaded = this.traces.pagesRead() > 0;
        this.snapshots += 1;
        void this.load(loaded || Boolean(f.reset));
        break;
      }
      case "message": {
        const m = f.message;
        this.mergeMessages([m]);
        if (m.role === "assistant") this.streaming.value = null;
        break;
      }
      case "message_delta": {
        const d = f;
        const cur = this.streaming.value;
        const same = cur && cur.session === d.session_id && cur.turn === d.turn_number && !d.restart;
        this.streaming.value = {
          session: d.session_id,
          turn: d.turn_number,
          text: (same ? cur.text : "") + d.text,
        };
        break;
      }
      case "session_state": {
        const s = f.session;
        this.session.value = s;
        if (s.status !== "running") this.streaming.value = null;
        this.refreshTimeline();
        break;
      }
      case "tool_trace": {
        this.traces.apply(f.trace);
        // A search's results follow the calls it shows, and take in new ones that match.
        const found = this.found.value;
        const t = f.trace;
        if (found && (found.set.get(t.id) || matchesQuery(this.finding.value, t))) found.apply(t);
        if (f.phase === "finish") this.refreshTimeline();
        break;
      }
      case "error":
        if (f.code !== "cancelled") this.error.value = String(f.message ?? "the agent failed");
        break;
    }
  }

  /** Sends the question with the images attached to it; on a refusal both stay. */
  async send(content: string): Promise<boolean> {
    this.error.value = null;
    this.attachError.value = null;
    try {
      await api.post(this.id, content, readyIds(this.drafts.value));
      this.setDrafts([]);
      return true;
    } catch (e) {
      if (e instanceof ApiError && (e.code === "text_only_model" || e.code === "invalid_attachment")) {
        this.attachError.value = e.message;
        return false;
      }
      this.error.value =
        e instanceof ApiError && e.status === 409
          ? "The agent is still answering; wait for it or stop it first."
          : e instanceof Error
            ? e.message
            : String(e);
      return false;
    }
  }

  async setAutoContinue(on: boolean) {
    this.error.value = null;
    const before = this.chat.value;
    // Shown at once (the switch must not flip back while the request is out), put back
    // if the server refuses it.
    if (before) this.chat.value = { ...before, auto_continue: on };
    try {
      this.chat.value = await api.updateChat(this.id, { auto_continue: on });
    } catch (e) {
      this.chat.value = before;
      this.error.value = e instanceof Error ? e.message : String(e);
    }
  }

  async cancel() {
    const s = this.session.value;
    if (!s) return;
    try {
      await api.cancelSession(s.id);
    } catch (e) {
      this.error.value = e instanceof Error ? e.message : String(e);
    }
  }
}
