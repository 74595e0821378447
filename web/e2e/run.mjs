// End-to-end: a real Baton (SQLite, then Postgres), the scripted model server, and Debian's
// Chromium driven by playwright-core. Screenshots go to web/e2e/artifacts/ (CI keeps them);
// measured figures are printed at the end and written to artifacts/figures.json.
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer } from "node:http";
import { strict as assert } from "node:assert";
import { http, ROOT, start } from "./harness.mjs";

const ART = join(ROOT, "web", "e2e", "artifacts");
mkdirSync(ART, { recursive: true });
const backends = (process.env.BATON_E2E_BACKENDS ?? "sqlite,postgres").split(",").filter(Boolean);
const only = process.env.BATON_E2E_ONLY ?? "";
const figures = {};
const CHROMIUM = process.env.BATON_CHROMIUM ?? "/usr/bin/chromium";

const T = 30_000;

async function scenario(name, backend, f) {
  if (only && !name.includes(only)) return;
  const t0 = Date.now();
  process.stdout.write(`  ${backend} · ${name} … `);
  try {
    await f();
    console.log(`ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    console.log("FAILED");
    await current?.screenshot({ path: join(ART, `${backend}-FAILED.png`) }).catch(() => {});
    throw e;
  }
}

/** A page that fails the suite on any console error or uncaught exception, except the ones a
 * scenario expects (the browser reports refused WebSocket connections while offline). */
let current = null;

async function newPage(browser, opts = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...opts });
  const page = await context.newPage();
  current = page;
  page.errors = [];
  page.allow = [];
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (page.allow.some((re) => re.test(m.text()))) return;
    page.errors.push(m.text());
  });
  page.on("pageerror", (e) => page.errors.push(String(e)));
  return { context, page };
}

function clean(page) {
  assert.deepEqual(page.errors, [], `browser console errors: ${page.errors.join("\n")}`);
}

async function shot(page, backend, name) {
  await page.screenshot({ path: join(ART, `${backend}-${name}.png`) });
}

async function runBackend(browser, backend) {
  const srv = await start(backend);
  console.log(`${backend}: ${srv.base} (logs in ${srv.dir})`);
  try {
    let chatUrl;

    await scenario("chat: ask, watch traces live, refresh", backend, async () => {
      const { page, context } = await newPage(browser);
      await page.goto(srv.base);
      await page.getByLabel("Title").fill("Look around");
      await page.getByLabel("Workspace folder").fill(srv.ws);
      await page.getByRole("button", { name: "Create chat" }).click();
      await page.waitForURL(/\/chats\/[0-9a-f-]+$/);
      chatUrl = page.url();
      await page.getByLabel("Message").fill("What is in this folder?");
      await page.keyboard.press("Enter");
      // The model call appears as a running row, then the tool call it asked for.
      await page.locator(".row-trace .kind-llm").first().waitFor({ timeout: T });
      await page.locator('.row-trace:has-text("list_dir")').waitFor({ timeout: T });
      // The answer streams in (the demo model sends it slowly) and then settles.
      await page.locator(".msg.assistant.streaming").waitFor({ timeout: T });
      await shot(page, backend, "chat-streaming");
      // Refresh in the middle of the answer: the page comes back to the session in progress.
      await page.reload();
      await page.locator(".chat-pane .status-running").waitFor({ timeout: T });
      await page.locator('.msg.assistant:not(.streaming):has-text("I listed the workspace root")').waitFor({ timeout: T });
      await page.locator(".chat-pane .status-idle").waitFor({ timeout: T });
      await page.locator(".bar-running").waitFor({ state: "detached", timeout: T });
      const rows = await page.locator(".row-trace").count();
      assert.equal(rows, 3, "two model calls and one tool call");
      await page.locator(".tool-calls summary:has-text('1 tool call')").waitFor();
      await shot(page, backend, "chat-answered");

      // Expand a call with the keyboard and read its input.
      await page.locator(".tree").focus();
      await page.keyboard.press("ArrowDown");
      await page.keyboard.press("ArrowDown");
      await page.keyboard.press("Enter");
      await page.locator(".row-detail .io-title:has-text('input')").waitFor();
      await page.keyboard.press("ArrowDown");
      await page.keyboard.press("Enter");
      await page.locator('.row-detail pre:has-text("README.md")').waitFor();
      await shot(page, backend, "chat-trace-detail");

      // A refresh restores the same screen: messages, traces, expanded rows.
      await page.reload();
      await page.locator('.msg.assistant:has-text("I listed the workspace root")').waitFor({ timeout: T });
      await page.locator(".tree-status:has-text('3 calls')").waitFor({ timeout: T });
      await page.locator('.row-detail pre:has-text("README.md")').waitFor();
      await shot(page, backend, "chat-after-refresh");

      // The timeline lists the turns with their cache hit rate.
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.locator(".timeline-turn").first().waitFor();
      assert.equal(await page.locator(".timeline-turn").count(), 2);
      await page.reload();
      await page.locator(".timeline-turn").first().waitFor({ timeout: T });
      await page.locator(".timeline-turn").first().click();
      await shot(page, backend, "chat-timeline");
      clean(page);
      await context.close();
    });

    await scenario("never lose the view: offline, missed frames, recovery", backend, async () => {
      const { page, context } = await newPage(browser);
      page.allow.push(/WebSocket connection/i, /ERR_INTERNET_DISCONNECTED/);
      await page.goto(chatUrl);
      await page.locator('.msg.assistant:has-text("I listed the workspace root")').waitFor({ timeout: T });
      await page.locator('.conn[data-state="open"]').waitFor({ timeout: T });
      await context.setOffline(true);
      await page.evaluate(() => window.__baton.live.drop());
      await page.locator('.conn[data-state="offline"]').waitFor({ timeout: T });
      await shot(page, backend, "offline");
      // While the page is offline the chat goes on: its frames must be replayed on return.
      const chatId = chatUrl.split("/").pop();
      await http(srv.base, "POST", `/api/chats/${chatId}/messages`, { content: "And once more?" });
      const sessions = await waitForIdle(srv.base, chatId);
      assert.ok(sessions > 0);
      assert.equal(await page.locator(".msg.user:has-text('And once more?')").count(), 0);
      await context.setOffline(false);
      await page.locator('.conn[data-state="open"]').waitFor({ timeout: T });
      await page.locator(".msg.user:has-text('And once more?')").waitFor({ timeout: T });
      await page.locator(".msg.assistant").nth(1).waitFor({ timeout: T });
      await page.locator(".tree-status:has-text('6 calls')").waitFor({ timeout: T });
      await page.waitForTimeout(300);
      assert.match(await page.locator(".tree-status").innerText(), /^6 calls/, "the missed calls arrived once each");
      assert.equal(await page.locator(".msg").count(), 4);
      await shot(page, backend, "recovered");
      clean(page);
      await context.close();
    });

    await scenario("workflow: pick, validate args, approve, watch, drill into an agent", backend, async () => {
      const { page, context } = await newPage(browser, { viewport: { width: 1920, height: 1080 } });
      await page.goto(`${srv.base}/workflows`);
      await page.locator('.defs a:has-text("fanout")').click();
      await page.locator(".defs a:has-text('deep-research') .source-builtin").waitFor();
      await page.locator(".defs a:has-text('fanout') .source-project").waitFor();
      const args = page.getByLabel("Arguments (JSON)");
      await args.fill('{"items": [1, 2');
      await page.locator(".field-error:has-text('Not valid JSON')").waitFor();
      assert.equal(await page.getByRole("button", { name: "Start run" }).isDisabled(), true);
      const items = Array.from({ length: 30 }, (_, i) => `item-${i + 1}`);
      await args.fill(JSON.stringify({ items }));
      await page.getByRole("button", { name: "Start run" }).click();
      await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
      // It runs until its 26th agent, then waits for a person with what it did so far.
      await page.getByRole("region", { name: "Approval" }).waitFor({ timeout: T });
      const pending = await http(srv.base, "GET", `/api/runs/${page.url().split("/").pop()}`);
      assert.equal(pending.status, "awaiting_approval");
      assert.equal(pending.agents.filter((a) => a.status === "completed").length, 25);
      await page.locator(".approval .gate:has-text('25 agents')").waitFor();
      await page.locator(".approval .phase-list:has-text('Sum up')").waitFor();
      await shot(page, backend, "run-approval");
      await page.getByRole("button", { name: "Approve" }).click();
      await page.locator('.phases tr[data-phase="Ask"] .count-running').waitFor({ timeout: T });
      await shot(page, backend, "run-progress");
      await page.locator(".run-pane h2 .status-completed").waitFor({ timeout: 120_000 });
      await page.locator('.phases tr[data-phase="Ask"] .count-completed:has-text("30 completed")').waitFor();
      await page.locator('.phases tr[data-phase="Sum up"] .count-completed:has-text("1 completed")').waitFor();
      await page.locator(".log:has-text('asked 30 agents')").waitFor();
      await page.locator('.result:has-text("\\"answers\\": 30")').waitFor();
      // Which instance ran it (several may share one Postgres).
      const health = await http(srv.base, "GET", "/api/health");
      await page.locator(`.run-pane .instance:has-text('ran on ${health.instance}')`).waitFor();
      // Drill into an agent: its calls, from its own session.
      await page.locator('.row.agent[data-agent="item-1"]').click();
      await page.getByRole("region", { name: "Agent" }).locator(".row-trace .kind-llm").first().waitFor({ timeout: T });
      await page.getByRole("region", { name: "Agent" }).locator('.row-trace:has-text("list_dir")').waitFor();
      await shot(page, backend, "run-agent-traces");
      await page.reload();
      await page.getByRole("region", { name: "Agent" }).locator('.row-trace:has-text("list_dir")').waitFor({ timeout: T });
      clean(page);
      await context.close();
    });

    await scenario("workflow: pause, resume, cancel", backend, async () => {
      const { page, context } = await newPage(browser);
      const items = Array.from({ length: 40 }, (_, i) => `x-${i + 1}`);
      const { run_id } = await http(srv.base, "POST", "/api/workflows/fanout/runs", { args: { items }, auto_approve: true });
      await page.goto(`${srv.base}/runs/${run_id}`);
      await page.locator('.phases tr[data-phase="Ask"] .count-running').waitFor({ timeout: T });
      await page.getByRole("button", { name: "Pause" }).click();
      await page.locator(".run-pane h2 .status-paused").waitFor({ timeout: T });
      await page.getByRole("button", { name: "Resume" }).click();
      await page.locator(".run-pane h2 .status-running").waitFor({ timeout: T });
      // Refresh while it runs: the same run, still live.
      const before = Number((await page.locator('.phases tr[data-phase="Ask"] .count-completed').innerText().catch(() => "0")).split(" ")[0]) || 0;
      await page.reload();
      await page.locator(".run-pane h2 .status-running").waitFor({ timeout: T });
      await page.waitForFunction(
        (n) => {
          const el = document.querySelector('.phases tr[data-phase="Ask"] .count-completed');
          return el && Number(el.textContent.split(" ")[0]) > n;
        },
        before,
        { timeout: T },
      );
      await page.getByRole("button", { name: "Cancel" }).click();
      await page.locator(".run-pane h2 .status-cancelled").waitFor({ timeout: T });
      const run = await http(srv.base, "GET", `/api/runs/${run_id}`);
      assert.equal(run.status, "cancelled");
      assert.ok(run.agents.every((a) => a.status !== "running"), "nothing left running");
      await shot(page, backend, "run-cancelled");
      clean(page);
      await context.close();
    });

    await scenario("built-in workflow (deep-research) against the model, dark mode", backend, async () => {
      const { page, context } = await newPage(browser, { colorScheme: "dark" });
      await page.goto(`${srv.base}/workflows/deep-research`);
      await page.getByLabel("Arguments (JSON)").fill('{"question": "How does this project add numbers?", "angles": 2}');
      await page.getByRole("button", { name: "Start run" }).click();
      await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
      const run = await http(srv.base, "GET", `/api/runs/${page.url().split("/").pop()}`);
      if (run.status === "awaiting_approval") await page.getByRole("button", { name: "Approve" }).click();
      await page.locator(".run-pane h2 .status-completed").waitFor({ timeout: 120_000 });
      await page.locator('.phases tr[data-phase="Synthesize"] .count-completed').waitFor();
      // Every agent settled and the result read once the run finished.
      await page.locator(".result:has-text('{')").waitFor({ timeout: T });
      assert.equal(await page.locator(".row.agent .dot-running").count(), 0);
      await shot(page, backend, "builtin-deep-research-dark");
      clean(page);
      await context.close();
    });

    await scenario("10,000 traces: first paint, scrolling pages in", backend, async () => {
      const { page, context } = await newPage(browser);
      const times = [];
      for (let i = 0; i < 3; i++) {
        await page.goto(`${srv.base}/chats/${srv.seededChat}`);
        const key = `traces-painted:chat:${srv.seededChat}`;
        await page.waitForFunction((k) => window.__baton.marks[k] !== undefined, key, { timeout: T });
        times.push(await page.evaluate((k) => window.__baton.marks[k], key));
        await page.evaluate(() => sessionStorage.clear());
      }
      times.sort((a, b) => a - b);
      figures[`${backend}.first_paint_10k_traces_ms`] = Math.round(times[1]);
      // Scroll to the end again and again: pages come in until all 10,000 are there.
      const t0 = Date.now();
      for (let i = 0; i < 200; i++) {
        const text = await page.locator(".tree-status").innerText();
        if (text.startsWith("10000 calls") && !text.includes("load more")) break;
        await page.locator(".tree").evaluate((el) => (el.scrollTop = el.scrollHeight));
        await page.waitForTimeout(100);
      }
      assert.match(await page.locator(".tree-status").innerText(), /^10000 calls/);
      figures[`${backend}.page_in_10k_traces_ms`] = Date.now() - t0;
      await page.locator(".tree").evaluate((el) => (el.scrollTop = el.scrollHeight));
      await page.waitForTimeout(200);
      const drawn = await page.locator(".row").count();
      assert.ok(drawn < 120, `only the rows in view are drawn (${drawn})`);
      await page.locator('.row-turn:has-text("Turn 1000")').waitFor();
      await shot(page, backend, "10k-traces-end");
      // Finding calls among the 10,000: the server searches, the address keeps it.
      const ts = Date.now();
      await page.getByLabel("Search calls").fill("mock");
      await page.locator(".found-count:has-text('1000 found')").waitFor({ timeout: T });
      figures[`${backend}.search_10k_traces_ms`] = Date.now() - ts;
      assert.ok((await page.locator(".tree .row-trace .name:text-is('read_file')").count()) === 0, "only model calls match");
      await page.getByLabel("Status").selectOption("failed");
      await page.locator(".found-count:has-text('0 found')").waitFor({ timeout: T });
      await page.reload();
      await page.locator(".found-count:has-text('0 found')").waitFor({ timeout: T });
      assert.equal(await page.getByLabel("Search calls").inputValue(), "mock");
      await page.getByLabel("Status").selectOption("");
      await page.getByLabel("Kind").selectOption("tool");
      await page.getByLabel("Search calls").fill("");
      await page.waitForFunction(
        () => parseInt(document.querySelector(".found-count")?.textContent ?? "0", 10) >= 500,
        null,
        { timeout: T },
      );
      await page.getByLabel("Kind").selectOption("");
      await page.locator(".found-count").waitFor({ state: "detached", timeout: T });
      // The timeline of its 1,000 turns: read a page at a time, only rows in view drawn.
      const tl = Date.now();
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.locator(".timeline-turn").first().waitFor({ timeout: T });
      figures[`${backend}.timeline_first_rows_ms`] = Date.now() - tl;
      const shown = await page.locator(".timeline-turn").count();
      assert.ok(shown < 80, `only the turns in view are drawn (${shown})`);
      for (let i = 0; i < 100; i++) {
        if ((await page.locator('.timeline-turn:has-text("Turn 1000")').count()) > 0) break;
        await page.locator(".timeline").evaluate((el) => (el.scrollTop = el.scrollHeight));
        await page.waitForTimeout(100);
      }
      await page.locator('.timeline-turn:has-text("Turn 1000")').waitFor({ timeout: T });
      assert.ok((await page.locator(".timeline-turn").count()) < 80);
      // Its 200 messages: the newest page opens at the bottom, older ones come in above
      // as the top is reached, with what was in view kept in view.
      const tm = Date.now();
      await page.goto(`${srv.base}/chats/${srv.seededChat}`);
      await page.locator(".msg.user .msg-body:text-is('Question 100')").waitFor({ timeout: T });
      figures[`${backend}.newest_messages_ms`] = Date.now() - tm;
      const before = await page.locator(".msg").count();
      assert.ok(before <= 100, `one page of messages first (${before})`);
      // The newest page is the last 100 messages: questions 51 to 100, 51 on top.
      const topQuestion = "Question 51";
      const height = await page.locator(".messages").evaluate((el) => el.scrollHeight);
      await page.locator(".messages").evaluate((el) => (el.scrollTop = 0));
      // Older messages come in above (only those near the view are drawn).
      await page.waitForFunction((h) => document.querySelector(".messages").scrollHeight > h + 2000, height, { timeout: T });
      await page.waitForTimeout(300);
      const kept = page.locator(`.msg.user .msg-body:text-is('${topQuestion}')`);
      const inView = await kept.evaluate((el) => {
        const box = el.getBoundingClientRect();
        const pane = document.querySelector(".messages").getBoundingClientRect();
        return box.bottom > pane.top && box.top < pane.bottom;
      });
      assert.ok(inView, "the message at the top before stays in view");
      // From the timeline's first turn to its question, loading what lies between.
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.locator(".timeline-turn").first().click();
      await page.waitForFunction(
        () => {
          const q = [...document.querySelectorAll(".msg.user .msg-body")].find((e) => e.textContent === "Question 1");
          if (!q) return false;
          const box = q.getBoundingClientRect();
          const pane = document.querySelector(".messages").getBoundingClientRect();
          return box.top >= pane.top - 1 && box.bottom <= pane.bottom + 1;
        },
        null,
        { timeout: T },
      );
      assert.match(await page.locator(".session-foot").innerText(), /1\.20M input tokens/);
      const drawnMessages = await page.locator(".msg").count();
      assert.ok(drawnMessages < 60, `of the 200 messages, those near the view are drawn (${drawnMessages})`);
      await shot(page, backend, "10k-oldest-question");
      // Opened again, scrolled up by hand to the oldest question.
      await page.goto(`${srv.base}/chats/${srv.seededChat}`);
      await page.locator(".msg.user .msg-body:text-is('Question 100')").waitFor({ timeout: T });
      for (let i = 0; i < 100; i++) {
        if ((await page.locator(".msg.user .msg-body:text-is('Question 1')").count()) > 0) break;
        await page.locator(".messages").evaluate((el) => (el.scrollTop = 0));
        await page.waitForTimeout(100);
      }
      await page.locator(".msg.user .msg-body:text-is('Question 1')").waitFor({ timeout: T });
      // From a call to its question: the exchange is brought into view and marked.
      await page.getByRole("tab", { name: "Traces" }).click();
      const call = page.locator(".tree .row-trace").last();
      await call.click();
      await page.locator(".tree .show-in-chat").first().click();
      await page.locator(".messages .turn.flash").waitFor({ timeout: T });
      const flashed = await page.locator(".messages .turn.flash").evaluate((el) => {
        const box = el.getBoundingClientRect();
        const pane = el.closest(".messages").getBoundingClientRect();
        return box.top < pane.bottom && box.bottom > pane.top;
      });
      assert.ok(flashed, "the call's question is in view");
      clean(page);
      await context.close();
    });

    await scenario("1,000-agent run: the view keeps up", backend, async () => {
      const { page, context } = await newPage(browser);
      // 999 agents in parallel and one to sum up: the default cap of 1,000 agents per run.
      // "[fast]" makes the demo model answer at once, so this measures Baton and the page.
      const items = Array.from({ length: 999 }, (_, i) => `a-${i + 1} [fast]`);
      const { run_id } = await http(srv.base, "POST", "/api/workflows/fanout/runs", {
        args: { items },
        concurrency: 64,
        auto_approve: true,
      });
      await page.goto(`${srv.base}/runs/${run_id}`);
      // The server says done; how long until the page shows it?
      let finishedAt = null;
      for (;;) {
        const run = await http(srv.base, "GET", `/api/runs/${run_id}`);
        if (["completed", "failed", "cancelled"].includes(run.status)) {
          finishedAt = Date.now();
          assert.equal(run.status, "completed", run.error ?? "");
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await page.locator('.phases tr[data-phase="Ask"] .count-completed:has-text("999 completed")').waitFor({ timeout: T });
      await page.locator(".run-pane h2 .status-completed").waitFor({ timeout: T });
      figures[`${backend}.run_view_lag_after_1000_agents_ms`] = Date.now() - finishedAt;
      // The view carries the first 200 agents; the rest page in as the list scrolls down.
      await page.locator(".run-pane h3:has-text('Agents') .muted:text-is('1000')").waitFor({ timeout: T });
      let drawnFor = 0;
      for (let i = 0; i < 100 && drawnFor < 1000; i++) {
        drawnFor = await page.locator(".agents").evaluate((el) => {
          el.scrollTop = el.scrollHeight;
          const row = el.querySelector(".row.agent");
          return Math.round(el.scrollHeight / (row ? row.getBoundingClientRect().height : 1));
        });
        await page.waitForTimeout(100);
      }
      assert.equal(drawnFor, 1000, "every agent can be scrolled to");
      assert.ok((await page.locator(".agents .row.agent").count()) < 80, "only the rows in view are drawn");
      await shot(page, backend, "run-1000-agents");
      clean(page);
      await context.close();
    });
    await scenario("capabilities: a chat that may write says so; outside the roots it is refused", backend, async () => {
      const { page, context } = await newPage(browser);
      await page.goto(srv.base);
      await page.getByLabel("Title").fill("Writer");
      await page.getByLabel("Workspace folder").fill(srv.ws);
      await page.getByLabel("Let the agent write and edit files").check();
      await page.getByRole("button", { name: "Create chat" }).click();
      await page.waitForURL(/\/chats\/[0-9a-f-]+$/);
      await page.locator(".chat-pane h2 .caps.granted:has-text('writes files')").waitFor({ timeout: T });
      await shot(page, backend, "capabilities-granted");
      await page.goto(srv.base);
      page.allow.push(/403/);
      await page.getByLabel("Workspace folder").fill("/");
      await page.getByLabel("Let the agent run shell commands").check();
      await page.getByRole("button", { name: "Create chat" }).click();
      await page.locator(".banner.error:has-text('agents.workspace_roots')").waitFor({ timeout: T });
      await shot(page, backend, "capabilities-refused");
      clean(page);
      await context.close();
    });

    await scenario("workflows: a saved script that cannot run is shown greyed with its error", backend, async () => {
      const { page, context } = await newPage(browser);
      await page.goto(`${srv.base}/workflows`);
      await page.locator("li.broken:has-text('broken-one')").waitFor({ timeout: T });
      await page.locator("li.broken:has-text('line 2, column 12')").waitFor({ timeout: T });
      await page.locator("li.broken a").click();
      await page.locator(".script-error:has-text('require() is not available')").waitFor({ timeout: T });
      assert.equal(await page.getByRole("button", { name: "Start run" }).isDisabled(), true);
      const res = await fetch(`${srv.base}/api/workflows/broken-one/runs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(res.status, 422);
      assert.match((await res.json()).error.message, /line 2, column 12/);
      await shot(page, backend, "workflow-broken");
      clean(page);
      await context.close();
    });

    await scenario("answers as documents: Markdown, highlighted code, nothing hostile runs", backend, async () => {
      const { page, context } = await newPage(browser);
      let dialogs = 0;
      page.on("dialog", (d) => {
        dialogs += 1;
        void d.dismiss();
      });
      const chat = await http(srv.base, "POST", "/api/chats", { title: "Docs", workspace: srv.ws });
      await page.goto(`${srv.base}/chats/${chat.id}`);
      await page.getByLabel("Message").fill("[markdown] what backends are there?");
      await page.keyboard.press("Enter");
      const answer = page.locator(".msg.assistant .md").last();
      await answer.locator("h2:has-text('Findings')").waitFor({ timeout: T });
      await answer.locator("table td:text-is('sqlite')").waitFor();
      await answer.locator("pre.code[data-lang='rust'] .hljs-keyword:has-text('fn')").waitFor();
      await answer.locator("pre.code button.copy").waitFor();
      assert.equal(await answer.locator("img").count(), 0);
      assert.equal(await answer.locator("script").count(), 0);
      const hrefs = await answer.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href") ?? ""));
      assert.ok(hrefs.every((h) => !/^javascript:/i.test(h)), JSON.stringify(hrefs));
      await page.reload();
      await page.locator(".msg.assistant .md h2").last().waitFor({ timeout: T });
      assert.equal(await page.evaluate(() => window.__pwned ?? null), null, "nothing the model wrote ran");
      assert.equal(dialogs, 0);
      await shot(page, backend, "answer-markdown");
      clean(page);
      await context.close();
    });

    await scenario("images: drop, paste and pick; thumbnails, lightbox, cache bars and chart", backend, async () => {
      const { page, context } = await newPage(browser);
      const chat = await http(srv.base, "POST", "/api/chats", { title: "Pictures", workspace: srv.ws });
      await page.goto(`${srv.base}/chats/${chat.id}`);
      await page.getByLabel("Message").waitFor();
      // Images made in the page: a gradient square of a given size, as PNG bytes.
      const makePng = (w, h, shade) =>
        page.evaluate(
          async ([w, h, shade]) => {
            const c = document.createElement("canvas");
            c.width = w;
            c.height = h;
            const g = c.getContext("2d");
            const grad = g.createLinearGradient(0, 0, w, h);
            grad.addColorStop(0, `rgb(${shade},20,60)`);
            grad.addColorStop(1, "rgb(240,240,250)");
            g.fillStyle = grad;
            g.fillRect(0, 0, w, h);
            const blob = await new Promise((r) => c.toBlob(r, "image/png"));
            return Array.from(new Uint8Array(await blob.arrayBuffer()));
          },
          [w, h, shade],
        );
      const send = (kind, bytes, name, type, target) =>
        page.evaluate(
          ([kind, bytes, name, type, target]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, { type }));
            const el = document.querySelector(target);
            if (kind === "paste") el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
            else {
              el.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
              el.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
            }
          },
          [kind, bytes, name, type, target],
        );
      await send("paste", await makePng(320, 200, 10), "", "image/png", "textarea[aria-label=Message]");
      await send("drop", await makePng(200, 300, 90), "drawing.png", "image/png", ".chat-pane");
      await page.locator("input[aria-label='Choose images']").setInputFiles({
        name: "third.png",
        mimeType: "image/png",
        buffer: Buffer.from(await makePng(64, 64, 200)),
      });
      await page.locator(".draft-image.ready").nth(2).waitFor({ timeout: T });
      await page.locator(".draft-image.ready img").first().waitFor();
      // Remove the third; a text file is refused at the composer, the draft kept.
      await page.getByLabel("Remove third.png").click();
      page.allow.push(/status of 400/);
      await page.locator("input[aria-label='Choose images']").setInputFiles({
        name: "notes.png",
        mimeType: "image/png",
        buffer: Buffer.from("just some notes, not an image\n"),
      });
      await page.locator(".attach-error:has-text('not an image')").waitFor({ timeout: T });
      assert.equal(await page.locator(".draft-image.ready").count(), 2);
      await page.getByLabel("Message").fill("[image] what is in these?");
      await page.keyboard.press("Enter");
      await page.locator(".msg.assistant:has-text('fading from dark to light')").waitFor({ timeout: T });
      assert.equal(await page.locator(".draft-image").count(), 0, "the composer is cleared once sent");
      const thumbs = page.locator(".msg.user .thumb");
      assert.equal(await thumbs.count(), 2);
      await thumbs.first().locator("img").waitFor();
      assert.ok(await thumbs.first().locator("img").evaluate((i) => i.complete && i.naturalWidth > 0));
      // The lightbox: full size, ← / → between the message's images, Esc closes.
      await thumbs.first().click();
      const box = page.locator(".lightbox");
      await box.waitFor();
      await box.locator("img").waitFor();
      assert.equal(await box.getAttribute("aria-label"), "Image 1 of 2");
      assert.ok(await box.locator("img").evaluate((i) => i.complete && i.naturalWidth === 320));
      await shot(page, backend, "image-lightbox");
      await page.keyboard.press("ArrowRight");
      assert.equal(await box.getAttribute("aria-label"), "Image 2 of 2");
      await page.keyboard.press("ArrowLeft");
      assert.equal(await box.getAttribute("aria-label"), "Image 1 of 2");
      await page.keyboard.press("Escape");
      await box.waitFor({ state: "detached" });
      // The traces: the description by the vision model, then the question, with a cache bar.
      await page.locator(".tree .row:has-text('eyes')").first().waitFor({ timeout: T });
      await page.locator(".tree .shape").first().waitFor();
      // A second question reads the first from the cache; the timeline charts it.
      await page.getByLabel("Message").fill("[fast] and again?");
      await page.keyboard.press("Enter");
      await page.locator(".msg.assistant:has-text('Done at once')").waitFor({ timeout: T });
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.locator(".cache-chart svg rect").nth(1).waitFor({ timeout: T });
      await page.locator(".cache-chart figcaption:has-text('uncached')").waitFor();
      await page.locator(".timeline-turn").nth(1).waitFor({ timeout: T });
      await page.locator(".session-foot:has-text('input tokens')").waitFor();
      assert.doesNotMatch(await page.locator(".session-foot").innerText(), /^cache hit \S+\s+0 input tokens/);
      await shot(page, backend, "image-cache-chart");
      await page.reload();
      await page.locator(".msg.user .thumb img").nth(1).waitFor({ timeout: T });
      clean(page);
      await context.close();
    });

    await scenario("background: tasks live, badge, toast, cancel, refresh", backend, async () => {
      const { page, context } = await newPage(browser);
      await page.goto(`${srv.base}/tasks`);
      await page.locator('.conn[data-state="open"]').waitFor({ timeout: T });
      const slow = await http(srv.base, "POST", "/api/tasks", { prompt: "[slow] keep going", label: "slow one" });
      await http(srv.base, "POST", "/api/tasks", { prompt: "[fast] quick", label: "quick one" });
      await page.locator("tr.task-row:has-text('slow one') .status-running").waitFor({ timeout: T });
      // The quick one ends while the page is open: a toast says so, with the way to it.
      await page.locator(".toast:has-text('quick one')").waitFor({ timeout: T });
      await page.locator(".count-badge[data-count='1']").waitFor({ timeout: T });
      await page.locator(".toast:has-text('quick one') a").click();
      await page.locator(".task-result:has-text('Done at once.')").waitFor({ timeout: T });
      await shot(page, backend, "background");
      // A refresh shows the same: the badge counts the one still running.
      await page.reload();
      await page.locator(".count-badge[data-count='1']").waitFor({ timeout: T });
      await page.locator("tr.task-row:has-text('quick one') .status-completed").waitFor({ timeout: T });
      // Cancel from the page.
      await page.locator("tr.task-row:has-text('slow one') button:has-text('Cancel')").click();
      await page.locator("tr.task-row:has-text('slow one') .status-cancelled").waitFor({ timeout: T });
      await page.locator(".count-badge").waitFor({ state: "detached", timeout: T });
      const after = await http(srv.base, "GET", `/api/tasks/${slow.id}`);
      assert.equal(after.status, "cancelled");
      await page.getByRole("button", { name: "completed" }).click();
      await page.locator("tr.task-row").first().waitFor({ timeout: T });
      assert.equal(await page.locator("tr.task-row").count(), 1);
      clean(page);
      await context.close();
    });

    await scenario("background from a chat: shown where it started, told when done", backend, async () => {
      const { page, context } = await newPage(browser);
      const chat = await http(srv.base, "POST", "/api/chats", { title: "Helpers", workspace: srv.ws });
      await page.goto(`${srv.base}/chats/${chat.id}`);
      await page.locator('.conn[data-state="open"]').waitFor({ timeout: T });
      assert.equal(await page.getByLabel("wake on task results").isChecked(), true);
      await page.getByLabel("Message").fill("[background] please look into it");
      await page.keyboard.press("Enter");
      // The task it started is shown under the question, live; then its notice, then the
      // agent's answer to it (the notice woke it).
      await page.locator(".spawned .task-chip:has-text('background helper')").waitFor({ timeout: T });
      await page.locator(".msg.notice:has-text('Background task “background helper” completed.')").waitFor({ timeout: T });
      await page.locator(".msg.assistant:has-text('The background agent has finished')").waitFor({ timeout: T });
      await page.locator(".spawned .task-chip .status-completed").waitFor({ timeout: T });
      await shot(page, backend, "background-in-chat");
      // The notice leads to the task in the Background pane.
      await page.locator(".msg.notice a:has-text('view task')").click();
      await page.locator(".task-result:has-text('Done at once.')").waitFor({ timeout: T });
      // Turning waking off is kept.
      await page.goBack();
      await page.getByLabel("wake on task results").uncheck();
      await page.waitForFunction(
        async (u) => (await (await fetch(u)).json()).auto_continue === false,
        `${srv.base}/api/chats/${chat.id}`,
        { timeout: T },
      );
      await page.reload();
      assert.equal(await page.getByLabel("wake on task results").isChecked(), false);
      const msgs = await http(srv.base, "GET", `/api/chats/${chat.id}/messages`);
      assert.equal(msgs.items.filter((m) => m.role === "notice").length, 1);
      clean(page);
      await context.close();
    });

    await hostilePage(browser, srv, backend);
  } finally {
    await srv.stop();
  }
}

