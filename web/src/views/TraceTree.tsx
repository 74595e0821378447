// The trace tree: turns, model calls and the tool calls they asked for, with timing bars
// relative to the turn. Rows are virtualised (fixed heights per kind), so ten thousand
// traces scroll like ten; pages are fetched as the end comes into view.
import { shapeOf } from "../cacheShape";
import { ShapeBar, ShapeTable } from "./CacheShape";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { mark } from "../app";
import { duration, percent, tokens, usd } from "../format";
import {
  bar,
  buildTurns,
  flatten,
  fold,
  heightOf,
  hitClass,
  hitRate,
  offsets,
  pretty,
  windowOf,
  type Row,
  type TraceNode,
} from "../traces";
import type { TraceModel } from "../models/traceModel";

const load = (key: string): Set<string> => {
  try {
    return new Set(JSON.parse(sessionStorage.getItem(key) ?? "[]") as string[]);
  } catch {
    return new Set();
  }
};
const save = (key: string, s: Set<string>) => sessionStorage.setItem(key, JSON.stringify([...s]));

/** `onTurn`, where the calls belong to a chat: a call's details offer to show its turn's
 * question there. */
export function TraceTree({ model, scope, onTurn }: { model: TraceModel; scope: string; onTurn?: (turn: number) => void }) {
  const version = model.version.value;
  const [closed, setClosed] = useState(() => load(`baton.closed.${scope}`));
  const [details, setDetails] = useState(() => load(`baton.details.${scope}`));
  const [selected, setSelected] = useState<string | null>(() => sessionStorage.getItem(`baton.sel.${scope}`));
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [now, setNow] = useState(() => Date.now());
  const box = useRef<HTMLDivElement>(null);

  const all = useMemo(() => model.set.all(), [version, model]);
  const running = useMemo(() => all.some((t) => t.outcome === "running"), [all]);
  // Running bars grow: while anything runs, time moves four times a second.
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 250);
    return () => clearInterval(t);
  }, [running]);
  const turns = useMemo(() => buildTurns(all, running ? now : Date.now()), [all, now, running]);
  const rows = useMemo(() => flatten(turns, closed, details), [turns, closed, details]);
  const offs = useMemo(() => offsets(rows), [rows]);
  const { first, last } = windowOf(offs, scrollTop, height);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    setHeight(el.clientHeight);
    const saved = Number(sessionStorage.getItem(`baton.scroll.${scope}`) ?? 0);
    if (saved) el.scrollTop = saved;
    return () => ro.disconnect();
  }, [scope]);

  useEffect(() => {
    if (rows.length > 0) mark(`traces-painted:${scope}`);
  }, [rows.length > 0, scope]);

  // Page in more once the last rows come into view.
  useEffect(() => {
    if (!model.done.value && !model.loading.value && last >= rows.length - 40) void model.more();
  }, [last, rows.length, model, model.done.value, model.loading.value]);

  const toggle = (set: Set<string>, key: string, name: string, update: (s: Set<string>) => void) => {
    const next = new Set(set);
    if (next.has(key)) next.delete(key);
    else next.add(key);
    save(`baton.${name}.${scope}`, next);
    update(next);
  };
  const select = (key: string | null) => {
    setSelected(key);
    if (key) sessionStorage.setItem(`baton.sel.${scope}`, key);
  };

  const navigable = rows.filter((r) => r.type !== "detail");
  const onKey = (e: KeyboardEvent) => {
    const i = navigable.findIndex((r) => r.key === selected);
    const row = i >= 0 ? navigable[i] : undefined;
    const go = (j: number) => {
      const r = navigable[Math.max(0, Math.min(navigable.length - 1, j))];
      if (!r) return;
      select(r.key);
      const at = rows.indexOf(r);
      const el = box.current!;
      if (offs[at] < el.scrollTop) el.scrollTop = offs[at];
      else if (offs[at + 1] > el.scrollTop + el.clientHeight) el.scrollTop = offs[at + 1] - el.clientHeight;
    };
    switch (e.key) {
      case "ArrowDown":
        go(i + 1);
        break;
      case "ArrowUp":
        go(i < 0 ? 0 : i - 1);
        break;
      case "Home":
        go(0);
        break;
      case "End":
        go(navigable.length - 1);
        break;
      case "ArrowRight":
        if (row && (row.type === "turn" || row.hasChildren) && !row.open) toggle(closed, row.key, "closed", setClosed);
        else go(i + 1);
        break;
      case "ArrowLeft":
        if (row && (row.type === "turn" || row.hasChildren) && row.open) toggle(closed, row.key, "closed", setClosed);
        else if (row && row.type === "trace") {
          const parent = row.node.trace.parent_id ?? row.turn.key;
          go(navigable.findIndex((r) => r.key === parent));
        }
        break;
      case "Enter":
      case " ":
        if (row?.type === "trace") toggle(details, row.key, "details", setDetails);
        else if (row?.type === "turn") toggle(closed, row.key, "closed", setClosed);
        break;
      default:
        return;
    }
    e.preventDefault();
  };

  return (
    <div class="tree-wrap">
      <div
        class="tree"
        ref={box}
        tabIndex={0}
        role="tree"
        aria-label="Traces"
        onKeyDown={onKey}
        onScroll={(e) => {
          const top = (e.currentTarget as HTMLDivElement).scrollTop;
          setScrollTop(top);
          sessionStorage.setItem(`baton.scroll.${scope}`, String(Math.round(top)));
        }}
      >
        <div style={{ height: `${offs[rows.length]}px`, position: "relative" }}>
          {rows.slice(first, last).map((r, k) => (
            <div
              key={r.key}
              class={`row row-${r.type}${r.key === selected ? " selected" : ""}`}
              style={{ top: `${offs[first + k]}px`, height: `${heightOf(r)}px` }}
              role={r.type === "detail" ? undefined : "treeitem"}
              aria-expanded={r.type === "detail" ? undefined : r.open}
              aria-level={r.depth + 1}
              data-key={r.key}
              onClick={() => {
                if (r.type === "detail") return;
                select(r.key);
                if (r.type === "turn") toggle(closed, r.key, "closed", setClosed);
                else toggle(details, r.key, "details", setDetails);
              }}
            >
              <RowView row={r} onCaret={(key) => toggle(closed, key, "closed", setClosed)} onTurn={onTurn} />
            </div>
          ))}
        </div>
      </div>
      <div class="tree-status">
        {model.set.size} calls{model.loading.value ? " · loading…" : ""}
        {model.error.value ? <span class="bad"> · {model.error.value}</span> : null}
        {!model.done.value && !model.loading.value ? (
          <button class="link" onClick={() => void model.more()}>
            load more
          </button>
        ) : null}
      </div>
    </div>
  );
}

