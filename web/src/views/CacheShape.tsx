// The prompt-cache shape: per model call, a bar of the prompt's segments (tool schemas,
// system prompt, history, what is new) split into read from cache, written to it and sent
// fresh; per session, a chart of the cache hit rate and the cost over turns beside what
// the same turns would have cost uncached, with sharp drops marked and explained.
import { percent, tokens, usd } from "../format";
import { SEGMENT_LABEL, type Shape, type TurnPoint } from "../cacheShape";
import { hitClass, hitRate } from "../traces";

function describe(shape: Shape): string {
  return shape.segments
    .map(
      (s) =>
        `${SEGMENT_LABEL[s.name] ?? s.name}: ${tokens(s.tokens)} tokens — ${tokens(s.cached)} cached, ${tokens(s.written)} written, ${tokens(s.fresh)} fresh${s.images ? ` (${s.images} image${s.images === 1 ? "" : "s"})` : ""}`,
    )
    .join("\n");
}

/** One call's segments × cached / written / fresh, with its hit rate. */
export function ShapeBar({ shape }: { shape: Shape }) {
  const total = shape.segments.reduce((n, s) => n + s.tokens, 0);
  const cached = shape.segments.reduce((n, s) => n + s.cached, 0);
  const rate = hitRate(total, cached);
  return (
    <span class={`shape hit ${hitClass(rate)}`} title={describe(shape)} data-rate={rate.toFixed(3)}>
      <span class="shape-track" role="img" aria-label={`cache: ${percent(rate)} of ${tokens(total)} input tokens`}>
        {shape.segments
          .filter((s) => s.tokens > 0)
          .map((s) => (
            <span class={`seg seg-${s.name}`} key={s.name} style={{ flexGrow: s.tokens }}>
              {s.cached ? <span class="part cached" style={{ flexGrow: s.cached }} /> : null}
              {s.written ? <span class="part written" style={{ flexGrow: s.written }} /> : null}
              {s.fresh ? <span class="part fresh" style={{ flexGrow: s.fresh }} /> : null}
            </span>
          ))}
      </span>
      <span class="hit-label">{percent(rate)}</span>
    </span>
  );
}

/** The same figures as a table, in a model call's details. */
export function ShapeTable({ shape }: { shape: Shape }) {
  return (
    <table class="shape-table">
      <thead>
        <tr>
          <th>segment</th>
          <th>tokens</th>
          <th>cached</th>
          <th>written</th>
          <th>fresh</th>
        </tr>
      </thead>
      <tbody>
        {shape.segments.map((s) => (
          <tr key={s.name}>
            <td>
              {SEGMENT_LABEL[s.name] ?? s.name}
              {s.images ? <span class="muted"> · {s.images} image{s.images === 1 ? "" : "s"}</span> : null}
            </td>
            <td>{tokens(s.tokens)}</td>
            <td>{tokens(s.cached)}</td>
            <td>{tokens(s.written)}</td>
            <td>{tokens(s.fresh)}</td>
          </tr>
        ))}
      </tbody>
      {shape.changed.length ? (
        <caption class="small">changed since the call before: {shape.changed.join(", ")}</caption>
      ) : null}
    </table>
  );
}

const W = 320;
const H = 120;
const PAD = 4;

/** Hit rate per turn (bars) and cumulative cost against cumulative uncached cost (lines). */
export function CacheChart({ points }: { points: TurnPoint[] }) {
  if (points.length === 0) return null;
  const n = points.length;
  const bw = (W - PAD * 2) / n;
  const top = Math.max(...points.map((p) => p.totalUncached), 1e-12);
  const y = (v: number) => H - PAD - (v / top) * (H - PAD * 2);
  const x = (i: number) => PAD + bw * i + bw / 2;
  const line = (f: (p: TurnPoint) => number) => points.map((p, i) => `${x(i).toFixed(1)},${y(f(p)).toFixed(1)}`).join(" ");
  const last = points[n - 1];
  const saved = last.totalUncached - last.totalCost;
  const drops = points.filter((p) => p.drop);
  return (
    <figure class="cache-chart" aria-label="Cache over turns">
      <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`cache hit rate over ${n} turns`}>
        {points.map((p, i) => (
          <rect
            key={p.turn}
            class={`rate-bar ${hitClass(p.rate)}${p.drop ? " dropped" : ""}`}
            x={PAD + bw * i + bw * 0.1}
            width={bw * 0.8}
            y={H - PAD - p.rate * (H - PAD * 2)}
            height={Math.max(1, p.rate * (H - PAD * 2))}
          >
            <title>
              Turn {p.turn}: cache {percent(p.rate)}, {usd(p.cost)} ({usd(p.uncached)} uncached){p.drop ? ` — dropped: ${p.drop}` : ""}
            </title>
          </rect>
        ))}
        <polyline class="cost-uncached" points={line((p) => p.totalUncached)} />
        <polyline class="cost" points={line((p) => p.totalCost)} />
      </svg>
      <figcaption class="small">
        <span class="legend rate-key">cache hit rate per turn</span>{" "}
        <span class="legend cost-key">cost {usd(last.totalCost)}</span>{" "}
        <span class="legend uncached-key">uncached {usd(last.totalUncached)}</span>{" "}
        {saved > 0 ? <span class="muted">saved {usd(saved)}</span> : null}
      </figcaption>
      {drops.length ? (
        <ul class="drops" aria-label="Cache drops">
          {drops.map((p) => (
            <li key={p.turn}>
              Turn {p.turn}: cache fell to {percent(p.rate)} — {p.drop}
            </li>
          ))}
        </ul>
      ) : null}
    </figure>
  );
}
