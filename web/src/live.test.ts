import { describe, expect, it } from "vitest";
import { backoff, Live, type SocketLike } from "./live";
import type { Frame } from "./types";

class FakeSocket implements SocketLike {
  readyState = 0;
  sent: unknown[] = [];
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
    this.onclose?.({});
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  frame(f: Partial<Frame>) {
    this.onmessage?.({ data: JSON.stringify({ at: "", ...f }) });
  }
}

function harness() {
  const sockets: FakeSocket[] = [];
  const timers: { f: () => void; ms: number; id: number }[] = [];
  let nextId = 1;
  const live = new Live({
    url: () => "ws://x/ws",
    socket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    setTimeout: (f, ms) => {
      const id = nextId++;
      timers.push({ f, ms, id });
      return id;
    },
    clearTimeout: (id) => {
      const i = timers.findIndex((t) => t.id === id);
      if (i >= 0) timers.splice(i, 1);
    },
    random: () => 1,
  });
  const fire = (pred: (ms: number) => boolean) => {
    const i = timers.findIndex((t) => pred(t.ms));
    expect(i).toBeGreaterThanOrEqual(0);
    const [t] = timers.splice(i, 1);
    t.f();
    return t.ms;
  };
  return { live, sockets, timers, fire };
}

describe("backoff", () => {
  it("doubles from 250 ms up to 15 s with jitter between half and full", () => {
    expect(backoff(0, 1)).toBe(250);
    expect(backoff(1, 1)).toBe(500);
    expect(backoff(3, 0)).toBe(1000);
    expect(backoff(20, 1)).toBe(15000);
    expect(backoff(100, 0.5)).toBe(11250);
  });
});

describe("Live", () => {
  it("subscribes with since: null, then resumes each topic from its last seq after a drop", () => {
    const { live, sockets, fire } = harness();
    const got: Frame[] = [];
    live.start();
    live.subscribe("chat:a", (f) => got.push(f));
    expect(sockets[0].sent).toEqual([]); // not open yet: sent on open
    sockets[0].open();
    expect(live.state).toBe("open");
    expect(sockets[0].sent).toEqual([{ type: "subscribe", topic: "chat:a", since: null }]);
    sockets[0].frame({ type: "snapshot", topic: "chat:a", seq: 4 });
    sockets[0].frame({ type: "message", topic: "chat:a", seq: 5 });
    sockets[0].frame({ type: "message", topic: "chat:a", seq: 6 });
    expect(live.seq("chat:a")).toBe(6);

    sockets[0].close();
    expect(live.state).toBe("offline");
    expect(fire((ms) => ms === 250)).toBe(250);
    sockets[1].close(); // the server is still down
    expect(fire((ms) => ms === 500)).toBe(500);
    sockets[2].open();
    expect(live.state).toBe("open");
    expect(sockets[2].sent).toEqual([{ type: "subscribe", topic: "chat:a", since: 6 }]);
    // The replay overlaps what was already applied: duplicates are skipped.
    sockets[2].frame({ type: "message", topic: "chat:a", seq: 6 });
    sockets[2].frame({ type: "message", topic: "chat:a", seq: 7 });
    expect(got.map((f) => f.seq)).toEqual([4, 5, 6, 7]);
  });

  it("starts the backoff over after a successful reconnect", () => {
    const { live, sockets, fire } = harness();
    live.start();
    sockets[0].open();
    sockets[0].close();
    fire((ms) => ms === 250);
    sockets[1].open();
    sockets[1].close();
    expect(fire((ms) => ms < 20_000)).toBe(250);
  });

  it("treats a missing pong as a dead link", () => {
    const { live, sockets, fire } = harness();
    live.start();
    sockets[0].open();
    fire((ms) => ms === 20_000);
    expect(sockets[0].sent).toContainEqual({ type: "ping" });
    fire((ms) => ms === 10_000);
    expect(live.state).toBe("offline");
  });

  it("a pong keeps the link", () => {
    const { live, sockets, fire, timers } = harness();
    live.start();
    sockets[0].open();
    fire((ms) => ms === 20_000);
    sockets[0].frame({ type: "pong", topic: null, seq: null });
    expect(timers.map((t) => t.ms)).toEqual([20_000]);
    expect(live.state).toBe("open");
  });

  it("takes a reset snapshot's seq even when it is lower, and unsubscribes the last handler", () => {
    const { live, sockets } = harness();
    live.start();
    const got: Frame[] = [];
    const off = live.subscribe("run:r", (f) => got.push(f));
    sockets[0].open();
    sockets[0].frame({ type: "run_event", topic: "run:r", seq: 10 });
    sockets[0].frame({ type: "snapshot", topic: "run:r", seq: 3, reset: true });
    sockets[0].frame({ type: "run_event", topic: "run:r", seq: 4 });
    expect(got.map((f) => f.seq)).toEqual([10, 3, 4]);
    off();
    expect(sockets[0].sent).toContainEqual({ type: "unsubscribe", topic: "run:r" });
    sockets[0].frame({ type: "run_event", topic: "run:r", seq: 5 });
    expect(got).toHaveLength(3);
  });

  it("ignores frames it cannot read and frames of other topics", () => {
    const { live, sockets } = harness();
    live.start();
    const got: Frame[] = [];
    live.subscribe("chat:a", (f) => got.push(f));
    sockets[0].open();
    sockets[0].onmessage?.({ data: "not json" });
    sockets[0].frame({ type: "message", topic: "chat:b", seq: 1 });
    expect(got).toHaveLength(0);
  });
});
