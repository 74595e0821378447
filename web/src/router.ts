// Client-side routes. The server answers every non-API path with the app's page, so any of
// these addresses can be reloaded or shared.
import { signal } from "@preact/signals";

export type Route =
  | { page: "home" }
  | { page: "chat"; id: string }
  | { page: "workflows"; name: string | null }
  | { page: "runs" }
  | { page: "run"; id: string }
  | { page: "tasks" }
  | { page: "missing"; path: string };

export function parse(pathname: string): Route {
  const parts = pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { page: "home" };
  if (parts[0] === "chats" && parts.length === 2) return { page: "chat", id: parts[1] };
  if (parts[0] === "workflows" && parts.length <= 2) return { page: "workflows", name: parts[1] ?? null };
  if (parts[0] === "runs" && parts.length === 1) return { page: "runs" };
  if (parts[0] === "runs" && parts.length === 2) return { page: "run", id: parts[1] };
  if (parts[0] === "tasks" && parts.length === 1) return { page: "tasks" };
  return { page: "missing", path: pathname };
}

const inBrowser = typeof location !== "undefined";

export const route = signal<Route>(inBrowser ? parse(location.pathname) : { page: "home" });
/** The page's query string as a signal, for view state kept in the address (tab, selection). */
export const search = signal(new URLSearchParams(inBrowser ? location.search : ""));

export function navigate(to: string, replace = false) {
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  route.value = parse(location.pathname);
  search.value = new URLSearchParams(location.search);
}

/** Changes one query parameter without adding a history entry. */
export function setParam(key: string, value: string | null) {
  const params = new URLSearchParams(location.search);
  if (value === null) params.delete(key);
  else params.set(key, value);
  const qs = params.toString();
  history.replaceState(null, "", `${location.pathname}${qs ? `?${qs}` : ""}`);
  search.value = params;
}

if (inBrowser) {
  addEventListener("popstate", () => {
    route.value = parse(location.pathname);
    search.value = new URLSearchParams(location.search);
  });
}

/** Links handled in the page instead of reloading it. */
export function onLink(e: MouseEvent) {
  const a = (e.target as HTMLElement).closest("a");
  if (!a || a.target || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  const href = a.getAttribute("href");
  if (!href || !href.startsWith("/") || href.startsWith("/api")) return;
  e.preventDefault();
  navigate(href);
}
