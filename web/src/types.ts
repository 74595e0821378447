// The server's JSON shapes, as the web app reads them (see GET /api/openapi.json).

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Capabilities {
  write: boolean;
  exec: boolean;
}

export interface Chat {
  id: string;
  title: string;
  workspace: string | null;
  capabilities: Capabilities;
  /** Whether a finished background task's notice wakes the chat's agent. */
  auto_continue: boolean;
  created_at: string;
  updated_at: string;
}

/** An image attached to a chat (`POST /api/attachments`). */
export interface Attachment {
  id: string;
  mime: string;
  size: number;
  sha256: string;
  width: number;
  height: number;
  created_at: string;
}

export interface Message {
  id: string;
  chat_id: string;
  /** `notice`: told by Baton, not typed: a background task ended. */
  role: "user" | "assistant" | "notice";
  content: string;
  attachments: string[];
  turn_number: number;
  created_at: string;
  /** The background task a notice tells of. */
  task_id: string | null;
}

export type Outcome = "running" | "ok" | "error" | "cancelled" | "timeout";

export interface Trace {
  id: string;
  session_id: string | null;
  chat_id: string | null;
  run_id: string | null;
  parent_id: string | null;
  turn_number: number;
  kind: "llm" | "tool";
  tool_name: string;
  input: unknown;
  output: unknown;
  started_at: string;
  finished_at: string | null;
  latency_ms: number | null;
  tokens_used: number | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_tokens: number | null;
  cache_write_tokens: number | null;
  reasoning_tokens: number | null;
  cost_usd: number | null;
  error: string | null;
  outcome: Outcome;
  meta: Record<string, unknown>;
}

export type SessionStatus = "idle" | "running" | "awaiting_input" | "completed" | "failed" | "cancelled";

export interface TurnSummary {
  turn_number: number;
  started_at: string;
  finished_at: string | null;
  tool_count: number;
  input_tokens: number;
  output_tokens: number;
  cache_tokens: number;
  cache_hit_rate: number;
  cost_usd: number;
}

/** The session as frames carry it (no history). */
export interface SessionSummary {
  id: string;
  chat_id: string | null;
  run_id: string | null;
  status: SessionStatus;
  model: string;
  turn_number: number;
  error: string | null;
  cost_usd?: number;
  updated_at?: string;
  /** The session's totals so far (in `session_state` frames and the REST view). */
  usage?: SessionUsage;
}

/** Tokens a session used so far, all its turns together. */
export interface SessionUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
}

/** A session without its history; its turns are paged (`GET /api/sessions/:id/turns`). */
export interface SessionView extends SessionSummary {
  usage: SessionUsage;
  cost_usd: number;
  tool_calls_used: number;
  workspace: string;
}

export type RunStatus =
  | "awaiting_approval"
  | "queued"
  | "running"
  | "paused"
  | "completed"
  | "failed"
  | "cancelled";

export type AgentStatus = "running" | "completed" | "failed" | "cancelled";

export interface AgentView {
  key: string;
  label: string | null;
  phase: string | null;
  status: AgentStatus;
  session_id: string | null;
  cached: boolean;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number;
  started_at: string;
  finished_at: string | null;
  error: string | null;
  /** Live only: waiting for a sibling's response to start, to read its cache. */
  holding?: boolean;
  /** Live only: how long it waited. */
  held_ms?: number;
}

export interface PhaseView {
  title: string;
  agents: Partial<Record<AgentStatus, number>>;
  tokens: number;
  cost_usd: number;
  elapsed_ms: number;
}

export interface RunOptions {
  budget_tokens?: number | null;
  concurrency?: number;
  workspace?: string | null;
  capabilities?: Capabilities;
  projected_agents?: number;
  projected_tokens?: number;
  phases?: string[];
}

export interface Run {
  id: string;
  name: string;
  status: RunStatus;
  source: string;
  script: string;
  args: unknown;
  options: RunOptions;
  result: unknown;
  error: string | null;
  totals: { input_tokens?: number; output_tokens?: number; cost_usd?: number; agents?: number };
  log: string[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** The instance that runs it (or ran it), and until when its claim holds. */
  lease: Lease;
}

export interface Lease {
  owner: string | null;
  epoch: number;
  expires_at: string | null;
}

export interface RunView extends Run {
  phases: PhaseView[];
  agents: AgentView[];
}

export interface Definition {
  name: string;
  description: string;
  source: "builtin" | "project" | "personal" | "inline";
  path: string | null;
  phases: string[];
  script: string;
  /** Why a saved script cannot run, and where; null when it can. */
  error: { message: string; line: number | null; column: number | null } | null;
}

/** A frame from /ws. `seq` is null for frames about the connection itself. */
export interface Frame {
  type: string;
  topic: string | null;
  seq: number | null;
  at: string;
  [field: string]: unknown;
}

export type TaskStatus = "queued" | "running" | "completed" | "failed" | "cancelled";

export interface TaskProgress {
  turns: number;
  tool_calls: number;
  input_tokens: number;
  output_tokens: number;
  last_tool: string | null;
}

/** A background agent (`GET /api/tasks/:id`). */
export interface Task {
  id: string;
  status: TaskStatus;
  label: string | null;
  prompt: string;
  model: string | null;
  workspace: string | null;
  capabilities: Capabilities;
  tools: string[] | null;
  parent_session_id: string | null;
  chat_id: string | null;
  depth: number;
  session_id: string | null;
  progress: TaskProgress;
  result: string | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  notified_at: string | null;
  lease: Lease;
}
