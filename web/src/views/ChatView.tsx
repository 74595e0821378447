import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { duration, percent, tokens, usd, clock } from "../format";
import { search, setParam } from "../router";
import { hitClass, hitRate, queryFromParams } from "../traces";
import { exchangeOf, exchangesOf, spawnedTask } from "../chat";
import type { Message, SessionView, Trace } from "../types";
import { tasks } from "../models/tasksModel";
import { Markdown } from "./Markdown";
import { ChatModel } from "../models/chatModel";
import { HitBar, TraceTree } from "./TraceTree";
import { CapabilityBadges } from "./Capabilities";
import { AttachmentImage, MessageImages } from "./Images";
import { CacheChart } from "./CacheShape";
import { turnSeries } from "../cacheShape";
import { ACCEPTED, uploading } from "../attachments";
import { itemAt, offsetsOf, spanOf } from "../windowing";

/** An exchange's height before it has been drawn and measured, and how far beyond the view
 * exchanges are drawn. */
const ESTIMATE = 160;
const OVERSCAN = 1200;

export function ChatView({ id }: { id: string }) {
  const model = useMemo(() => new ChatModel(id), [id]);
  useEffect(() => {
    model.start();
    return () => model.stop();
  }, [model]);
  const pane = search.value.get("pane") === "timeline" ? "timeline" : "traces";
  const [dropping, setDropping] = useState(false);

  if (model.notFound.value) {
    return (
      <div class="empty">
        <h2>No such chat</h2>
        <p>
          <a href="/">Start a new one</a>.
        </p>
      </div>
    );
  }
  return (
    <div class="chat-layout">
      <section
        class={`pane chat-pane${dropping ? " dropping" : ""}`}
        aria-label="Chat"
        onDragOver={(e) => {
          if (!e.dataTransfer?.types.includes("Files")) return;
          e.preventDefault();
          setDropping(true);
        }}
        onDragLeave={(e) => {
          if (e.currentTarget === e.target) setDropping(false);
        }}
        onDrop={(e) => {
          setDropping(false);
          const files = e.dataTransfer?.files;
          if (!files || files.length === 0) return;
          e.preventDefault();
          void model.attach(files);
        }}
      >
        <ChatPane model={model} />
      </section>
      <section class="pane side-pane" aria-label={pane === "traces" ? "Traces" : "Timeline"}>
        <div class="tabs" role="tablist">
          <button role="tab" aria-selected={pane === "traces"} onClick={() => setParam("pane", null)}>
            Traces
          </button>
          <button role="tab" aria-selected={pane === "timeline"} onClick={() => setParam("pane", "timeline")}>
            Timeline
          </button>
        </div>
        {pane === "traces" ? (
          <>
            <TraceFinder model={model} />
            {model.found.value ? (
              <TraceTree
                key={JSON.stringify(model.finding.value)}
                model={model.found.value}
                scope={`chat:${id}:found`}
                onTurn={(turn) => void scrollToTurn(model, turn)}
              />
            ) : (
              <TraceTree model={model.traces} scope={`chat:${id}`} onTurn={(turn) => void scrollToTurn(model, turn)} />
            )}
          </>
        ) : (
          <Timeline model={model} />
        )}
      </section>
    </div>
  );
}

