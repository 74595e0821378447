// The Background pane: every background task, live, with its result and its traces.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api } from "../api";
import { duration, tokens } from "../format";
import { search, setParam } from "../router";
import { finishedStatus, taskSeconds } from "../models/tasks";
import type { Task, TaskStatus } from "../types";
import { CapabilityBadges } from "./Capabilities";
import { tasks } from "../models/tasksModel";
import { TraceModel } from "../models/traceModel";
import { TraceTree } from "./TraceTree";

const FILTERS: (TaskStatus | "all")[] = ["all", "running", "queued", "completed", "failed", "cancelled"];

export function BackgroundPage() {
  const filter = (search.value.get("status") as TaskStatus | null) ?? null;
  const selectedId = search.value.get("task");
  const [now, setNow] = useState(Date.now());
  const [error, setError] = useState<string | null>(null);
  const list = tasks.value;
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const shown = filter ? list.filter((t) => t.status === filter) : list;
  const selected = list.find((t) => t.id === selectedId) ?? null;
  const cancel = async (t: Task) => {
    setError(null);
    try {
      await api.cancelTask(t.id);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div class="run-layout">
      <section class="pane wide" aria-label="Background">
        <header class="pane-head">
          <h2>Background tasks</h2>
          <span class="spacer" />
          <div class="filters" role="group" aria-label="Filter by status">
            {FILTERS.map((f) => (
              <button
                key={f}
                class={`link ${(filter ?? "all") === f ? "active" : ""}`}
                aria-pressed={(filter ?? "all") === f}
                onClick={() => setParam("status", f === "all" ? null : f)}
              >
                {f}
              </button>
            ))}
          </div>
        </header>
        {error ? (
          <div class="banner error" role="alert">
            {error}
          </div>
        ) : null}
        {shown.length === 0 ? (
          <p class="muted empty">
            {list.length === 0
              ? "No background tasks yet. An agent starts one with spawn_subagent; you can with POST /api/tasks or `baton spawn`."
              : "No tasks with this status."}
          </p>
        ) : (
          <table class="runs tasks">
            <tbody>
              {shown.map((t) => {
                const secs = taskSeconds(t, now);
                return (
                  <tr key={t.id} class={`task-row ${t.id === selectedId ? "selected" : ""}`} data-task={t.id}>
                    <td>
                      <button class="link" onClick={() => setParam("task", t.id)}>
                        {t.label ?? t.prompt.slice(0, 60)}
                      </button>
                    </td>
                    <td>
                      <span class={`badge status-${t.status}`}>{t.status}</span>
                    </td>
                    <td class="muted">{t.model ?? "default model"}</td>
                    <td class="muted">{secs === null ? "–" : duration(secs * 1000)}</td>
                    <td class="muted">{tokens(t.progress.input_tokens + t.progress.output_tokens)} tokens</td>
                    <td>
                      {finishedStatus(t.status) ? null : (
                        <button class="danger small" onClick={() => void cancel(t)}>
                          Cancel
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </section>
      {selected ? <TaskDetail task={selected} key={`${selected.id}:${selected.status}`} /> : null}
    </div>
  );
}

function TaskDetail({ task }: { task: Task }) {
  // Read again when it changes status: a finished task's last calls are then all there.
  const model = useMemo(
    () => (task.session_id ? new TraceModel((cursor) => api.sessionTraces(task.session_id!, cursor)) : null),
    [task.session_id, task.status],
  );
  return (
    <section class="pane side-pane" aria-label="Task">
      <header class="pane-head">
        <div>
          <h2>
            {task.label ?? "task"} <CapabilityBadges caps={task.capabilities} />
          </h2>
          <div class="muted small">
            {task.status} · {task.progress.turns} turns · {task.progress.tool_calls} tool calls
            {task.progress.last_tool ? ` · last: ${task.progress.last_tool}` : ""}
            {task.lease.owner ? ` · on ${task.lease.owner}` : ""}
          </div>
        </div>
        <span class="spacer" />
        <button class="link" onClick={() => setParam("task", null)} aria-label="Close">
          ✕
        </button>
      </header>
      <details>
        <summary>Prompt</summary>
        <pre>{task.prompt}</pre>
      </details>
      {task.result !== null ? (
        <>
          <h3>Result</h3>
          <pre class="result task-result">{task.result}</pre>
        </>
      ) : null}
      {task.error ? <div class="error-text">{task.error}</div> : null}
      {model && task.session_id ? (
        <TraceTree model={model} scope={`session:${task.session_id}`} />
      ) : (
        <p class="muted empty">Not started yet.</p>
      )}
    </section>
  );
}
