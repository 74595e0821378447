// The arithmetic of a list drawn in a window: items of different heights, each measured
// once it has been drawn (an estimate until then), only those near the view drawn, and the
// view kept on the same item when items above it change height or come in above it.

/** `offsets[i]` is where item `i` starts; `offsets[n]` is the height of them all. */
export function offsetsOf<K>(keys: K[], heights: Map<K, number>, estimate: number): number[] {
  const out = new Array<number>(keys.length + 1);
  let y = 0;
  for (let i = 0; i < keys.length; i++) {
    out[i] = y;
    y += heights.get(keys[i]) ?? estimate;
  }
  out[keys.length] = y;
  return out;
}

/** The item at height `y` (the last one when `y` is past them all; 0 when there are none). */
export function itemAt(offsets: number[], y: number): number {
  const n = offsets.length - 1;
  if (n <= 0) return 0;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface Span {
  /** The first item drawn. */
  start: number;
  /** One past the last item drawn. */
  end: number;
  /** Room left above the drawn items, and below them. */
  before: number;
  after: number;
}

/** The items to draw for a view of `height` at `top`, with `overscan` pixels either side. */
export function spanOf(offsets: number[], top: number, height: number, overscan: number): Span {
  const n = offsets.length - 1;
  if (n <= 0) return { start: 0, end: 0, before: 0, after: 0 };
  const start = itemAt(offsets, Math.max(0, top - overscan));
  const end = Math.min(n, itemAt(offsets, top + height + overscan) + 1);
  return { start, end, before: offsets[start], after: offsets[n] - offsets[end] };
}

/** How far the view must move to stay on the same item after heights were measured: the
 * change in height of the items wholly above item `anchor`. */
export function shiftAbove<K>(keys: K[], anchor: number, before: Map<K, number>, after: Map<K, number>, estimate: number): number {
  let shift = 0;
  for (let i = 0; i < anchor && i < keys.length; i++) {
    const k = keys[i];
    shift += (after.get(k) ?? estimate) - (before.get(k) ?? estimate);
  }
  return shift;
}