function RowView({ row, onCaret, onTurn }: { row: Row; onCaret: (key: string) => void; onTurn?: (turn: number) => void }) {
  if (row.type === "turn") {
    const t = row.turn;
    const rate = hitRate(t.input, t.cached);
    return (
      <>
        <span class="caret">{row.open ? "▾" : "▸"}</span>
        <span class="turn-title">Turn {t.number}</span>
        <span class="muted">{t.calls} calls</span>
        <span class="muted">{duration(t.end - t.start)}</span>
        {t.running ? <span class="badge running">running</span> : null}
        {t.errors ? <span class="badge error">{t.errors} failed</span> : null}
        <span class="spacer" />
        <span class="muted">{tokens(t.input)} in</span>
        <HitBar rate={rate} label={`cache ${percent(rate)}`} />
        <span class="muted">{usd(t.cost)}</span>
      </>
    );
  }
  if (row.type === "detail") return <Detail node={row.node} depth={row.depth} onTurn={onTurn} />;
  const t = row.node.trace;
  const start = Date.parse(t.started_at);
  const end = t.finished_at ? Date.parse(t.finished_at) : row.turn.end;
  const b = bar(row.turn.start, row.turn.end, start, end);
  const rate = hitRate(t.input_tokens ?? 0, t.cache_tokens ?? 0);
  const shape = t.kind === "llm" && t.outcome !== "running" ? shapeOf(t) : null;
  return (
    <>
      <span style={{ width: `${row.depth * 16}px`, flex: "none" }} />
      <span
        class="caret"
        onClick={(e) => {
          if (!row.hasChildren) return;
          e.stopPropagation();
          onCaret(row.key);
        }}
      >
        {row.hasChildren ? (row.open ? "▾" : "▸") : ""}
      </span>
      <span class={`kind kind-${t.kind}`}>{t.kind === "llm" ? "model" : "tool"}</span>
      <span class={`name outcome-${t.outcome}`} title={t.error ?? undefined}>
        {t.tool_name}
      </span>
      <span class="track">
        <span class={`bar bar-${t.outcome}`} style={{ left: `${b.left}%`, width: `${b.width}%` }} />
      </span>
      <span class="lat">{t.outcome === "running" ? "…" : duration(t.latency_ms)}</span>
      {t.kind !== "llm" ? (
        <span class="hit-empty" />
      ) : shape ? (
        <ShapeBar shape={shape} />
      ) : (
        <HitBar rate={rate} label={percent(rate)} />
      )}
    </>
  );
}