/** Search and filters over the chat's calls, answered by the server; kept in the address. */
function TraceFinder({ model }: { model: ChatModel }) {
  const params = search.value;
  const query = useMemo(() => queryFromParams(params), [params]);
  const [text, setText] = useState(query.q ?? "");
  // Applied when the address changes (typing is debounced into it).
  useEffect(() => model.find(query), [JSON.stringify(query), model]);
  useEffect(() => {
    if ((query.q ?? "") === text) return;
    const t = setTimeout(() => setParam("q", text.trim() || null), 300);
    return () => clearTimeout(t);
  }, [text]);
  const found = model.found.value;
  const count = found ? (found.version.value, found.set.all().length) : 0;
  const version = model.traces.version.value;
  const toolNames = useMemo(() => [...new Set(model.traces.set.all().map((t) => t.tool_name))].sort(), [version, model]);
  return (
    <div class="finder" role="search">
      <input
        type="search"
        aria-label="Search calls"
        placeholder="search inputs and outputs"
        value={text}
        onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
      />
      <select aria-label="Kind" value={query.kind ?? ""} onChange={(e) => setParam("kind", (e.currentTarget as HTMLSelectElement).value || null)}>
        <option value="">all calls</option>
        <option value="llm">model calls</option>
        <option value="tool">tool calls</option>
      </select>
      <select aria-label="Status" value={query.status ?? ""} onChange={(e) => setParam("status", (e.currentTarget as HTMLSelectElement).value || null)}>
        <option value="">any status</option>
        <option value="failed">failed</option>
        <option value="running">running</option>
      </select>
      <input
        type="number"
        min={0}
        step={100}
        aria-label="Slower than (ms)"
        placeholder="slower than ms"
        value={query.min_ms ?? ""}
        onChange={(e) => setParam("slow", (e.currentTarget as HTMLInputElement).value || null)}
      />
      <input
        list={`tools-${model.id}`}
        aria-label="Tool"
        placeholder="tool or model"
        value={query.tool ?? ""}
        onChange={(e) => setParam("tool", (e.currentTarget as HTMLInputElement).value.trim() || null)}
      />
      <datalist id={`tools-${model.id}`}>
        {toolNames.map((n) => (
          <option key={n} value={n} />
        ))}
      </datalist>
      {found ? (
        <span class="muted small found-count" aria-live="polite">
          {count}
          {found.done.value ? "" : "+"} found
          {found.error.value ? ` · ${found.error.value}` : ""}
        </span>
      ) : null}
    </div>
  );
}

