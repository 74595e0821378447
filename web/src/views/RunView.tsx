// The orchestrator's run view: approval card, phases, agents, log, controls, and an agent's
// traces on demand.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { clock, duration, tokens, usd } from "../format";
import { search, setParam } from "../router";
import { finished, phasesOf } from "../models/runs";
import { RunModel } from "../models/runModel";
import { bar, pretty, ROW_HEIGHT } from "../traces";
import type { AgentView } from "../types";
import { TraceTree } from "./TraceTree";
import { CapabilityBadges } from "./Capabilities";


export function RunPage({ id }: { id: string }) {
  const model = useMemo(() => new RunModel(id), [id]);
  useEffect(() => {
    model.start();
    return () => model.stop();
  }, [model]);
  model.version.value;
  const state = model.state.value;
  const [now, setNow] = useState(Date.now());
  const running = state && !finished(state.run.status);
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(t);
  }, [running]);

  if (model.notFound.value)
    return (
      <div class="empty">
        <h2>No such run</h2>
        <p>
          <a href="/runs">All runs</a>
        </p>
      </div>
    );
  if (!state) return <div class="empty muted">{model.error.value ?? "Loading the run…"}</div>;
  const run = state.run;
  const selectedKey = search.value.get("agent");
  const selected = run.agents.find((a) => a.key === selectedKey) ?? null;
  const phases = phasesOf(run, now);
  const start = run.started_at ? Date.parse(run.started_at) : Date.parse(run.created_at);
  const end = run.finished_at ? Date.parse(run.finished_at) : now;
  const totalTokens = phases.reduce((n, p) => n + p.tokens, 0);
  const totalCost = phases.reduce((n, p) => n + p.cost_usd, 0);

  return (
    <div class={`run-layout${selected ? " with-agent" : ""}`}>
      <section class="pane run-pane" aria-label="Run">
        <header class="pane-head">
          <div>
            <h2>
              {run.name} <span class={`badge status-${run.status}`}>{run.status.replace("_", " ")}</span>{" "}
              <CapabilityBadges caps={run.options?.capabilities} />
            </h2>
            <div class="muted small">
              {run.source} · {run.started_at ? `started ${clock(run.started_at)} · ${duration(end - start)}` : `created ${clock(run.created_at)}`} ·{" "}
              {run.lease?.owner ? (
                <>
                  <span class="instance" title="The Baton instance that runs it">
                    {finished(run.status) ? "ran on" : "on"} {run.lease.owner}
                  </span>{" "}
                  ·{" "}
                </>
              ) : null}
              {tokens(totalTokens)} tokens · {usd(totalCost)}
              {state.budget ? ` · budget ${tokens(state.budget.spent)} / ${tokens(state.budget.total)}` : ""}
            </div>
          </div>
          <span class="spacer" />
          {run.status === "running" || run.status === "queued" ? (
            <button onClick={() => void model.control("pause")}>Pause</button>
          ) : null}
          {run.status === "paused" || run.status === "failed" || run.status === "cancelled" ? (
            <button onClick={() => void model.control("resume")}>Resume</button>
          ) : null}
          {!finished(run.status) && run.status !== "awaiting_approval" ? (
            <button class="danger" onClick={() => void model.control("cancel")}>
              Cancel
            </button>
          ) : null}
        </header>
        {model.error.value ? (
          <div class="banner error" role="alert">
            {model.error.value}
          </div>
        ) : null}
        <div class="run-body">
          {run.status === "awaiting_approval" ? <Approval model={model} /> : null}
          <table class="phases">
            <thead>
              <tr>
                <th>Phase</th>
                <th>Agents</th>
                <th>Tokens</th>
                <th>Cost</th>
                <th>Elapsed</th>
              </tr>
            </thead>
            <tbody>
              {phases.map((p) => {
                const total = Object.values(p.agents).reduce((a, b) => a + (b ?? 0), 0);
                return (
                  <tr key={p.title} data-phase={p.title}>
                    <td>{p.title || <span class="muted">(no phase)</span>}</td>
                    <td>
                      <div class="progress" title={`${p.agents.completed ?? 0} of ${total} done`}>
                        {(["completed", "failed", "cancelled", "running"] as const).map((s) =>
                          p.agents[s] ? (
                            <span key={s} class={`seg seg-${s}`} style={{ flex: p.agents[s] }} />
                          ) : null,
                        )}
                      </div>
                      <span class="counts">
                        {(["running", "completed", "failed", "cancelled"] as const).map((s) =>
                          p.agents[s] ? (
                            <span key={s} class={`count count-${s}`}>
                              {p.agents[s]} {s}
                            </span>
                          ) : null,
                        )}
                        {total === 0 ? <span class="muted">—</span> : null}
                      </span>
                    </td>
                    <td>{tokens(p.tokens)}</td>
                    <td>{usd(p.cost_usd)}</td>
                    <td>{p.elapsed_ms ? duration(p.elapsed_ms) : "—"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <h3>
            Agents <span class="muted">{Math.max(run.agents_total, run.agents.length)}</span>
          </h3>
          <AgentList
            agents={run.agents}
            start={start}
            end={end}
            selected={selectedKey}
            now={now}
            more={run.agents_next ? () => void model.moreAgents() : null}
          />
          <h3>Log</h3>
          <LogView lines={run.log} total={run.log_total} earlier={run.log_next ? () => void model.earlierLog() : null} />
          {run.error ? <div class="error-text">{run.error}</div> : null}
          {run.status === "completed" ? (
            <>
              <h3>Result</h3>
              <pre class="result">{pretty(run.result)}</pre>
            </>
          ) : null}
        </div>
      </section>
      {selected ? (
        <section class="pane side-pane" aria-label="Agent">
          <header class="pane-head">
            <div>
              <h2>{selected.label ?? selected.key.slice(0, 12)}</h2>
              <div class="muted small">
                {selected.phase ?? "(no phase)"} · {selected.status}
                {selected.cached ? " · cached from the journal" : ""}
              </div>
            </div>
            <span class="spacer" />
            <button class="link" onClick={() => setParam("agent", null)} aria-label="Close">
              ✕
            </button>
          </header>
          {selected.error ? <div class="error-text">{selected.error}</div> : null}
          {selected.session_id ? (
            <TraceTree model={model.tracesOf(selected.session_id)} scope={`session:${selected.session_id}`} />
          ) : (
            <p class="muted empty">This agent has no calls yet.</p>
          )}
        </section>
      ) : null}
    </div>
  );
}

function Approval({ model }: { model: RunModel }) {
  const run = model.state.value!.run;
  const o = run.options ?? {};
  return (
    <div class="card approval" role="region" aria-label="Approval">
      <h3>This run needs your approval</h3>
      {run.agents.length > 0 ? (
        <p class="gate">
          It started <b>{run.agents.length} agents</b> and would start more than runs may without approval. What it
          did so far is kept: approving goes on from there; denying cancels it.
        </p>
      ) : null}
      <p>
        {o.concurrency ? `${o.concurrency} agents at a time` : ""}
        {o.budget_tokens ? `, budget ${tokens(o.budget_tokens)} output tokens` : ""}. Its agents:{" "}
        <CapabilityBadges caps={o.capabilities} />
      </p>
      {o.phases?.length ? (
        <ol class="phase-list">
          {o.phases.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ol>
      ) : null}
      <details>
        <summary>Script</summary>
        <pre class="script">{run.script}</pre>
      </details>
      {run.args !== null && run.args !== undefined ? (
        <details>
          <summary>Arguments</summary>
          <pre>{pretty(run.args)}</pre>
        </details>
      ) : null}
      <div class="actions">
        <button class="primary" onClick={() => void model.control("approve")}>
          Approve
        </button>
        <button class="danger" onClick={() => void model.control("cancel")}>
          Deny
        </button>
      </div>
    </div>
  );
}

/** Agents as a virtualised list: a 1,000-agent run draws only what is in view. */
function AgentList(props: {
  agents: AgentView[];
  start: number;
  end: number;
  selected: string | null;
  now: number;
  /** Reads more agents; null when all are here. */
  more: (() => void) | null;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const height = Math.min(props.agents.length * ROW_HEIGHT, 420);
  const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - 6);
  const last = Math.min(props.agents.length, Math.ceil((top + height) / ROW_HEIGHT) + 6);
  // The next page is read while a screenful of rows is still ahead.
  useEffect(() => {
    if (props.more && last + 40 >= props.agents.length) props.more();
  }, [last, props.agents.length, props.more !== null]);
  if (props.agents.length === 0) return <p class="muted">No agent has started yet.</p>;
  return (
    <div class="agents" ref={box} style={{ height: `${height}px` }} onScroll={(e) => setTop((e.currentTarget as HTMLDivElement).scrollTop)}>
      <div style={{ height: `${props.agents.length * ROW_HEIGHT}px`, position: "relative" }}>
        {props.agents.slice(first, last).map((a, k) => {
          const s = Date.parse(a.started_at);
          const e = a.finished_at ? Date.parse(a.finished_at) : props.now;
          const b = bar(props.start, Math.max(props.end, e), s, e);
          return (
            <div
              key={a.key}
              class={`row agent${a.key === props.selected ? " selected" : ""}`}
              style={{ top: `${(first + k) * ROW_HEIGHT}px`, height: `${ROW_HEIGHT}px` }}
              data-agent={a.label ?? a.key}
              onClick={() => setParam("agent", a.key)}
            >
              <span class={`dot dot-${a.status}`} title={a.status} />
              <span class="name">{a.label ?? a.key.slice(0, 12)}</span>
              <span class="muted phase-name">{a.phase}</span>
              {a.cached ? <span class="badge cached">cached</span> : null}
              {a.holding ? (
                <span class="badge hold" title="Waiting for a sibling with the same prompt start to begin answering, to read its cache">
                  waiting for cache
                </span>
              ) : a.held_ms ? (
                <span class="muted small hold" title="Waited for a sibling's response to start, so it read that prompt from the cache">
                  held {duration(a.held_ms)}
                </span>
              ) : null}
              <span class="track">
                <span class={`bar bar-${a.status === "completed" ? "ok" : a.status === "running" ? "running" : "error"}`} style={{ left: `${b.left}%`, width: `${b.width}%` }} />
              </span>
              <span class="lat">{a.cached ? "—" : duration(e - s)}</span>
              <span class="muted tok">{tokens(a.input_tokens + a.output_tokens)}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}

/** The run's log, following new lines; earlier ones (beyond the newest 200 the view
 * carries) are read on request, above, without moving what is in view. */
function LogView({ lines, total, earlier }: { lines: string[]; total: number; earlier: (() => void) | null }) {
  const box = useRef<HTMLPreElement>(null);
  const height = useRef(0);
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [total]);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    // Lines put in above: keep the same lines in view.
    if (height.current && el.scrollHeight > height.current && el.scrollTop < 40) el.scrollTop += el.scrollHeight - height.current;
    height.current = el.scrollHeight;
  }, [lines.length]);
  if (lines.length === 0) return <p class="muted">Nothing logged yet.</p>;
  return (
    <>
      {earlier ? (
        <button class="link small" onClick={earlier}>
          earlier lines… <span class="muted">({total - lines.length} more)</span>
        </button>
      ) : null}
      <pre class="log" ref={box}>
        {lines.join("\n")}
      </pre>
    </>
  );
}
