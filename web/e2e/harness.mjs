// Starts the real pieces for the end-to-end suite: the scripted model server, a database
// (a SQLite file or a fresh Postgres database), and `baton serve` on a free port.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, createWriteStream } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { once } from "node:events";
import { createInterface } from "node:readline";

export const ROOT = resolve(import.meta.dirname, "../..");
const BIN = (name, env) => process.env[env] ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug", name);
export const BATON = BIN("baton", "BATON_BIN");
export const MOCK = BIN("baton-mock-model", "BATON_MOCK_BIN");
export const BENCH = BIN("baton-bench", "BATON_BENCH_BIN");
const PG = process.env.BATON_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** Resolves with the first line of `child`'s `stream` that `re` matches (its first group). */
function lineMatching(child, stream, re, log, what) {
  return new Promise((ok, fail) => {
    const rl = createInterface({ input: child[stream] });
    const timer = setTimeout(() => fail(new Error(`${what} did not start in 60 s`)), 60_000);
    rl.on("line", (line) => {
      log?.write(`${line}\n`);
      const m = re.exec(line);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.on("exit", (code) => fail(new Error(`${what} exited with ${code}`)));
  });
}

const FANOUT = `export const meta = {
  name: 'fanout',
  description: 'Asks one agent per item in parallel, then one more to sum up.',
  phases: [{ title: 'Ask' }, { title: 'Sum up' }],
}
phase('Ask')
const answers = await parallel(args.items.map((item) => () => agent('Look at ' + item, { label: item })))
log('asked ' + answers.filter(Boolean).length + ' agents')
phase('Sum up')
const summary = await agent('Sum up ' + answers.length + ' answers', { label: 'summary' })
return { answers: answers.length, summary }
`;

export async function start(backend, { token = null, seed = true, traces = 10000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `baton-e2e-${backend}-`));
  const ws = join(dir, "project");
  mkdirSync(join(ws, "src"), { recursive: true });
  mkdirSync(join(ws, ".baton", "workflows"), { recursive: true });
  writeFileSync(join(ws, "README.md"), "# A small project\n");
  writeFileSync(join(ws, "src", "lib.rs"), "pub fn add(a: i32, b: i32) -> i32 { a + b }\n");
  writeFileSync(join(ws, ".baton", "workflows", "fanout.js"), FANOUT);
  // A saved script that cannot run: listed with its error, never missing.
  writeFileSync(join(ws, ".baton", "workflows", "broken-one.js"), "const a = 1\nconst fs = require('fs')\nreturn a\n");

  let url;
  let dropDb = () => {};
  if (backend === "sqlite") {
    url = `sqlite://${join(dir, "baton.db")}`;
  } else {
    const name = `baton_e2e_${process.pid}_${Date.now()}`;
    execFileSync("psql", [PG, "-qc", `CREATE DATABASE ${name}`]);
    url = PG.replace(/\/[^/]*$/, `/${name}`);
    dropDb = () => execFileSync("psql", [PG, "-qc", `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`]);
  }

  // A chat with 10,000 traces (or `traces`), written before the server starts.
  const seeded = seed
    ? JSON.parse(
        execFileSync(BENCH, ["seed", "--database", url, "--traces", String(traces)], { maxBuffer: 1 << 20 }).toString(),
      )
    : { chat_id: null };

  const mock = spawn(MOCK, ["127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  const mockAddr = await lineMatching(mock, "stdout", /mock model on http:\/\/(\S+)/, null, "the mock model");

  writeFileSync(
    join(dir, "baton.toml"),
    `[database]
url = "${url}"
[agents]
default_model = "mock-1"
workspace = "${ws}"
vision_model = "eyes"
[providers.mock]
kind = "openai"
base_url = "http://${mockAddr}/openai/v1"
[models."mock-1"]
provider = "mock"
input_usd_per_mtok = 1.0
cached_input_usd_per_mtok = 0.1
output_usd_per_mtok = 2.0
[models."eyes"]
provider = "mock"
vision = true
[limits]
stall_timeout_s = 10
${token ? `[auth]\ntoken = "${token}"\n` : ""}`,
  );
  const log = createWriteStream(join(dir, "baton.log"));
  const env = { ...process.env, BATON_LOG: "info" };
  for (const k of Object.keys(env)) if (k.startsWith("BATON_") && k !== "BATON_LOG") delete env[k];
  const baton = spawn(BATON, ["serve", "--config", join(dir, "baton.toml"), "--bind", "127.0.0.1:0"], {
    cwd: ws,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const addr = await lineMatching(baton, "stderr", /listening on http:\/\/(\S+)/, log, "baton");
  return {
    base: `http://${addr}`,
    dir,
    ws,
    seededChat: seeded.chat_id,
    async stop() {
      baton.kill("SIGTERM");
      mock.kill("SIGTERM");
      await Promise.race([once(baton, "exit"), new Promise((r) => setTimeout(r, 10_000))]);
      try {
        dropDb();
      } catch (e) {
        console.warn(`could not drop the test database: ${e}`);
      }
    },
  };
}

/** A JSON request to the server from outside the browser. */
export async function http(base, method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