function ChatPane({ model }: { model: ChatModel }) {
  const chat = model.chat.value;
  const session = model.session.value;
  const messages = model.messages.value;
  const streaming = model.streaming.value;
  const version = model.traces.version.value;
  const running = session?.status === "running";
  const list = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  const exchanges = useMemo(() => exchangesOf(messages), [messages]);
  // Tool calls per exchange, shown collapsed under the user's message.
  const toolsByExchange = useMemo(() => {
    const out = new Map<number, Trace[]>();
    for (const t of model.traces.set.all()) {
      if (t.kind !== "tool") continue;
      const at = exchangeOf(exchanges, t.turn_number);
      const list = out.get(at) ?? [];
      list.push(t);
      out.set(at, list);
    }
    for (const l of out.values()) l.sort((a, b) => a.started_at.localeCompare(b.started_at));
    return out;
  }, [version, model, exchanges]);
  const streamingAt = streaming ? exchangeOf(exchanges, streaming.turn) : null;

  // Only the exchanges near the view are drawn; each is measured once drawn (an estimate
  // until then). Opens at the newest message and follows new ones while at the bottom; when
  // older messages come in above, or exchanges above the view turn out taller or shorter
  // than estimated, what was in view stays in view.
  const heights = useRef(new Map<number, number>());
  const [view, setView] = useState({ top: 0, height: 800 });
  const [, remeasured] = useState(0);
  const keys = useMemo(() => exchanges.map((x) => x.turn), [exchanges]);
  const indexOf = useMemo(() => new Map(keys.map((k, i) => [k, i])), [keys]);
  const offsets = offsetsOf(keys, heights.current, ESTIMATE);
  const span = spanOf(offsets, view.top, view.height, OVERSCAN);
  const anchor = useRef<{ first: string | null; height: number }>({ first: null, height: 0 });
  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    const first = messages[0]?.id ?? null;
    if (!stick.current && anchor.current.first && first !== anchor.current.first)
      el.scrollTop += el.scrollHeight - anchor.current.height;
    anchor.current = { first, height: el.scrollHeight };
  }, [messages]);
  useLayoutEffect(() => {
    const el = list.current;
    if (!el) return;
    const top = itemAt(offsets, el.scrollTop);
    let shift = 0;
    let changed = false;
    for (const node of el.querySelectorAll<HTMLElement>(".turn[data-turn]")) {
      const turn = Number(node.dataset.turn);
      const h = node.offsetHeight;
      const was = heights.current.get(turn);
      if (was === h) continue;
      changed = true;
      if ((indexOf.get(turn) ?? 0) < top) shift += h - (was ?? ESTIMATE);
      heights.current.set(turn, h);
    }
    if (stick.current) el.scrollTop = el.scrollHeight;
    else if (shift) el.scrollTop += shift;
    anchor.current.height = el.scrollHeight;
    if (changed) remeasured((n) => n + 1);
    else if (el.scrollTop !== view.top || el.clientHeight !== view.height) setView({ top: el.scrollTop, height: el.clientHeight });
  });
  // A jump to an exchange (from the Timeline): straight to where it is, then marked.
  const jump = model.jump.value;
  useLayoutEffect(() => {
    const el = list.current;
    if (jump === null || !el) return;
    const i = indexOf.get(jump);
    if (i === undefined) return;
    stick.current = false;
    el.scrollTop = offsets[i];
    setView({ top: el.scrollTop, height: el.clientHeight });
    model.jump.value = null;
    requestAnimationFrame(() => {
      const node = document.getElementById(`exchange-${jump}`);
      if (!node) return;
      node.scrollIntoView({ block: "start" });
      node.classList.add("flash");
      setTimeout(() => node.classList.remove("flash"), 1200);
    });
  }, [jump, indexOf]);

  // The sessions' own running totals, the current one's from its latest frame: no turn
  // is summed here.
  const totals = useMemo(() => {
    let input = 0;
    let cached = 0;
    let cost = 0;
    const all: SessionView[] = model.sessions.value.filter((s) => s.id !== session?.id);
    if (session) all.push(session.usage ? session : (model.sessions.value.find((s) => s.id === session.id) ?? session));
    for (const s of all) {
      input += s.usage?.input_tokens ?? 0;
      cached += s.usage?.cache_read_tokens ?? 0;
      cost += s.cost_usd ?? 0;
    }
    return { input, cached, cost, rate: hitRate(input, cached) };
  }, [model.sessions.value, session]);

  return (
    <>
      <header class="pane-head">
        <div>
          <h2>
            {chat?.title ?? "…"} {chat ? <CapabilityBadges caps={chat.capabilities} /> : null}
          </h2>
          <div class="muted small">{chat?.workspace ?? "server's default workspace"}</div>
        </div>
        <span class="spacer" />
        {chat ? (
          <label class="toggle small" title="When a background task this chat started ends, its result is added here; with this on, the agent also goes on with it">
            <input
              type="checkbox"
              checked={chat.auto_continue}
              onChange={(e) => void model.setAutoContinue((e.currentTarget as HTMLInputElement).checked)}
            />{" "}
            wake on task results
          </label>
        ) : null}
        {session ? <span class={`badge status-${session.status}`}>{session.status}</span> : null}
        {running ? (
          <button class="danger" onClick={() => void model.cancel()}>
            Stop
          </button>
        ) : null}
      </header>
      <div
        class="messages"
        ref={list}
        onScroll={(e) => {
          const el = e.currentTarget as HTMLDivElement;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
          anchor.current.height = el.scrollHeight;
          setView({ top: el.scrollTop, height: el.clientHeight });
          if (el.scrollTop < 400 && model.older.value) void model.loadOlder();
        }}
      >
        {model.older.value ? (
          <button class="link small older" onClick={() => void model.loadOlder()}>
            earlier messages…
          </button>
        ) : null}
        {exchanges.length === 0 ? <p class="muted empty">Ask something about the workspace.</p> : null}
        <div style={{ height: `${span.before}px` }} />
        {exchanges.slice(span.start, span.end).map((x) => (
          <div class="turn" id={`exchange-${x.turn}`} data-turn={x.turn} key={x.turn}>
            {x.user.map((m) =>
              m.role === "notice" ? (
                <Notice m={m} key={m.id} />
              ) : (
                <div class="msg user" key={m.id}>
                  <MessageImages ids={m.attachments} />
                  <div class="msg-body">{m.content}</div>
                  <div class="msg-meta">{clock(m.created_at)}</div>
                </div>
              ),
            )}
            <ToolCalls calls={toolsByExchange.get(x.turn) ?? []} />
            <SpawnedTasks calls={toolsByExchange.get(x.turn) ?? []} />
            {x.answers.map((m) => (
              <div class="msg assistant" key={m.id}>
                <Markdown text={m.content} />
                <div class="msg-meta">{clock(m.created_at)}</div>
              </div>
            ))}
            {streaming && streamingAt === x.turn && !x.answers.some((m) => m.turn_number >= streaming.turn) ? (
              <div class="msg assistant streaming" aria-live="polite">
                <Markdown text={streaming.text} />
                <span class="cursor">▍</span>
              </div>
            ) : null}
          </div>
        ))}
        <div style={{ height: `${span.after}px` }} />
        {running && !streaming ? <div class="muted thinking">working…</div> : null}
      </div>
      {model.error.value ? (
        <div class="banner error" role="alert">
          {model.error.value}
          <button class="link" onClick={() => (model.error.value = null)}>
            dismiss
          </button>
        </div>
      ) : null}
      <Composer model={model} busy={running} />
      <footer class="session-foot">
        <span>
          cache hit <b class={`rate ${hitClass(totals.rate)}`}>{percent(totals.rate)}</b>
        </span>
        <span class="muted">{tokens(totals.input)} input tokens</span>
        <span class="muted">{usd(totals.cost)}</span>
        {session ? <span class="muted">{session.model}</span> : null}
      </footer>
    </>
  );
}

