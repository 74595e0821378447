// The server's JSON shapes. They are generated from the Rust types through the OpenAPI
// document (`scripts/gen-types` writes src/generated/; CI fails when either side changes
// without the other): only names, and what the page adds of its own, are declared here.
import type { components } from "./generated/api";

type S = components["schemas"];

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export type Capabilities = S["Capabilities"];
export type Chat = S["Chat"];
export type Attachment = S["Attachment"];
export type Message = S["Message"];
export type Outcome = S["TraceOutcome"];
export type Trace = S["Trace"];
export type SessionStatus = S["SessionStatus"];
export type TurnSummary = S["TurnSummary"];
export type SessionUsage = S["SessionUsage"];
/** A session without its history; its turns are paged (`GET /api/sessions/:id/turns`). */
export type SessionView = S["SessionView"];
export type RunStatus = S["RunStatus"];
export type AgentStatus = S["AgentStatus"];
export type PhaseView = S["PhaseView"];
export type RunOptions = S["RunOptions"];
export type Run = S["Run"];
export type Lease = S["Lease"];
export type Definition = S["Definition"];
export type TaskStatus = S["TaskStatus"];
export type TaskProgress = S["TaskProgress"];
export type Task = S["Task"];

/** A frame from /ws; `seq` is null for frames about the connection itself. */
export type Frame = S["WireFrame"];
export type FrameOf<K extends Frame["type"]> = Extract<Frame, { type: K }>;
export type RunEvent = S["RunEvent"];
export type SnapshotState = S["SnapshotState"];
export type ClientMessage = S["ClientMessage"];

/** An agent as the run view shows it, with what only live frames tell. */
export type AgentView = S["AgentView"] & {
  /** Waiting for a sibling's response to start, to read its cache. */
  holding?: boolean;
  /** How long it waited. */
  held_ms?: number;
};

export type RunView = Omit<S["RunView"], "agents"> & { agents: AgentView[] };
