// One WebSocket for the whole app. It remembers the last `seq` of every topic, so after a
// drop it reconnects (with backoff) and asks each topic for what it missed with `since`:
// the server replays exactly those frames, or sends a `reset` snapshot when they are gone.
import type { Frame } from "./types";

export type LinkState = "connecting" | "open" | "offline";

export type FrameHandler = (frame: Frame) => void;

/** What the connection needs from its surroundings; tests pass fakes. */
export interface LiveEnv {
  url: () => string;
  socket: (url: string) => SocketLike;
  setTimeout: (f: () => void, ms: number) => unknown;
  clearTimeout: (t: unknown) => void;
  random: () => number;
}

/** The subset of the browser's WebSocket this uses. */
export interface SocketLike {
  readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

const OPEN = 1;

/** Delay before reconnect attempt `attempt` (0-based): doubling from 250 ms up to 15 s, with jitter
 * so a server restart is not met by every tab at the same instant. */
export function backoff(attempt: number, random: number): number {
  const base = Math.min(15_000, 250 * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.5 + random / 2));
}

/** Seconds between pings; a pong that does not come within PONG_WAIT means the link is dead
 * even if the browser has not noticed (a laptop waking up, a proxy dropping the flow). */
const PING_EVERY = 20_000;
const PONG_WAIT = 10_000;

interface Sub {
  handlers: Set<FrameHandler>;
  /** The last seq applied; null until the first frame (then the server sends a snapshot). */
  seq: number | null;
}

export class Live {
  state: LinkState = "connecting";
  /** Attempts since the last successful open. */
  attempt = 0;
  private socket: SocketLike | null = null;
  private subs = new Map<string, Sub>();
  private retry: unknown = null;
  private pinger: unknown = null;
  private pongTimer: unknown = null;
  private stopped = false;
  private listeners = new Set<(s: LinkState) => void>();

  constructor(private env: LiveEnv) {}

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.env.clearTimeout(this.retry);
    this.clearPing();
    this.socket?.close(1000, "bye");
    this.socket = null;
  }

  onState(f: (s: LinkState) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  /** The last seq seen on a topic (for tests and for the status bar). */
  seq(topic: string): number | null {
    return this.subs.get(topic)?.seq ?? null;
  }

  subscribe(topic: string, handler: FrameHandler): () => void {
    let sub = this.subs.get(topic);
    if (!sub) {
      sub = { handlers: new Set(), seq: null };
      this.subs.set(topic, sub);
      this.send({ type: "subscribe", topic, since: null });
    }
    sub.handlers.add(handler);
    return () => {
      const s = this.subs.get(topic);
      if (!s) return;
      s.handlers.delete(handler);
      if (s.handlers.size === 0) {
        this.subs.delete(topic);
        this.send({ type: "unsubscribe", topic });
      }
    };
  }

  /** Drops the socket as a network failure would (used by the end-to-end test). */
  drop() {
    this.socket?.close(4000, "dropped on purpose");
  }

  private setState(s: LinkState) {
    if (this.state === s) return;
    this.state = s;
    for (const f of this.listeners) f(s);
  }

  private send(msg: unknown) {
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(msg));
  }

  private connect() {
    if (this.stopped) return;
    this.setState(this.attempt === 0 && this.state !== "offline" ? "connecting" : "offline");
    let socket: SocketLike;
    try {
      socket = this.env.socket(this.env.url());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.setState("open");
      for (const [topic, sub] of this.subs) this.send({ type: "subscribe", topic, since: sub.seq });
      this.startPing();
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.receive(String(ev.data));
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearPing();
      this.scheduleRetry();
    };
    socket.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleRetry() {
    if (this.stopped) return;
    this.setState("offline");
    const delay = backoff(this.attempt, this.env.random());
    this.attempt += 1;
    this.env.clearTimeout(this.retry);
    this.retry = this.env.setTimeout(() => this.connect(), delay);
  }

  private startPing() {
    this.clearPing();
    this.pinger = this.env.setTimeout(() => {
      this.send({ type: "ping" });
      this.pongTimer = this.env.setTimeout(() => this.socket?.close(4001, "no pong"), PONG_WAIT);
    }, PING_EVERY);
  }

  private clearPing() {
    this.env.clearTimeout(this.pinger);
    this.env.clearTimeout(this.pongTimer);
  }

  /** Applies one socket message (which may hold several frames, one per line). */
  receive(data: string) {
    for (const line of data.split("\n")) {
      if (!line.trim()) continue;
      let frame: Frame;
      try {
        frame = JSON.parse(line) as Frame;
      } catch {
        continue;
      }
      if (frame.type === "pong") {
        this.startPing();
        continue;
      }
      const topic = frame.topic;
      if (!topic) continue;
      const sub = this.subs.get(topic);
      if (!sub) continue;
      if (frame.seq !== null && frame.type !== "snapshot") {
        // A frame already applied (a replay overlapping what arrived live) is skipped.
        if (sub.seq !== null && frame.seq <= sub.seq) continue;
        sub.seq = frame.seq;
      } else if (frame.type === "snapshot" && frame.seq !== null) {
        sub.seq = frame.seq;
      }
      for (const h of [...sub.handlers]) h(frame);
    }
  }
}

/** The app's connection, built on the browser's WebSocket. */
export function browserLive(token: () => string | null): Live {
  return new Live({
    url: () => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const t = token();
      return `${proto}//${location.host}/ws${t ? `?token=${encodeURIComponent(t)}` : ""}`;
    },
    socket: (url) => new WebSocket(url) as unknown as SocketLike,
    setTimeout: (f, ms) => window.setTimeout(f, ms),
    clearTimeout: (t) => window.clearTimeout(t as number),
    random: Math.random,
  });
}