export function HitBar({ rate, label }: { rate: number; label: string }) {
  return (
    <span class={`hit ${hitClass(rate)}`} title={`cache hit rate ${percent(rate)}`}>
      <span class="hit-track">
        <span class="hit-fill" style={{ width: `${Math.round(rate * 100)}%` }} />
      </span>
      <span class="hit-label">{label}</span>
    </span>
  );
}

function Detail({ node, depth, onTurn }: { node: TraceNode; depth: number; onTurn?: (turn: number) => void }) {
  const t = node.trace;
  const shape = t.kind === "llm" && t.outcome !== "running" ? shapeOf(t) : null;
  const facts = [
    ["started", t.started_at],
    ["latency", duration(t.latency_ms)],
    t.kind === "llm" ? ["tokens", `${t.input_tokens ?? 0} in (${t.cache_tokens ?? 0} cached) · ${t.output_tokens ?? 0} out`] : null,
    t.cost_usd ? ["cost", usd(t.cost_usd)] : null,
  ].filter(Boolean) as [string, string][];
  return (
    <div class="detail" style={{ marginLeft: `${depth * 16 + 20}px` }} onClick={(e) => e.stopPropagation()}>
      <div class="facts">
        {facts.map(([k, v]) => (
          <span key={k}>
            <b>{k}</b> {v}
          </span>
        ))}
        {t.meta && (t.meta as { truncated?: boolean }).truncated ? <span class="badge">truncated</span> : null}
        {onTurn ? (
          <button class="link small show-in-chat" onClick={() => onTurn(t.turn_number)}>
            show its question
          </button>
        ) : null}
      </div>
      {t.error ? <div class="error-text">{t.error}</div> : null}
      {shape ? <ShapeTable shape={shape} /> : null}
      <div class="io">
        <Folded title="input" text={pretty(t.input)} />
        <Folded title="output" text={t.outcome === "running" ? "(running)" : pretty(t.output)} />
      </div>
    </div>
  );
}

function Folded({ title, text }: { title: string; text: string }) {
  const [all, setAll] = useState(false);
  const { shown, hidden } = all ? { shown: text, hidden: 0 } : fold(text);
  return (
    <div class="io-part">
      <div class="io-title">{title}</div>
      <pre>
        {shown}
        {hidden ? (
          <button class="link" onClick={() => setAll(true)}>
            … {hidden} more characters
          </button>
        ) : null}
      </pre>
    </div>
  );
}
