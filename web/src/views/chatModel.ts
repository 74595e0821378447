// One chat as the page shows it: messages, the answer streaming in, the session, its
// timeline and its traces, loaded over REST and kept current by `chat:<id>` frames.
import { signal } from "@preact/signals";
import { api, ApiError } from "../api";
import { debounce, live } from "../app";
import type { Chat, Frame, Message, SessionSummary, SessionView, Trace } from "../types";
import { TraceModel } from "./traceModel";

export interface Streaming {
  session: string;
  turn: number;
  text: string;
}

export class ChatModel {
  chat = signal<Chat | null>(null);
  messages = signal<Message[]>([]);
  session = signal<SessionSummary | null>(null);
  sessions = signal<SessionView[]>([]);
  streaming = signal<Streaming | null>(null);
  error = signal<string | null>(null);
  notFound = signal(false);
  traces: TraceModel;
  private off: (() => void) | null = null;
  private refreshTimeline = debounce(() => void this.loadSessions(), 300, 1500);

  constructor(readonly id: string) {
    this.traces = new TraceModel((cursor) => api.chatTraces(id, cursor));
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
      const [chat, messages] = await Promise.all([api.chat(this.id), api.messages(this.id)]);
      this.chat.value = chat;
      this.mergeMessages(messages.items);
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
      const latest = page.items[page.items.length - 1];
      const cur = this.session.value;
      // A REST answer may be older than the last `session_state` frame: never step back.
      if (latest && (!cur || (cur.id === latest.id && (cur.updated_at ?? "") <= (latest.updated_at ?? ""))))
        this.session.value = latest;
    } catch {
      /* the timeline retries on the next frame */
    }
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
        const state = f.state as { chat?: Chat; session?: SessionSummary | null } | undefined;
        if (state?.chat) this.chat.value = state.chat;
        if (state?.session) this.session.value = state.session;
        // A reset means frames were missed and are gone: forget what was shown.
        if (f.reset) this.messages.value = [];
        const loaded = this.traces.pagesRead() > 0;
        this.snapshots += 1;
        void this.load(loaded || Boolean(f.reset));
        break;
      }
      case "message": {
        const m = f.message as Message;
        this.mergeMessages([m]);
        if (m.role === "assistant") this.streaming.value = null;
        break;
      }
      case "message_delta": {
        const d = f as unknown as { session_id: string; turn_number: number; text: string; restart?: unknown };
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
        const s = f.session as SessionSummary;
        this.session.value = s;
        if (s.status !== "running") this.streaming.value = null;
        this.refreshTimeline();
        break;
      }
      case "tool_trace": {
        this.traces.apply(f.trace as Trace);
        if (f.phase === "finish") this.refreshTimeline();
        break;
      }
      case "error":
        if (f.code !== "cancelled") this.error.value = String(f.message ?? "the agent failed");
        break;
    }
  }

  async send(content: string): Promise<boolean> {
    this.error.value = null;
    try {
      await api.post(this.id, content);
      return true;
    } catch (e) {
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
