// Background tasks as the page keeps them: the `tasks` topic's snapshot (the newest tasks),
// then its `task_event` frames, each the whole task as it now is.
import type { Frame, Task, TaskStatus } from "../types";

export function finishedStatus(s: TaskStatus): boolean {
  return s === "completed" || s === "failed" || s === "cancelled";
}

/** The list after `frame`, newest first (ids are time-ordered), and the task that just
 * ended, if the frame says one did. Frames for other topics or types change nothing. */
export function applyTaskFrame(list: Task[], frame: Frame): { list: Task[]; ended: Task | null } {
  if (frame.type === "snapshot") {
    const state = frame.state;
    return { list: "tasks" in state ? sortNewest(state.tasks) : list, ended: null };
  }
  if (frame.type !== "task_event") return { list, ended: null };
  const task = frame.task;
  const before = list.find((t) => t.id === task.id);
  // A late frame never takes a finished task back.
  if (before && finishedStatus(before.status) && !finishedStatus(task.status)) return { list, ended: null };
  const next = sortNewest([task, ...list.filter((t) => t.id !== task.id)]);
  const ended = frame.phase === "finished" && !(before && finishedStatus(before.status)) ? task : null;
  return { list: next, ended };
}

function sortNewest(tasks: Task[]): Task[] {
  return [...tasks].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** Tasks queued or running: the number on the Background tab. */
export function activeCount(list: Task[]): number {
  return list.filter((t) => !finishedStatus(t.status)).length;
}

/** Seconds from start to end (or to `now` while running); null before it starts. */
export function taskSeconds(t: Task, now: number): number | null {
  if (!t.started_at) return null;
  const end = t.finished_at ? Date.parse(t.finished_at) : now;
  return Math.max(0, (end - Date.parse(t.started_at)) / 1000);
}
