import { describe, expect, it } from "vitest";
import { activeCount, applyTaskFrame, taskSeconds } from "./tasks";
import type { Frame, Task } from "../types";

function task(id: string, status: Task["status"], extra: Partial<Task> = {}): Task {
  return {
    id, status, label: id, prompt: "p", model: null, workspace: null,
    capabilities: { write: false, exec: false }, tools: null, parent_session_id: null, chat_id: null,
    depth: 0, session_id: null,
    progress: { turns: 0, tool_calls: 0, input_tokens: 0, output_tokens: 0, last_tool: null },
    result: null, error: null, created_at: "2026-11-25T10:00:00Z", started_at: null, finished_at: null,
    notified_at: null, lease: { owner: null, epoch: 0, expires_at: null }, ...extra,
  };
}

const frame = (type: Frame["type"], body: Record<string, unknown>): Frame =>
  ({ type, topic: "tasks", seq: 1, at: "", ...body }) as Frame;

describe("background tasks", () => {
  it("starts from the snapshot, newest first, and counts the active ones", () => {
    const { list } = applyTaskFrame([], frame("snapshot", { state: { tasks: [task("01a", "completed"), task("01c", "running"), task("01b", "queued")] } }));
    expect(list.map((t) => t.id)).toEqual(["01c", "01b", "01a"]);
    expect(activeCount(list)).toBe(2);
  });

  it("applies events in place and reports a task's end once", () => {
    let list = [task("01a", "running")];
    let r = applyTaskFrame(list, frame("task_event", { phase: "created", task: task("01b", "queued") }));
    expect(r.list.map((t) => t.id)).toEqual(["01b", "01a"]);
    expect(r.ended).toBeNull();
    list = r.list;
    r = applyTaskFrame(list, frame("task_event", { phase: "finished", task: task("01a", "completed", { result: "done" }) }));
    expect(r.ended?.id).toBe("01a");
    expect(r.list.find((t) => t.id === "01a")?.result).toBe("done");
    // The same end again (a replayed frame) is not a second end.
    const again = applyTaskFrame(r.list, frame("task_event", { phase: "finished", task: task("01a", "completed") }));
    expect(again.ended).toBeNull();
    // A late "started" does not bring a finished task back.
    const late = applyTaskFrame(r.list, frame("task_event", { phase: "started", task: task("01a", "running") }));
    expect(late.list.find((t) => t.id === "01a")?.status).toBe("completed");
    expect(activeCount(late.list)).toBe(1);
  });

  it("ignores what is not about tasks", () => {
    const list = [task("01a", "running")];
    expect(applyTaskFrame(list, frame("tool_trace", {})).list).toBe(list);
    expect(applyTaskFrame(list, frame("snapshot", { reset: false, state: { run: null } })).list).toBe(list);
  });

  it("measures a task from its start", () => {
    const t = task("01a", "running", { started_at: "2026-11-25T10:00:00Z" });
    expect(taskSeconds(t, Date.parse("2026-11-25T10:00:05Z"))).toBe(5);
    expect(taskSeconds(task("01b", "queued"), 0)).toBeNull();
  });
});
