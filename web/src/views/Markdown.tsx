// A model's answer as a sanitised document (see ../markdown.ts), with a copy button on
// each code block.
import { useEffect, useMemo, useRef } from "preact/hooks";
import { renderMarkdown } from "../markdown";

export function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    for (const pre of ref.current?.querySelectorAll("pre.code") ?? []) {
      if (pre.querySelector(".copy")) continue;
      const button = document.createElement("button");
      button.className = "copy link small";
      button.type = "button";
      button.textContent = "copy";
      button.setAttribute("aria-label", "Copy the code");
      button.onclick = () => {
        const code = pre.querySelector("code")?.textContent ?? "";
        void navigator.clipboard?.writeText(code).then(() => {
          button.textContent = "copied";
          setTimeout(() => (button.textContent = "copy"), 1500);
        });
      };
      pre.appendChild(button);
    }
  }, [html]);
  return <div class="msg-body md" ref={ref} dangerouslySetInnerHTML={{ __html: html }} />;
}
