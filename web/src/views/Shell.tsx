// The frame around every page: navigation, the chat list, the connection indicator.
import { signal } from "@preact/signals";
import { useEffect, useState } from "preact/hooks";
import { api } from "../api";
import { link, live } from "../app";
import { navigate, route } from "../router";
import { activeCount } from "../models/tasks";
import type { Chat } from "../types";
import { dismiss, tasks, toasts, watchTasks } from "../models/tasksModel";

export const chats = signal<Chat[]>([]);

export async function refreshChats() {
  try {
    chats.value = (await api.chats()).items;
  } catch {
    /* shown as empty; the connection indicator says why */
  }
}

export function Shell({ children }: { children: preact.ComponentChildren }) {
  useEffect(() => {
    void refreshChats();
    watchTasks();
  }, []);
  const r = route.value;
  const active = activeCount(tasks.value);
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="/">
          Baton
        </a>
        <nav>
          <a href="/" class={r.page === "home" || r.page === "chat" ? "active" : ""}>
            Chats
          </a>
          <a href="/workflows" class={r.page === "workflows" ? "active" : ""}>
            Workflows
          </a>
          <a href="/runs" class={r.page === "runs" || r.page === "run" ? "active" : ""}>
            Runs
          </a>
          <a href="/tasks" class={r.page === "tasks" ? "active" : ""}>
            Background
            {active > 0 ? (
              <span class="count-badge" aria-label={`${active} running`} data-count={active}>
                {active}
              </span>
            ) : null}
          </a>
        </nav>
        <span class="spacer" />
        <Connection />
      </header>
      <aside class="side">
        <button class="primary new-chat" onClick={() => navigate("/")}>
          New chat
        </button>
        <ul class="chat-list" aria-label="Chats">
          {chats.value.map((c) => (
            <li key={c.id}>
              <a href={`/chats/${c.id}`} class={r.page === "chat" && r.id === c.id ? "active" : ""}>
                {c.title}
              </a>
            </li>
          ))}
        </ul>
      </aside>
      <main class="main">{children}</main>
      <Toasts />
    </div>
  );
}

/** A note for each task that ended while the page was open, with the way to its result. */
function Toasts() {
  const list = toasts.value;
  if (list.length === 0) return null;
  return (
    <div class="toasts" role="status" aria-live="polite">
      {list.map((t) => (
        <div key={t.id} class={`toast status-${t.status}`} data-task={t.id}>
          <span>
            Background task <b>{t.label ?? "task"}</b> {t.status}
          </span>
          <a
            href={`/tasks?task=${t.id}`}
            onClick={() => dismiss(t.id)}
          >
            View result
          </a>
          <button class="link" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
            ✕
          </button>
        </div>
      ))}
    </div>
  );
}

function Connection() {
  const state = link.value;
  const [, tick] = useState(0);
  useEffect(() => {
    if (state !== "offline") return;
    const t = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(t);
  }, [state]);
  const label = state === "open" ? "live" : state === "connecting" ? "connecting…" : `offline · retrying (attempt ${live.attempt})`;
  return (
    <span class={`conn conn-${state}`} role="status" aria-live="polite" data-state={state}>
      <span class="conn-dot" />
      {label}
    </span>
  );
}

export function Home() {
  const [title, setTitle] = useState("");
  const [workspace, setWorkspace] = useState("");
  const [write, setWrite] = useState(false);
  const [exec, setExec] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const create = async () => {
    setBusy(true);
    setError(null);
    try {
      const chat = await api.createChat(title.trim() || null, workspace.trim() || null, { write, exec });
      await refreshChats();
      navigate(`/chats/${chat.id}`);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setBusy(false);
    }
  };
  return (
    <section class="pane wide home" aria-label="New chat">
      <h2>New chat</h2>
      <p class="muted">
        An agent that reads a folder. It may also write files and run commands there if you allow it below; the
        server allows that only for folders inside its <code>agents.workspace_roots</code>.
      </p>
      <form
        class="new-chat-form"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <label>
          Title
          <input value={title} placeholder="New chat" maxLength={200} onInput={(e) => setTitle((e.currentTarget as HTMLInputElement).value)} />
        </label>
        <label>
          Workspace folder
          <input
            value={workspace}
            placeholder="/path/to/a/project (the server's default when empty)"
            onInput={(e) => setWorkspace((e.currentTarget as HTMLInputElement).value)}
          />
        </label>
        <fieldset class="caps-choice">
          <legend>Beyond reading</legend>
          <label class="check">
            <input type="checkbox" checked={write} onChange={(e) => setWrite((e.currentTarget as HTMLInputElement).checked)} />
            Let the agent write and edit files
          </label>
          <label class="check">
            <input type="checkbox" checked={exec} onChange={(e) => setExec((e.currentTarget as HTMLInputElement).checked)} />
            Let the agent run shell commands
          </label>
        </fieldset>
        {error ? (
          <div class="banner error" role="alert">
            {error}
          </div>
        ) : null}
        <button class="primary" type="submit" disabled={busy}>
          Create chat
        </button>
      </form>
    </section>
  );
}
