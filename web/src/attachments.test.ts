import { describe, expect, it } from "vitest";
import { added, pick, readyIds, removed, step, uploaded, uploading } from "./attachments";

const file = (name: string, type: string) => new File([new Uint8Array([1, 2, 3])], name, { type });

describe("attachments in the composer", () => {
  it("takes images and names what is not one", () => {
    const { images, rejected } = pick([file("a.png", "image/png"), file("notes.txt", "text/plain"), file("b.jpg", "image/jpeg")]);
    expect(images.map((f) => f.name)).toEqual(["a.png", "b.jpg"]);
    expect(rejected).toEqual(["notes.txt"]);
  });

  it("tracks uploads until they are ready, and keeps one of the same bytes", () => {
    let l = added([], "k1", "a.png");
    l = added(l, "k2", "b.png");
    expect(uploading(l)).toBe(true);
    expect(readyIds(l)).toEqual([]);
    l = uploaded(l, "k1", "id-a");
    l = uploaded(l, "k2", "id-a");
    expect(l.map((d) => d.key)).toEqual(["k1"]);
    expect(uploading(l)).toBe(false);
    l = added(l, "k3", "c.png");
    l = uploaded(l, "k3", "id-c");
    expect(readyIds(l)).toEqual(["id-a", "id-c"]);
    expect(readyIds(removed(l, "k1"))).toEqual(["id-c"]);
  });

  it("steps through a message's images with the arrow keys and closes on Escape", () => {
    expect(step(0, 3, "ArrowRight")).toBe(1);
    expect(step(2, 3, "ArrowRight")).toBe(0);
    expect(step(0, 3, "ArrowLeft")).toBe(2);
    expect(step(1, 3, "Escape")).toBeNull();
    expect(step(1, 3, "a")).toBeUndefined();
  });
});
