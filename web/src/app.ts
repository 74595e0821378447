// What every view shares: the live connection and its state.
import { signal } from "@preact/signals";
import { token } from "./api";
import { browserLive, type LinkState } from "./live";

export const live = browserLive(token);
export const link = signal<LinkState>("connecting");
live.onState((s) => (link.value = s));

/** Calls `f` at most once per animation frame, with the latest arguments dropped: used to fold
 * a burst of frames into one render. */
export function perFrame(f: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      f();
    });
  };
}

/** Calls `f` once things have been quiet for `ms`, and at least every `max` ms while busy. */
export function debounce(f: () => void, ms: number, max = ms * 4): () => void {
  let timer: number | undefined;
  let first: number | null = null;
  return () => {
    const now = performance.now();
    first ??= now;
    window.clearTimeout(timer);
    const wait = Math.max(0, Math.min(ms, max - (now - first)));
    timer = window.setTimeout(() => {
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

window.__baton = { live, marks: {} };

/** Records a moment the end-to-end suite reads (first paint of traces, for example). */
export function mark(name: string) {
  window.__baton.marks[name] ??= performance.now();
}