/** A page on another origin (here a second loopback port) tries everything a hostile site can:
 * a JSON fetch, a no-cors fetch, reading, a WebSocket and a plain form post. */
async function hostilePage(browser, srv, backend) {
  await scenario("security: a page from another origin cannot read or drive Baton", backend, async () => {
    const before = {
      chats: (await http(srv.base, "GET", "/api/chats")).items.length,
      runs: (await http(srv.base, "GET", "/api/runs")).items.length,
    };
    const html = `<!doctype html><title>hostile</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="${srv.base}/api/workflows/find-issues/runs" target="sink"><input name="x" value="1"></form>
<script>
window.results = {};
const B = ${JSON.stringify(srv.base)};
(async () => {
  const attempt = async (name, f) => { try { results[name] = await f(); } catch (e) { results[name] = "blocked"; } };
  await attempt("fetchJson", async () => (await fetch(B + "/api/chats", { method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ workspace: "/", capabilities: { write: true, exec: true } }) })).status);
  await attempt("noCors", async () => (await fetch(B + "/api/chats", { method: "POST", mode: "no-cors",
    headers: { "content-type": "text/plain" }, body: "{}" })).type);
  await attempt("read", async () => await (await fetch(B + "/api/chats")).text());
  results.ws = await new Promise((res) => {
    const w = new WebSocket(B.replace("http", "ws") + "/ws");
    w.onopen = () => res("open");
    w.onerror = () => res("refused");
  });
  document.getElementById("f").submit();
  results.done = true;
})();
</script>`;
    const hostile = createServer((_, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(html);
    });
    await new Promise((r) => hostile.listen(0, "127.0.0.1", r));
    try {
      const { page, context } = await newPage(browser);
      page.allow.push(/./); // the browser reports each refusal on the console
      await page.goto(`http://127.0.0.1:${hostile.address().port}/`);
      await page.waitForFunction(() => window.results?.done === true, null, { timeout: T });
      const results = await page.evaluate(() => window.results);
      assert.equal(results.fetchJson, "blocked", JSON.stringify(results));
      assert.equal(results.read, "blocked", JSON.stringify(results));
      assert.equal(results.ws, "refused", JSON.stringify(results));
      // The form's answer lands in the iframe: give it time to arrive, then count.
      await page.frameLocator("iframe[name=sink]").locator("body").waitFor({ timeout: T });
      await new Promise((r) => setTimeout(r, 500));
      const after = {
        chats: (await http(srv.base, "GET", "/api/chats")).items.length,
        runs: (await http(srv.base, "GET", "/api/runs")).items.length,
      };
      assert.deepEqual(after, before, "nothing was created from the other origin");
      await context.close();
    } finally {
      hostile.close();
    }
  });
}

