// The official MCP TypeScript SDK client (npm @modelcontextprotocol/sdk) against a keryx MCP
// server, headless, the way an AI agent would connect (README "Use your actions
// from an AI agent"):
//   create a user (the app's user:create) → unauthenticated connect, answered 401 with the
//   RFC 9728 challenge → the SDK's own discovery (RFC 9728 + RFC 8414) and dynamic registration
//   (RFC 7591) → redirectToAuthorization: the sign-in form of the authorize page is submitted
//   headlessly and the code read from the 302 → transport.finishAuth(code) (PKCE S256 token
//   exchange) → an SDK refresh (rotation) → initialize → tools/list → tools/call user-me and
//   message-create → the access token is made stale so the SDK must refresh on the 401 → call
//   again → DELETE of the session.
// Usage: node sdk_flow.mjs <mcp url> [--tools status,user-me,message-create] [--timeout 30]
// Prints one JSON summary {ok, steps:[{step, part, ok, detail|error}]}: part "oauth" steps need
// only the authorization server, part "mcp" steps need the /mcp endpoint. Exit 0 only when
// every step passed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  auth,
  UnauthorizedError,
  discoverOAuthProtectedResourceMetadata,
  discoverAuthorizationServerMetadata,
  refreshAuthorization,
} from "@modelcontextprotocol/sdk/client/auth.js";
import { randomBytes } from "node:crypto";
import { createUser, originOf, signIn } from "./lib/headless.mjs";

const args = process.argv.slice(2);
const url = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a));
function opt(name, dflt) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
}
if (!url) {
  console.error("usage: node sdk_flow.mjs <mcp url> [--tools a,b,c] [--timeout seconds]");
  process.exit(2);
}
const expectedTools = opt("tools", "status,user-me,message-create").split(",");
const REDIRECT = "http://localhost:7777/oauth/callback"; // registered; never listened on
const creds = {
  name: "SDK Agent Owner",
  email: `sdk-${randomBytes(6).toString("hex")}@example.com`,
  password: `pw-${randomBytes(9).toString("hex")}`,
};

const steps = [];
function record(step, part, ok, info) {
  steps.push({ step, part, ok, ...(ok ? { detail: info } : { error: String(info) }) });
}
function finish() {
  const ok = steps.length > 0 && steps.every((s) => s.ok);
  process.stdout.write(JSON.stringify({ ok, url, user: creds.email, steps }, null, 2) + "\n");
  process.exit(ok ? 0 : 1);
}
const watchdog = setTimeout(() => {
  record("timeout", "any", false, `the flow did not finish in ${opt("timeout", "30")} s`);
  finish();
}, Number(opt("timeout", "30")) * 1000);
watchdog.unref();

