// What every view shares: the live connection and its state.
import { signal } from "@preact/signals";
import { token } from "./api";
import { browserLive, Live, type LinkState, type LiveEnv } from "./live";

/** Outside a browser (unit tests) the connection never connects; tests feed frames directly. */
const unplugged: LiveEnv = {
  url: () => "ws://unplugged",
  socket: () => {
    throw new Error("no WebSocket outside a browser");
  },
  setTimeout: () => 0,
  clearTimeout: () => {},
  random: () => 0,
};

const inBrowser = typeof window !== "undefined";

export const live = inBrowser ? browserLive(token) : new Live(unplugged);
export const link = signal<LinkState>("connecting");
live.onState((s) => (link.value = s));

/** Calls `f` at most once per animation frame, with the latest arguments dropped: used to fold
 * a burst of frames into one render. */
export function perFrame(f: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    const run = () => {
      queued = false;
      f();
    };
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
    else queueMicrotask(run);
  };
}

/** Calls `f` once things have been quiet for `ms`, and at least every `max` ms while busy. */
export function debounce(f: () => void, ms: number, max = ms * 4): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let first: number | null = null;
  return () => {
    const now = performance.now();
    first ??= now;
    clearTimeout(timer);
    const wait = Math.max(0, Math.min(ms, max - (now - first)));
    timer = setTimeout(() => {
      first = null;
      f();
    }, wait);
  };
}

declare global {
  interface Window {
    __baton: { live: typeof live; marks: Record<string, number> };
  }
}

if (inBrowser) window.__baton = { live, marks: {} };

/** Records a moment the end-to-end suite reads (first paint of traces, for example). */
export function mark(name: string) {
  if (inBrowser) window.__baton.marks[name] ??= performance.now();
}
