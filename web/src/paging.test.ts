import { describe, expect, it } from "vitest";
import { Pager } from "./paging";

describe("Pager", () => {
  it("follows cursors to the end, one request at a time", async () => {
    const seen: (string | null)[] = [];
    const pager = new Pager<number>(async (cursor) => {
      seen.push(cursor);
      const start = cursor ? Number(cursor) : 0;
      const items = [start, start + 1];
      return { items, next_cursor: start + 2 < 5 ? String(start + 2) : null };
    });
    const a = pager.next();
    const b = pager.next(); // the same request, not a second one
    expect(await a).toEqual([0, 1]);
    expect(await b).toEqual([0, 1]);
    expect(await pager.next()).toEqual([2, 3]);
    expect(await pager.next()).toEqual([4, 5]);
    expect(pager.done).toBe(true);
    expect(await pager.next()).toEqual([]);
    expect(seen).toEqual([null, "2", "4"]);
  });

  it("asks for a failed page again", async () => {
    let fail = true;
    const seen: (string | null)[] = [];
    const pager = new Pager<number>(async (cursor) => {
      seen.push(cursor);
      if (cursor === "1" && fail) throw new Error("offline");
      return { items: [cursor ? 1 : 0], next_cursor: cursor ? null : "1" };
    });
    await pager.next();
    await expect(pager.next()).rejects.toThrow("offline");
    expect(pager.error).toBe("offline");
    fail = false;
    expect(await pager.next()).toEqual([1]);
    expect(seen).toEqual([null, "1", "1"]);
    expect(pager.done).toBe(true);
  });
});
