// Attached images: thumbnails in messages and the composer, and the lightbox that shows
// one full size (Esc closes it, ← and → step through the message's images).
import { useEffect, useRef, useState } from "preact/hooks";
import { attachmentPath, token } from "../api";
import { step } from "../attachments";

/** The image at `path`: straight from the server, or — when the server wants a bearer
 * token, which an <img> cannot send — fetched with it into an object URL. */
function useImageSrc(path: string): string | null {
  const [src, setSrc] = useState<string | null>(() => (token() ? null : path));
  useEffect(() => {
    const t = token();
    if (!t) {
      setSrc(path);
      return;
    }
    let url: string | null = null;
    let gone = false;
    void fetch(path, { headers: { authorization: `Bearer ${t}` } })
      .then((r) => (r.ok ? r.blob() : null))
      .then((b) => {
        if (!b || gone) return;
        url = URL.createObjectURL(b);
        setSrc(url);
      });
    return () => {
      gone = true;
      if (url) URL.revokeObjectURL(url);
    };
  }, [path]);
  return src;
}

export function AttachmentImage({ id, thumbnail, alt }: { id: string; thumbnail: boolean; alt: string }) {
  const src = useImageSrc(attachmentPath(id, thumbnail));
  return src ? <img src={src} alt={alt} loading="lazy" decoding="async" /> : <span class="img-wait" aria-label={alt} />;
}

/** A message's images as thumbnails; a click opens the lightbox. */
export function MessageImages({ ids }: { ids: string[] }) {
  const [open, setOpen] = useState<number | null>(null);
  if (ids.length === 0) return null;
  return (
    <div class="msg-images">
      {ids.map((id, i) => (
        <button
          type="button"
          class="thumb"
          key={`${id}-${i}`}
          aria-label={`Open image ${i + 1} of ${ids.length}`}
          onClick={() => setOpen(i)}
        >
          <AttachmentImage id={id} thumbnail alt={`attached image ${i + 1}`} />
        </button>
      ))}
      {open !== null ? <Lightbox ids={ids} index={open} onIndex={setOpen} /> : null}
    </div>
  );
}

function Lightbox({ ids, index, onIndex }: { ids: string[]; index: number; onIndex: (i: number | null) => void }) {
  const close = useRef<HTMLButtonElement>(null);
  // Read by the key handler, which is set up once: a key pressed before the next render's
  // effects must step from the image shown, not from the one the handler was made with.
  const at = useRef(index);
  at.current = index;
  useEffect(() => {
    close.current?.focus();
    const onKey = (e: KeyboardEvent) => {
      const next = step(at.current, ids.length, e.key);
      if (next === undefined) return;
      e.preventDefault();
      at.current = next ?? at.current;
      onIndex(next);
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [ids.length, onIndex]);
  return (
    <div
      class="lightbox"
      role="dialog"
      aria-modal="true"
      aria-label={`Image ${index + 1} of ${ids.length}`}
      onClick={(e) => {
        if (e.target === e.currentTarget) onIndex(null);
      }}
    >
      <AttachmentImage id={ids[index]} thumbnail={false} alt={`image ${index + 1} of ${ids.length}`} />
      <div class="lightbox-bar">
        {ids.length > 1 ? (
          <button type="button" aria-label="Previous image" onClick={() => onIndex(step(index, ids.length, "ArrowLeft") ?? 0)}>
            ←
          </button>
        ) : null}
        <span class="small">
          {index + 1} / {ids.length}
        </span>
        {ids.length > 1 ? (
          <button type="button" aria-label="Next image" onClick={() => onIndex(step(index, ids.length, "ArrowRight") ?? 0)}>
            →
          </button>
        ) : null}
        <button type="button" ref={close} aria-label="Close" onClick={() => onIndex(null)}>
          ✕
        </button>
      </div>
    </div>
  );
}
