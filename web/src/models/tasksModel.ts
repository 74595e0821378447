// The background tasks every page shares: the Background pane's list, the tab's badge and
// the toasts, all from one subscription to the `tasks` topic.
import { signal } from "@preact/signals";
import { live } from "../app";
import { applyTaskFrame } from "./tasks";
import type { Task } from "../types";

export const tasks = signal<Task[]>([]);
/** Tasks that ended while the page was open, newest last; dismissed by the user. */
export const toasts = signal<Task[]>([]);

let watching = false;

export function watchTasks() {
  if (watching) return;
  watching = true;
  live.subscribe("tasks", (f) => {
    const { list, ended } = applyTaskFrame(tasks.value, f);
    if (list !== tasks.value) tasks.value = list;
    if (ended) toasts.value = [...toasts.value.filter((t) => t.id !== ended.id), ended].slice(-4);
  });
}

export function dismiss(id: string) {
  toasts.value = toasts.value.filter((t) => t.id !== id);
}