/** A background task's end, told to the chat. */
function Notice({ m }: { m: Message }) {
  const [head, ...rest] = m.content.split("\n\n");
  const body = rest.join("\n\n");
  return (
    <div class="msg notice" role="note">
      <div class="notice-head">
        <span>{head}</span>
        {m.task_id ? (
          <a class="small" href={`/tasks?task=${m.task_id}`}>
            view task
          </a>
        ) : null}
      </div>
      {body ? (
        <details>
          <summary class="small">result</summary>
          <div class="msg-body">{body}</div>
        </details>
      ) : null}
      <div class="msg-meta">{clock(m.created_at)}</div>
    </div>
  );
}

/** The background tasks this exchange's agent started, live, where it started them. */
function SpawnedTasks({ calls }: { calls: Trace[] }) {
  const ids = calls
    .filter((c) => c.tool_name === "spawn_subagent" && c.outcome === "ok")
    .map((c) => spawnedTask(c.output))
    .filter((id): id is string => id !== null);
  if (ids.length === 0) return null;
  const known = tasks.value;
  return (
    <ul class="spawned" aria-label="Background tasks started here">
      {ids.map((id) => {
        const t = known.find((k) => k.id === id);
        return (
          <li key={id}>
            <a href={`/tasks?task=${id}`} class="task-chip">
              <span class="muted">background</span> {t?.label ?? id.slice(0, 8)}{" "}
              {t ? <span class={`badge status-${t.status}`}>{t.status}</span> : null}
            </a>
          </li>
        );
      })}
    </ul>
  );
}

function ToolCalls({ calls }: { calls: Trace[] }) {
  if (calls.length === 0) return null;
  const failed = calls.filter((c) => c.outcome === "error" || c.outcome === "timeout").length;
  const running = calls.some((c) => c.outcome === "running");
  return (
    <details class="tool-calls">
      <summary>
        {calls.length} tool call{calls.length === 1 ? "" : "s"}
        {running ? " · running" : ""}
        {failed ? <span class="bad"> · {failed} failed</span> : null}
      </summary>
      <ul>
        {calls.map((c) => (
          <li key={c.id} class={`outcome-${c.outcome}`}>
            <code>{c.tool_name}</code> <span class="muted">{summarize(c.input)}</span>{" "}
            <span class="muted">{c.outcome === "running" ? "…" : duration(c.latency_ms)}</span>
            {c.error ? <div class="error-text">{c.error}</div> : null}
          </li>
        ))}
      </ul>
    </details>
  );
}

