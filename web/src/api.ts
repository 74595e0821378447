import type { TraceQuery } from "./traces";
// REST calls. Errors arrive as {"error":{"code","message"}}; they become ApiError.
import type { AgentView, Attachment, Chat, Definition, Message, Page, Run, RunView, SessionView, Task, Trace, TurnSummary } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "baton.token";

/** The bearer token: `?token=` on the page's address wins and is remembered. */
export function token(): string | null {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    return fromUrl;
  }
  return localStorage.getItem(TOKEN_KEY);
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  const form = body instanceof FormData;
  // A form sets its own multipart type, with the boundary.
  if (body !== undefined && !form) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : form ? body : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "offline", `the server cannot be reached (${String(e)})`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(res.status, err?.code ?? "http_error", err?.message ?? `${res.status} ${res.statusText}`);
  }
  return json as T;
}

const q = (params: Record<string, string | number | null | undefined>) => {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) s.set(k, String(v));
  const out = s.toString();
  return out ? `?${out}` : "";
};

const id = encodeURIComponent;

export const api = {
  chats: (cursor?: string | null) => call<Page<Chat>>("GET", `/chats${q({ limit: 100, cursor })}`),
  chat: (chat: string) => call<Chat>("GET", `/chats/${id(chat)}`),
  createChat: (title: string | null, workspace: string | null, capabilities?: { write: boolean; exec: boolean }) =>
    call<Chat>("POST", "/chats", { title: title || undefined, workspace: workspace || undefined, capabilities }),
  updateChat: (chat: string, change: { title?: string; auto_continue?: boolean }) =>
    call<Chat>("PATCH", `/chats/${id(chat)}`, change),
  messages: (chat: string) => call<Page<Message>>("GET", `/chats/${id(chat)}/messages`),
  /** The newest `limit` messages, or those before message `before`; `next_cursor` is the
   * `before` of the page older still. */
  messagesPage: (chat: string, limit: number, before?: string | null) =>
    call<Page<Message>>("GET", `/chats/${id(chat)}/messages${q({ limit, before })}`),
  post: (chat: string, content: string, attachments: string[] = []) =>
    call<{ message_id: string; session_id: string }>("POST", `/chats/${id(chat)}/messages`, {
      content,
      attachments: attachments.length ? attachments : undefined,
    }),
  upload: (file: Blob, name: string) => {
    const form = new FormData();
    form.append("file", file, name);
    return call<Attachment>("POST", "/attachments", form);
  },
  chatTraces: (chat: string, cursor: string | null, limit = 500, find: TraceQuery = {}) =>
    call<Page<Trace>>("GET", `/chats/${id(chat)}/traces${q({ limit, cursor, ...find })}`),
  sessionTraces: (session: string, cursor: string | null, limit = 500) =>
    call<Page<Trace>>("GET", `/sessions/${id(session)}/traces${q({ limit, cursor })}`),
  sessions: (chat: string) => call<Page<SessionView>>("GET", `/chats/${id(chat)}/sessions`),
  turns: (session: string, cursor: string | null, limit = 200) =>
    call<Page<TurnSummary>>("GET", `/sessions/${id(session)}/turns${q({ limit, cursor })}`),
  cancelSession: (session: string) => call<unknown>("POST", `/sessions/${id(session)}/cancel`),
  workflows: () => call<Page<Definition>>("GET", "/workflows"),
  workflow: (name: string) => call<Definition>("GET", `/workflows/${id(name)}`),
  startRun: (name: string, body: { args?: unknown; workspace?: string; budget_tokens?: number }) =>
    call<{ run_id: string; status: string }>("POST", `/workflows/${id(name)}/runs`, body),
  runs: (cursor?: string | null) => call<Page<Run>>("GET", `/runs${q({ limit: 50, cursor })}`),
  run: (run: string) => call<RunView>("GET", `/runs/${id(run)}`),
  /** A run's log lines before line `cursor` (its `log_next`, then each page's). */
  runLog: (run: string, cursor: string, limit = 500) =>
    call<Page<string>>("GET", `/runs/${id(run)}/log?limit=${limit}&cursor=${encodeURIComponent(cursor)}`),
  /** A run's agents after `cursor` (its `agents_next`, then each page's), in start order. */
  runAgents: (run: string, cursor: string, limit = 500) =>
    call<Page<AgentView>>("GET", `/runs/${id(run)}/agents?limit=${limit}&cursor=${encodeURIComponent(cursor)}`),
  tasks: (status: string | null, cursor?: string | null) => call<Page<Task>>("GET", `/tasks${q({ status, limit: 100, cursor })}`),
  task: (task: string) => call<Task>("GET", `/tasks/${id(task)}`),
  cancelTask: (task: string) => call<Task>("POST", `/tasks/${id(task)}/cancel`),
  control: (run: string, action: "approve" | "cancel" | "pause" | "resume") =>
    call<Run>("POST", `/runs/${id(run)}/${action}`, action === "resume" ? {} : undefined),
};

/** Where an attachment's bytes (or thumbnail) are served. */
export const attachmentPath = (attachment: string, thumbnail = false) =>
  `/api/attachments/${id(attachment)}${thumbnail ? "/thumbnail" : ""}`;
