// Checks the contract between the server and the web app (run by scripts/test):
// 1. src/generated/api.ts is what openapi-typescript makes of src/generated/openapi.json
//    (the Rust suite checks that document against the server's own);
// 2. the web app depends on it: a frame field renamed in the document must fail the type
//    check. A copy of src with the renamed field's types is checked, and must not pass.
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const bin = (name) => join(web, "node_modules", ".bin", name);
const doc = join(web, "src", "generated", "openapi.json");
const types = join(web, "src", "generated", "api.ts");

function generate(from, to) {
  execFileSync(bin("openapi-typescript"), [from, "-o", to], { stdio: "pipe" });
}

// Inside web/ so that the copy resolves web/node_modules.
const scratch = mkdtempSync(join(web, ".contract-"));
try {
  generate(doc, join(scratch, "api.ts"));
  if (readFileSync(join(scratch, "api.ts"), "utf8") !== readFileSync(types, "utf8")) {
    console.error("web/src/generated/api.ts is stale: run scripts/gen-types and commit the result");
    process.exit(1);
  }

  // The mutation: `message_delta` frames call their text `delta` instead of `text`.
  const mutated = JSON.parse(readFileSync(doc, "utf8"));
  const delta = mutated.components.schemas.WireFrame.oneOf.find(
    (v) => v.properties?.type?.const === "message_delta",
  );
  if (!delta?.properties?.text) {
    console.error("the document has no message_delta frame with a text field to rename");
    process.exit(1);
  }
  delta.properties.delta = delta.properties.text;
  delete delta.properties.text;
  delta.required = delta.required.map((f) => (f === "text" ? "delta" : f));
  cpSync(join(web, "src"), join(scratch, "src"), { recursive: true });
  writeFileSync(join(scratch, "mutated.json"), JSON.stringify(mutated));
  generate(join(scratch, "mutated.json"), join(scratch, "src", "generated", "api.ts"));
  const tsconfig = JSON.parse(readFileSync(join(web, "tsconfig.json"), "utf8"));
  tsconfig.include = ["src"];
  writeFileSync(join(scratch, "tsconfig.json"), JSON.stringify(tsconfig));
  let out = "";
  try {
    execFileSync(bin("tsc"), ["--noEmit", "-p", scratch], { stdio: "pipe" });
  } catch (e) {
    out = String(e.stdout);
  }
  if (!/chatModel\.ts.*Property 'text' does not exist/s.test(out)) {
    console.error("a renamed frame field did not fail the web app's type check; tsc said:\n" + out);
    process.exit(1);
  }
  console.log("contract: generated types current; a renamed frame field fails the type check");
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