function summarize(input: unknown): string {
  if (!input || typeof input !== "object") return "";
  const o = input as Record<string, unknown>;
  const v = o.path ?? o.pattern ?? o.command ?? Object.values(o)[0];
  const s = typeof v === "string" ? v : JSON.stringify(v ?? "");
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

function Composer({ model, busy }: { model: ChatModel; busy: boolean }) {
  const key = `baton.draft.${model.id}`;
  const [text, setText] = useState(() => sessionStorage.getItem(key) ?? "");
  const [sending, setSending] = useState(false);
  const picker = useRef<HTMLInputElement>(null);
  const drafts = model.drafts.value;
  const waiting = uploading(drafts);
  const submit = async () => {
    const content = text.trim();
    if (!content || sending || waiting) return;
    setSending(true);
    const ok = await model.send(content);
    setSending(false);
    if (ok) {
      setText("");
      sessionStorage.removeItem(key);
    }
  };
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      {drafts.length ? (
        <ul class="draft-images" aria-label="Attached images">
          {drafts.map((d) => (
            <li key={d.key} class={`draft-image ${d.state}`}>
              {d.id ? <AttachmentImage id={d.id} thumbnail alt={d.name} /> : <span class="img-wait" aria-label={`uploading ${d.name}`} />}
              <button type="button" class="remove" aria-label={`Remove ${d.name}`} onClick={() => model.detach(d.key)}>
                ✕
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      {model.attachError.value ? (
        <div class="attach-error" role="alert">
          {model.attachError.value}
        </div>
      ) : null}
      <div class="composer-row">
        <button type="button" class="attach" aria-label="Attach images" title="Attach images (or drop or paste them)" onClick={() => picker.current?.click()}>
          +
        </button>
        <input
          ref={picker}
          type="file"
          accept={ACCEPTED.join(",")}
          multiple
          hidden
          aria-label="Choose images"
          onChange={(e) => {
            const input = e.currentTarget as HTMLInputElement;
            if (input.files) void model.attach(input.files);
            input.value = "";
          }}
        />
        <textarea
          aria-label="Message"
          placeholder={busy ? "The agent is working…" : "Ask about the workspace (Enter sends, Shift+Enter for a new line; drop or paste images)"}
          value={text}
          rows={3}
          onInput={(e) => {
            const v = (e.currentTarget as HTMLTextAreaElement).value;
            setText(v);
            sessionStorage.setItem(key, v);
          }}
          onPaste={(e) => {
            const files = e.clipboardData?.files;
            if (files && files.length) {
              e.preventDefault();
              void model.attach(files);
            }
          }}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
              e.preventDefault();
              void submit();
            }
          }}
        />
        <button type="submit" disabled={!text.trim() || sending || busy || waiting}>
          Send
        </button>
      </div>
    </form>
  );
}

const TURN_ROW = 34;

function Timeline({ model }: { model: ChatModel }) {
  const version = model.traces.version.value;
  const points = useMemo(() => turnSeries(model.traces.set.all()), [version, model]);
  const dropAt = useMemo(() => new Map(points.filter((p) => p.drop).map((p) => [p.turn, p.drop as string])), [points]);
  const rows = model.timeline.rows.value;
  const complete = model.timeline.complete.value;
  const box = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  // Rows sit at fixed heights below the chart; only those in view are drawn.
  const chartHeight = points.length ? 200 : 0;
  const first = Math.max(0, Math.floor((scrollTop - chartHeight) / TURN_ROW) - 8);
  const last = Math.min(rows.length, Math.ceil((scrollTop + height - chartHeight) / TURN_ROW) + 8);
  useEffect(() => {
    if (!complete && last >= rows.length - 20) void model.timeline.more().catch(() => {});
  }, [last, rows.length, complete, model]);
  if (rows.length === 0 && complete) return <p class="muted empty">No turns yet.</p>;
  return (
    <div class="timeline" ref={box} onScroll={(e) => setScrollTop((e.currentTarget as HTMLDivElement).scrollTop)}>
      <div style={{ height: `${chartHeight}px`, overflow: "hidden" }}>
        <CacheChart points={points} />
      </div>
      <div class="timeline-rows" style={{ height: `${rows.length * TURN_ROW}px` }}>
        {rows.slice(first, last).map((t, k) => {
          const end = t.finished_at ? Date.parse(t.finished_at) : null;
          const drop = dropAt.get(t.turn_number);
          return (
            <button
              class={`timeline-turn${drop ? " dropped" : ""}`}
              key={`${t.session}:${t.turn_number}`}
              style={{ top: `${(first + k) * TURN_ROW}px`, height: `${TURN_ROW - 4}px` }}
              title={drop ? `cache dropped: ${drop}` : undefined}
              onClick={() => void scrollToTurn(model, t.turn_number)}
            >
              <span class="turn-title">
                Turn {t.turn_number}
                {drop ? <span class="drop-mark"> ▼</span> : null}
              </span>
              <span class="muted">{clock(t.started_at)}</span>
              <span class="muted">{end ? duration(end - Date.parse(t.started_at)) : "running"}</span>
              <span>{t.tool_count} tools</span>
              <span>
                {tokens(t.input_tokens)} in · {tokens(t.output_tokens)} out
              </span>
              <HitBar rate={t.cache_hit_rate} label={percent(t.cache_hit_rate)} />
              <span class="muted">{usd(t.cost_usd)}</span>
            </button>
          );
        })}
      </div>
      {!complete ? <div class="muted small">loading turns…</div> : null}
    </div>
  );
}

/** Scrolls the chat to the question of `turn`, reading older pages until it is here. */
async function scrollToTurn(model: ChatModel, turn: number) {
  const loaded = () => model.messages.value.some((m) => m.role === "user" && m.turn_number <= turn);
  while (!loaded() && model.older.value) await model.loadOlder(500);
  model.jump.value = exchangeOf(exchangesOf(model.messages.value), turn);
}