/** With a token configured, the page takes it from `?token=` once and keeps it. */
async function withToken(browser) {
  const srv = await start("sqlite", { token: "e2e-secret", seed: false });
  try {
    await scenario("auth: the page passes the token to the API and the socket", "sqlite", async () => {
      const { page, context } = await newPage(browser);
      page.allow.push(/401/);
      const denied = await fetch(`${srv.base}/api/chats`);
      assert.equal(denied.status, 401);
      await page.goto(`${srv.base}/?token=e2e-secret`);
      await page.locator('.conn[data-state="open"]').waitFor({ timeout: T });
      await page.getByLabel("Title").fill("With a token");
      await page.getByRole("button", { name: "Create chat" }).click();
      await page.waitForURL(/\/chats\/[0-9a-f-]+$/);
      // The address no longer carries the token; the page remembers it.
      await page.reload();
      await page.locator(".chat-pane h2:has-text('With a token')").waitFor({ timeout: T });
      await page.locator('.conn[data-state="open"]').waitFor({ timeout: T });
      clean(page);
      await context.close();
    });
  } finally {
    await srv.stop();
  }
}

/** Waits until the chat's latest session is no longer running. */
async function waitForIdle(base, chatId) {
  for (let i = 0; i < 300; i++) {
    const page = await http(base, "GET", `/api/chats/${chatId}/sessions`);
    const last = page.items[page.items.length - 1];
    if (last && last.status !== "running") return page.items.length;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the chat's session did not finish");
}

/** The aims on a chat a long-running agent made: 10,000 questions, 1,000,000 traces. Only
 * with BATON_E2E_MILLION=1 (seeding takes a minute or more per backend); measured, not
 * asserted, except what a person would call broken. */
async function million(browser, backend) {
  const srv = await start(backend, { traces: 1_000_000 });
  console.log(`${backend}: ${srv.base} with 1,000,000 traces (logs in ${srv.dir})`);
  const f = (k, v) => (figures[`${backend}.million.${k}`] = Math.round(v));
  try {
    await scenario("1,000,000 traces: the chat feels small", backend, async () => {
      const { page, context } = await newPage(browser);
      const cdp = await context.newCDPSession(page);
      const heap = async () => {
        await cdp.send("HeapProfiler.collectGarbage");
        return (await cdp.send("Runtime.getHeapUsage")).usedSize / 2 ** 20;
      };
      const t0 = Date.now();
      await page.goto(`${srv.base}/chats/${srv.seededChat}`);
      const key = `traces-painted:chat:${srv.seededChat}`;
      await page.locator(".msg.user .msg-body:text-is('Question 10000')").waitFor({ timeout: T });
      f("newest_messages_ms", Date.now() - t0);
      await page.waitForFunction((k) => window.__baton.marks[k] !== undefined, key, { timeout: T });
      f("first_trace_rows_ms", await page.evaluate((k) => window.__baton.marks[k], key));
      f("heap_open_mb", await heap());
      // A click on a call opens its details.
      const tc = Date.now();
      await page.locator(".tree .row-trace").first().click();
      await page.locator(".tree .row-detail, .tree .detail").first().waitFor({ timeout: T });
      f("trace_click_ms", Date.now() - tc);
      // The Timeline tab.
      const tl = Date.now();
      await page.getByRole("tab", { name: "Timeline" }).click();
      await page.locator(".timeline-turn").first().waitFor({ timeout: T });
      f("timeline_tab_ms", Date.now() - tl);
      await page.getByRole("tab", { name: "Traces" }).click();
      // Search over the million.
      const ts = Date.now();
      await page.getByLabel("Search calls").fill("Question 9999");
      await page.locator(".found-count").waitFor({ timeout: T });
      f("search_ms", Date.now() - ts);
      await page.getByLabel("Search calls").fill("");
      await page.locator(".found-count").waitFor({ state: "detached", timeout: T });
      // Up through all 10,000 questions to the first, then the heap.
      const ts2 = Date.now();
      for (let i = 0; i < 3000; i++) {
        if ((await page.locator(".msg.user .msg-body:text-is('Question 1')").count()) > 0) break;
        await page.locator(".messages").evaluate((el) => (el.scrollTop = 0));
        await page.waitForTimeout(50);
      }
      await page.locator(".msg.user .msg-body:text-is('Question 1')").waitFor({ timeout: T });
      f("scroll_to_first_question_ms", Date.now() - ts2);
      f("heap_after_10000_questions_mb", await heap());
      f("messages_drawn", await page.locator(".msg").count());
      // A refresh shows the same chat.
      await page.reload();
      await page.locator(".msg.user .msg-body:text-is('Question 10000')").waitFor({ timeout: T });
      await shot(page, backend, "million");
      clean(page);
      await context.close();
    });
  } finally {
    await srv.stop();
  }
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
let failed = false;
try {
  if (process.env.BATON_E2E_MILLION === "1") {
    for (const backend of backends) await million(browser, backend);
  } else {
    for (const backend of backends) await runBackend(browser, backend);
    if (backends.includes("sqlite")) await withToken(browser);
  }
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
}
writeFileSync(join(ART, "figures.json"), `${JSON.stringify(figures, null, 2)}\n`);
console.log("figures:", figures);
process.exit(failed ? 1 : 0);
