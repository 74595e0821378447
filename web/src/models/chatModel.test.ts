import { describe, expect, it } from "vitest";
import type { Frame, Message, Trace } from "../types";
import { ChatModel } from "./chatModel";

const frame = (type: Frame["type"], fields: Record<string, unknown>, seq = 1): Frame =>
  ({ type, topic: "chat:c", seq, at: "2026-11-22T10:00:00Z", ...fields }) as Frame;

const message = (id: string, role: Message["role"], turn: number, content: string): Message => ({
  id,
  chat_id: "c",
  role,
  content,
  attachments: [],
  turn_number: turn,
  created_at: `2026-11-22T10:00:0${turn}Z`,
  task_id: null,
});

const trace = (outcome: Trace["outcome"]): Trace => ({
  id: "t1",
  session_id: "s",
  chat_id: "c",
  run_id: null,
  parent_id: null,
  turn_number: 1,
  kind: "llm",
  tool_name: "mock-1",
  input: {},
  output: outcome === "running" ? null : { text: "hi" },
  started_at: "2026-11-22T10:00:00Z",
  finished_at: outcome === "running" ? null : "2026-11-22T10:00:01Z",
  latency_ms: outcome === "running" ? null : 1000,
  tokens_used: null,
  input_tokens: 100,
  output_tokens: 10,
  cache_tokens: 50,
  cache_write_tokens: null,
  reasoning_tokens: null,
  cost_usd: null,
  error: null,
  outcome,
  meta: {},
});

describe("a chat built from its frames", () => {
  it("streams the answer in, starts over on a retried call, and settles on the message", () => {
    const chat = new ChatModel("c");
    chat.onFrame(frame("message", { message: message("u1", "user", 1, "hello?") }));
    chat.onFrame(frame("message_delta", { session_id: "s", turn_number: 1, text: "Hel" }));
    chat.onFrame(frame("message_delta", { session_id: "s", turn_number: 1, text: "lo" }));
    expect(chat.streaming.value?.text).toBe("Hello");
    // The provider call was retried: what streamed before is dropped.
    chat.onFrame(frame("message_delta", { session_id: "s", turn_number: 1, text: "Hi", restart: { attempt: 2 } }));
    expect(chat.streaming.value?.text).toBe("Hi");
    // A new turn's text does not append to the last turn's.
    chat.onFrame(frame("message_delta", { session_id: "s", turn_number: 2, text: "there" }));
    expect(chat.streaming.value).toEqual({ session: "s", turn: 2, text: "there" });
    const answer = message("a1", "assistant", 2, "Hi there");
    chat.onFrame(frame("message", { message: answer }));
    chat.onFrame(frame("message", { message: answer })); // replayed after a reconnect
    expect(chat.streaming.value).toBeNull();
    expect(chat.messages.value.map((m) => m.id)).toEqual(["u1", "a1"]);
  });

  it("keeps each call once, finished over running, whatever order its frames and pages come in", () => {
    const chat = new ChatModel("c");
    chat.onFrame(frame("tool_trace", { phase: "start", trace: trace("running") }));
    expect(chat.traces.set.get("t1")?.outcome).toBe("running");
    chat.onFrame(frame("tool_trace", { phase: "finish", trace: trace("ok") }));
    chat.traces.apply(trace("running")); // a page read before the finish, arriving after it
    expect(chat.traces.set.size).toBe(1);
    expect(chat.traces.set.get("t1")?.outcome).toBe("ok");
  });

  it("follows the session's state and shows a failed answer", () => {
    const chat = new ChatModel("c");
    chat.onFrame(frame("message_delta", { session_id: "s", turn_number: 1, text: "par" }));
    chat.onFrame(frame("session_state", { session: { id: "s", chat_id: "c", run_id: null, status: "failed", model: "m", turn_number: 1, error: "boom" } }));
    expect(chat.session.value?.status).toBe("failed");
    expect(chat.streaming.value).toBeNull();
    chat.onFrame(frame("error", { code: "agent_failed", message: "the model is down" }));
    expect(chat.error.value).toBe("the model is down");
    chat.error.value = null;
    chat.onFrame(frame("error", { code: "cancelled", message: "stopped" }));
    expect(chat.error.value).toBeNull();
  });

  it("takes the chat and session from a snapshot", () => {
    const chat = new ChatModel("c");
    chat.onFrame(
      frame("snapshot", {
        state: {
          chat: { id: "c", title: "T", workspace: "/w", capabilities: { write: false, exec: false }, created_at: "", updated_at: "" },
          session: { id: "s", chat_id: "c", run_id: null, status: "running", model: "m", turn_number: 3, error: null },
        },
      }),
    );
    expect(chat.chat.value?.title).toBe("T");
    expect(chat.session.value?.status).toBe("running");
  });
});

describe("reading after the snapshot", () => {
  it("shows what the snapshot covers even when an earlier read missed it", async () => {
    // The server: the question was stored after the page's first read but before the
    // snapshot, so its frame (seq <= the snapshot's) is never sent live.
    const stored: Message[] = [];
    const calls: string[] = [];
    const g = globalThis as Record<string, unknown>;
    g.location = { search: "" };
    g.localStorage = { getItem: () => null, setItem: () => {} };
    g.fetch = async (url: string) => {
      calls.push(url);
      const body = url.includes("/messages")
        ? { items: [...stored], next_cursor: null }
        : url.includes("/traces") || url.endsWith("/sessions")
          ? { items: [], next_cursor: null }
          : { id: "c", title: "T", workspace: null, capabilities: { write: false, exec: false }, created_at: "", updated_at: "" };
      return new Response(JSON.stringify(body), { status: 200 });
    };
    const chat = new ChatModel("c");
    await chat.load(false);
    expect(chat.messages.value).toEqual([]);
    stored.push(message("u1", "user", 1, "hello?"));
    chat.onFrame(frame("snapshot", { state: { chat: null, session: null } }, 7));
    await new Promise((r) => setTimeout(r, 20));
    expect(chat.messages.value.map((m) => m.id)).toEqual(["u1"]);
    // The traces were read again from the start, not continued from a stale cursor.
    expect(calls.filter((c) => c.includes("/traces")).every((c) => !c.includes("cursor"))).toBe(true);
  });
});
