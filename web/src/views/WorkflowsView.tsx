// The orchestrator's picker: definitions with their source, an args editor that checks JSON
// as you type, and a start button that leads to the run (or its approval card).
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { navigate } from "../router";
import type { Definition } from "../types";

/** The args text as JSON, or why it is not. Empty means no args. */
export function parseArgs(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  if (!text.trim()) return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

export function WorkflowsPage({ name }: { name: string | null }) {
  const [defs, setDefs] = useState<Definition[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api
      .workflows()
      .then((p) => setDefs(p.items))
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, []);
  const def = defs?.find((d) => d.name === name) ?? null;
  return (
    <div class="workflows-layout">
      <section class="pane picker" aria-label="Workflows">
        <header class="pane-head">
          <h2>Workflows</h2>
        </header>
        {error ? <div class="banner error">{error}</div> : null}
        {!defs ? <p class="muted empty">Loading…</p> : null}
        <ul class="defs">
          {defs?.map((d) => (
            <li key={d.name} class={d.error ? "broken" : undefined}>
              <a href={`/workflows/${encodeURIComponent(d.name)}`} class={d.name === name ? "active" : ""}>
                <span class="def-name">{d.name}</span> <span class={`badge source-${d.source}`}>{d.source}</span>
                <span class="muted small def-desc">{d.error ? `cannot run: ${placeOf(d.error)}` : d.description}</span>
              </a>
            </li>
          ))}
        </ul>
      </section>
      <section class="pane" aria-label="Workflow">
        {def ? <StartForm def={def} key={def.name} /> : <p class="muted empty">Pick a workflow to run.</p>}
      </section>
    </div>
  );
}

function placeOf(e: NonNullable<Definition["error"]>): string {
  return e.line ? `line ${e.line}, column ${e.column ?? 1}` : e.message;
}

function StartForm({ def }: { def: Definition }) {
  const key = `baton.args.${def.name}`;
  const [args, setArgs] = useState(() => sessionStorage.getItem(key) ?? "");
  const [workspace, setWorkspace] = useState("");
  const [budget, setBudget] = useState("");
  const [starting, setStarting] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const parsed = parseArgs(args);
  const budgetOk = budget === "" || /^[1-9][0-9]*$/.test(budget);
  const start = async () => {
    if (!parsed.ok || !budgetOk) return;
    setStarting(true);
    setError(null);
    try {
      const r = await api.startRun(def.name, {
        args: parsed.value,
        workspace: workspace.trim() || undefined,
        budget_tokens: budget ? Number(budget) : undefined,
      });
      navigate(`/runs/${r.run_id}`);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setStarting(false);
    }
  };
  return (
    <div class="start-form">
      <header class="pane-head">
        <div>
          <h2>{def.name}</h2>
          <div class="muted small">
            {def.source}
            {def.path ? ` · ${def.path}` : ""}
          </div>
        </div>
      </header>
      <p>{def.description}</p>
      {def.error ? (
        <div class="banner error script-error" role="alert">
          This script cannot run: {def.error.message}
          {def.error.line ? ` (line ${def.error.line}, column ${def.error.column ?? 1})` : ""}. Fix the file and reload.
        </div>
      ) : null}
      {def.phases.length ? (
        <>
          <h3>Phases</h3>
          <ol class="phase-list">
            {def.phases.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ol>
        </>
      ) : null}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void start();
        }}
      >
        <label>
          Arguments (JSON)
          <textarea
            class={`args${parsed.ok ? "" : " invalid"}`}
            aria-label="Arguments (JSON)"
            aria-invalid={!parsed.ok}
            rows={6}
            placeholder='{"question": "…"}'
            value={args}
            onInput={(e) => {
              const v = (e.currentTarget as HTMLTextAreaElement).value;
              setArgs(v);
              sessionStorage.setItem(key, v);
            }}
          />
        </label>
        {!parsed.ok ? <div class="field-error">Not valid JSON: {parsed.error}</div> : null}
        <div class="row-fields">
          <label>
            Workspace folder
            <input value={workspace} placeholder="the server's default" onInput={(e) => setWorkspace((e.currentTarget as HTMLInputElement).value)} />
          </label>
          <label>
            Token budget
            <input
              value={budget}
              inputMode="numeric"
              placeholder="none"
              aria-invalid={!budgetOk}
              onInput={(e) => setBudget((e.currentTarget as HTMLInputElement).value.trim())}
            />
          </label>
        </div>
        {!budgetOk ? <div class="field-error">The budget is a whole number of tokens.</div> : null}
        {error ? (
          <div class="banner error" role="alert">
            {error}
          </div>
        ) : null}
        <button class="primary" type="submit" disabled={!parsed.ok || !budgetOk || starting || def.error !== null}>
          {starting ? "Starting…" : "Start run"}
        </button>
      </form>
      <details>
        <summary>Script</summary>
        <pre class="script">{def.script}</pre>
      </details>
    </div>
  );
}
