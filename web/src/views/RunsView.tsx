import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { clock, tokens, usd } from "../format";
import type { Run } from "../types";

export function RunsPage() {
  const [runs, setRuns] = useState<Run[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const more = async (from: string | null) => {
    try {
      const page = await api.runs(from);
      setRuns((r) => (from ? [...r, ...page.items] : page.items));
      setCursor(page.next_cursor);
      setDone(!page.next_cursor);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  useEffect(() => {
    void more(null);
  }, []);
  return (
    <section class="pane wide" aria-label="Runs">
      <header class="pane-head">
        <h2>Runs</h2>
        <span class="spacer" />
        <a class="button" href="/workflows">
          Start a workflow
        </a>
      </header>
      {error ? <div class="banner error">{error}</div> : null}
      {runs.length === 0 && done ? <p class="muted empty">No runs yet.</p> : null}
      <table class="runs">
        <tbody>
          {runs.map((r) => (
            <tr key={r.id}>
              <td>
                <a href={`/runs/${r.id}`}>{r.name}</a>
              </td>
              <td>
                <span class={`badge status-${r.status}`}>{r.status.replace("_", " ")}</span>
              </td>
              <td class="muted">{clock(r.created_at)}</td>
              <td class="muted">{tokens((r.totals.input_tokens ?? 0) + (r.totals.output_tokens ?? 0))} tokens</td>
              <td class="muted">{usd(r.totals.cost_usd)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {!done && runs.length ? (
        <button class="link" onClick={() => void more(cursor)}>
          Older runs
        </button>
      ) : null}
    </section>
  );
}