/** The OAuthClientProvider of a headless agent: everything in memory, the "browser" is fetch. */
class HeadlessProvider {
  constructor() {
    this.client = undefined;
    this._tokens = undefined;
    this.verifier = undefined;
    this.savedTokens = 0;
    this.signIns = [];
    this._state = randomBytes(16).toString("hex");
  }
  get redirectUrl() {
    return REDIRECT;
  }
  get clientMetadata() {
    return {
      client_name: "keryx spec: MCP TypeScript SDK",
      redirect_uris: [REDIRECT],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    return this._state;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
  }
  tokens() {
    return this._tokens;
  }
  saveTokens(tokens) {
    this._tokens = tokens;
    this.savedTokens += 1;
  }
  saveCodeVerifier(v) {
    this.verifier = v;
  }
  codeVerifier() {
    if (!this.verifier) throw new Error("no code verifier saved");
    return this.verifier;
  }
  // The browser step: open the page, submit the sign-in form, read the code off the redirect.
  async redirectToAuthorization(authorizationUrl) {
    this.lastAuthorizationUrl = authorizationUrl;
    this.signIns.push(await signIn(authorizationUrl, creds, REDIRECT));
  }
}

/** A step that must pass for the next ones to mean anything: record it, stop on failure. */
async function must(step, part, fn) {
  try {
    const detail = await fn();
    record(step, part, true, detail ?? "ok");
    return detail;
  } catch (e) {
    record(step, part, false, e?.message ?? e);
    finish();
  }
}
/** A step whose failure is recorded but lets the flow go on (nothing later depends on it). */
async function may(step, part, fn) {
  try {
    record(step, part, true, (await fn()) ?? "ok");
    return true;
  } catch (e) {
    record(step, part, false, e?.message ?? e);
    return false;
  }
}
function check(cond, message) {
  if (!cond) throw new Error(message);
}
// A tool result's payload: structuredContent, else the JSON of its first text block.
function payload(result) {
  if (result.structuredContent) return result.structuredContent;
  const text = result.content?.find((c) => c.type === "text")?.text;
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}

const origin = originOf(url);
const provider = new HeadlessProvider();

await must("create-user", "oauth", async () => {
  const u = await createUser(origin, creds);
  return { id: u.id, email: creds.email };
});

let prm;
let asm;
await must("discovery", "oauth", async () => {
  prm = await discoverOAuthProtectedResourceMetadata(url);
  check(prm.resource === url, `protected resource metadata names ${prm.resource}, not ${url}`);
  check(prm.authorization_servers?.length, "no authorization_servers");
  asm = await discoverAuthorizationServerMetadata(prm.authorization_servers[0]);
  check(asm, `no RFC 8414 metadata at ${prm.authorization_servers[0]}`);
  check(JSON.stringify(asm.code_challenge_methods_supported) === '["S256"]', "code_challenge_methods_supported is not [S256]");
  check(asm.registration_endpoint, "no registration_endpoint (dynamic registration)");
  return { resource: prm.resource, issuer: asm.issuer };
});

// A real client learns about OAuth from the 401 of its first MCP request: the SDK transport
// then runs auth() itself (discovery, registration, redirectToAuthorization). Until /mcp
// answers that 401 the step fails, and auth() is called directly so the OAuth part still runs.
const first = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
const challenged = await may("challenge", "mcp", async () => {
  const client = new Client({ name: "keryx-spec-sdk", version: "1.0.0" });
  try {
    await client.connect(first);
  } catch (e) {
    if (e instanceof UnauthorizedError) return "401 → the SDK ran discovery, registration and the sign-in";
    throw new Error(`expected a 401 challenge from ${url}, got: ${e?.message ?? e}`);
  }
  throw new Error(`${url} accepted an initialize without a token`);
});
if (!challenged || provider.signIns.length === 0) {
  await must("authorize-direct", "oauth", async () => {
    const r = await auth(provider, { serverUrl: url });
    check(r === "REDIRECT", `auth() returned ${r}, expected REDIRECT`);
    return "auth() → REDIRECT";
  });
}

await must("registration", "oauth", async () => {
  check(provider.client?.client_id, "the SDK registered no client");
  return { client_id_length: provider.client.client_id.length };
});

let code;
await must("authorize", "oauth", async () => {
  const s = provider.signIns.at(-1);
  check(s, "redirectToAuthorization was never called");
  const u = provider.lastAuthorizationUrl;
  check(u.searchParams.get("code_challenge_method") === "S256", "the SDK did not ask for S256");
  check(u.searchParams.get("resource") === url, `resource ${u.searchParams.get("resource")} is not ${url}`);
  check(s.state === provider.state(), "state came back changed");
  check(s.iss === asm.issuer, `iss ${s.iss} is not the issuer ${asm.issuer}`);
  code = s.code;
  return { code_length: code.length };
});

await must("token", "oauth", async () => {
  await first.finishAuth(code);
  const t = provider.tokens();
  check(t?.access_token && t?.refresh_token, "finishAuth saved no access + refresh token");
  check(t.token_type?.toLowerCase() === "bearer", `token_type ${t.token_type}`);
  return { expires_in: t.expires_in, scope: t.scope };
});

await must("refresh", "oauth", async () => {
  const old = provider.tokens();
  const t = await refreshAuthorization(asm.issuer, {
    metadata: asm,
    clientInformation: provider.client,
    refreshToken: old.refresh_token,
    resource: new URL(prm.resource),
  });
  check(t.access_token !== old.access_token && t.refresh_token !== old.refresh_token, "the refresh did not rotate both tokens");
  // Kept with the issuer the SDK stored, as auth() itself does after a refresh.
  provider.saveTokens({ ...t, issuer: t.issuer ?? old.issuer });
  return "both tokens rotated";
});

// ---- the MCP endpoint ---------------------------------------------------------------------
const client = new Client({ name: "keryx-spec-sdk", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
const opts = { timeout: 10000 };

await must("initialize", "mcp", async () => {
  await client.connect(transport, opts);
  const v = client.getServerVersion();
  check(client.getServerCapabilities()?.tools, "the server does not declare tools");
  return { server: v, session: Boolean(transport.sessionId), protocol: transport.protocolVersion };
});

await must("tools/list", "mcp", async () => {
  const { tools } = await client.listTools(undefined, opts);
  const names = tools.map((t) => t.name);
  for (const n of expectedTools) check(names.includes(n), `tool ${n} missing from ${names.join(",")}`);
  for (const t of tools) check(t.inputSchema?.type === "object", `tool ${t.name} has no object inputSchema`);
  return { tools: names };
});

await must("tools/call user-me", "mcp", async () => {
  const r = await client.callTool({ name: "user-me", arguments: {} }, undefined, opts);
  check(!r.isError, `isError: ${JSON.stringify(r.content)}`);
  const p = payload(r);
  check(p.user?.email === creds.email, `user-me answered ${JSON.stringify(p)}, not the token's user ${creds.email}`);
  return { user: p.user.email };
});

await may("tools/call message-create", "mcp", async () => {
  const body = `hello from the MCP SDK ${randomBytes(4).toString("hex")}`;
  const r = await client.callTool({ name: "message-create", arguments: { body } }, undefined, opts);
  check(!r.isError, `isError: ${JSON.stringify(r.content)}`);
  const p = payload(r);
  check(p.message?.body === body, `message-create answered ${JSON.stringify(p)}`);
  return { message_id: p.message.id };
});

await may("tools/call error", "mcp", async () => {
  const r = await client.callTool({ name: "message-create", arguments: {} }, undefined, opts);
  check(r.isError === true, `a missing required argument gave ${JSON.stringify(r)}`);
  return "isError: true";
});

// An access token that stopped working (expired, revoked) must make the SDK refresh on the 401
// and retry; nothing else in the flow changes.
await must("refresh on 401", "mcp", async () => {
  const before = provider.tokens();
  const saved = provider.savedTokens;
  provider._tokens = { ...before, access_token: `stale-${randomBytes(16).toString("hex")}` };
  const r = await client.callTool({ name: "user-me", arguments: {} }, undefined, opts);
  check(provider.savedTokens === saved + 1, "the SDK did not refresh the token");
  check(provider.tokens().refresh_token !== before.refresh_token, "the refresh token did not rotate");
  check(!r.isError && payload(r).user?.email === creds.email, `after the refresh user-me gave ${JSON.stringify(r)}`);
  return "refreshed, then user-me answered";
});

await may("delete-session", "mcp", async () => {
  if (!transport.sessionId) return "no session to end";
  await transport.terminateSession();
  return "DELETE accepted";
});
await client.close().catch(() => {});
finish();
