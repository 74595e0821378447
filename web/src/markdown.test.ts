// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { renderMarkdown } from "./markdown";

function dom(html: string): HTMLElement {
  const el = document.createElement("div");
  el.innerHTML = html;
  return el;
}

describe("answers as documents", () => {
  it("render GitHub-flavoured Markdown with highlighted code", () => {
    const el = dom(
      renderMarkdown(
        "## Findings\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nSee [the docs](https://example.com/x).\n\n```rust\nfn main() {}\n```\n",
      ),
    );
    expect(el.querySelector("h2")?.textContent).toBe("Findings");
    expect(el.querySelectorAll("li").length).toBe(2);
    expect(el.querySelector("table td")?.textContent).toBe("1");
    const a = el.querySelector("a")!;
    expect(a.getAttribute("href")).toBe("https://example.com/x");
    expect(a.getAttribute("rel")).toBe("noopener noreferrer");
    const pre = el.querySelector("pre.code")!;
    expect(pre.getAttribute("data-lang")).toBe("rust");
    expect(pre.querySelector(".hljs-keyword")?.textContent).toBe("fn");
    expect(pre.textContent).toBe("fn main() {}");
  });

  it("run nothing a model writes", () => {
    const hostile = [
      "<img src=x onerror=alert(1)>",
      "<script>alert(1)</script>",
      "[click](javascript:alert(1))",
      '<a href="javascript:alert(1)">x</a>',
      '<a href="https://ok.example" onclick="alert(1)">ok</a>',
      '<svg onload="alert(1)"><circle/></svg>',
      '<iframe src="https://evil.example"></iframe>',
      '<form action="/api/chats"><input name=x></form>',
      '<div style="background:url(javascript:alert(1))">s</div>',
      "![pic](https://evil.example/track.png)",
    ].join("\n\n");
    const html = renderMarkdown(hostile);
    const el = dom(html);
    expect(html).not.toMatch(/onerror|onclick|onload|javascript:|<script|<iframe|<form|style=/i);
    expect(el.querySelectorAll("img").length).toBe(0);
    for (const a of el.querySelectorAll("a")) expect(a.getAttribute("href") ?? "").not.toMatch(/^javascript/i);
    expect(el.querySelector("a[href='https://ok.example']")?.textContent).toBe("ok");
  });

  it("allow images from the chat's own attachments only", () => {
    const id = "01a2141b-797c-76ad-9262-3eda4b92344e";
    const el = dom(renderMarkdown(`![ours](/api/attachments/${id}/thumbnail) ![theirs](//evil.example/x.png)`));
    const imgs = el.querySelectorAll("img");
    expect(imgs.length).toBe(1);
    expect(imgs[0].getAttribute("src")).toBe(`/api/attachments/${id}/thumbnail`);
  });
});
