// Images attached in the composer: what may be attached, each one's upload state, and
// stepping through a message's images in the lightbox.

/** What the server accepts; it reads the kind from the bytes, so this only saves a
 * round trip for files that are plainly not images. */
export const ACCEPTED = ["image/png", "image/jpeg", "image/gif", "image/webp"];

export interface Draft {
  /** Local key until the upload answers, then the same key. */
  key: string;
  name: string;
  state: "uploading" | "ready";
  /** The attachment's id once uploaded. */
  id: string | null;
}

/** Files of a drop, a paste or the picker; `rejected` names the ones that are not images. */
export function pick(files: ArrayLike<File>): { images: File[]; rejected: string[] } {
  const images: File[] = [];
  const rejected: string[] = [];
  for (const f of Array.from(files)) {
    if (f.type === "" || ACCEPTED.includes(f.type) || f.type.startsWith("image/")) images.push(f);
    else rejected.push(f.name || "pasted item");
  }
  return { images, rejected };
}

export function added(list: Draft[], key: string, name: string): Draft[] {
  return [...list, { key, name, state: "uploading", id: null }];
}

export function uploaded(list: Draft[], key: string, id: string): Draft[] {
  // The same bytes answer the same id: one of them is enough.
  if (list.some((d) => d.id === id)) return list.filter((d) => d.key !== key);
  return list.map((d) => (d.key === key ? { ...d, state: "ready", id } : d));
}

export function removed(list: Draft[], key: string): Draft[] {
  return list.filter((d) => d.key !== key);
}

export const readyIds = (list: Draft[]) => list.filter((d) => d.state === "ready" && d.id).map((d) => d.id as string);
export const uploading = (list: Draft[]) => list.some((d) => d.state === "uploading");

/** The lightbox's next index for `key` over `count` images; `null` closes it. */
export function step(index: number, count: number, key: string): number | null | undefined {
  if (key === "Escape") return null;
  if (key === "ArrowRight") return (index + 1) % count;
  if (key === "ArrowLeft") return (index - 1 + count) % count;
  return undefined;
}

/** How an upload refused by the server reads at the composer. */
export function uploadError(name: string, code: string, message: string): string {
  if (code === "payload_too_large") return `${name} is too large: ${message}`;
  return `${name}: ${message}`;
}
