// Model answers as documents: GitHub-flavoured Markdown (marked), code highlighted
// (highlight.js, a few common languages), and everything sanitised (DOMPurify) — a model's
// text may contain any HTML, and none of it may run: no scripts, no event handlers, no
// `javascript:` links, no images except the chat's own attachments.
import DOMPurify from "dompurify";
import { Marked } from "marked";
import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import css from "highlight.js/lib/languages/css";
import diff from "highlight.js/lib/languages/diff";
import go from "highlight.js/lib/languages/go";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";

const languages = { bash, css, diff, go, javascript, json, python, rust, sql, typescript, xml, yaml };
for (const [name, lang] of Object.entries(languages)) hljs.registerLanguage(name, lang);
const aliases: Record<string, string> = { sh: "bash", shell: "bash", js: "javascript", ts: "typescript", py: "python", rs: "rust", html: "xml", yml: "yaml" };

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    code({ text, lang }) {
      const name = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      const known = aliases[name] ?? name;
      const body = known && hljs.getLanguage(known) ? hljs.highlight(text, { language: known }).value : escape(text);
      const label = known ? ` data-lang="${escape(known)}"` : "";
      return `<pre class="code"${label}><code class="hljs">${body}</code></pre>`;
    },
  },
});

/** Images may only come from this server's attachments. */
const ATTACHMENT = /^\/api\/attachments\/[0-9a-f-]+(\/thumbnail)?$/;

let hooked = false;
function hook(purify: typeof DOMPurify) {
  if (hooked) return;
  hooked = true;
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A") {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
    if (node.tagName === "IMG" && !ATTACHMENT.test(node.getAttribute("src") ?? "")) node.remove();
  });
}

/** `text` as safe HTML. */
export function renderMarkdown(text: string, purify: typeof DOMPurify = DOMPurify): string {
  hook(purify);
  const html = marked.parse(text, { async: false }) as string;
  return purify.sanitize(html, {
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|\/(?!\/)|#)/i,
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed"],
    FORBID_ATTR: ["style"],
  });
}
