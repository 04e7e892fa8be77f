// Headless user-agent steps shared by the MCP client scripts (spec/mcp/*.mjs): create the
// app's user through its own user:create action, and sign in on keryx's OAuth authorize page
// by submitting its HTML form the way a browser would. Plain fetch only, so what it exercises is
// the server's page and redirect, not a test shortcut (README "OAuth 2.1 authorization server").
import { createHash, randomBytes } from "node:crypto";

/** Thrown for a failed step; `step` names it in the JSON summaries. */
export class StepError extends Error {
  constructor(step, message) {
    super(`${step}: ${message}`);
    this.step = step;
  }
}

/** The origin of an MCP URL (http://host:port). */
export function originOf(url) {
  return new URL(url).origin;
}

/** Creates a user through the example app's user:create action (PUT /api/user). */
export async function createUser(origin, { name, email, password }) {
  const res = await fetch(`${origin}/api/user`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name, email, password }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new StepError("create-user", `PUT /api/user → ${res.status} ${text}`);
  return JSON.parse(text).user;
}

const ENTITIES = { amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'", apos: "'" };
function unescapeHtml(s) {
  return s.replace(/&(amp|lt|gt|quot|#39|apos);/g, (_, e) => ENTITIES[e]);
}

function attrs(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:-]+)(?:\s*=\s*"([^"]*)"|\s*=\s*'([^']*)')?/g)) {
    out[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? "");
  }
  return out;
}

/**
 * The forms of an HTML page: [{ action, method, inputs: [{name, type, value, required}] }].
 * A regex reader is enough: the page is keryx's own, generated from the flagged actions.
 */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const f = attrs(m[1]);
    const inputs = [];
    for (const i of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const a = attrs(i[1]);
      if (a.name) inputs.push({ name: a.name, type: a.type || "text", value: a.value ?? "", required: "required" in a });
    }
    forms.push({ action: f.action || "", method: (f.method || "GET").toUpperCase(), inputs });
  }
  return forms;
}

/**
 * Opens the authorize URL, fills the sign-in form (mode=signin) with the credentials and posts
 * it; the answer must be a 302 to redirectUri carrying code (and the state and iss, RFC 9207).
 * Returns { code, state, iss, location }. Nobody listens on the redirect URI: the code is read
 * from the Location header, as the browser would hand it to the client's callback.
 */
export async function signIn(authorizeUrl, { email, password }, redirectUri) {
  const page = await fetch(authorizeUrl, { redirect: "manual" });
  const html = await page.text();
  if (page.status !== 200) throw new StepError("authorize-page", `GET ${authorizeUrl} → ${page.status} ${html.slice(0, 300)}`);
  const form = parseForms(html).find((f) => f.inputs.some((i) => i.name === "mode" && i.value === "signin"));
  if (!form) throw new StepError("authorize-page", `no sign-in form on the page: ${html.slice(0, 300)}`);
  const body = new URLSearchParams();
  for (const i of form.inputs) {
    if (i.type === "hidden") body.append(i.name, i.value);
    else if (i.type === "email" || i.name === "email") body.append(i.name, email);
    else if (i.type === "password") body.append(i.name, password);
    else if (i.required) throw new StepError("authorize-page", `the sign-in form asks for an unknown field "${i.name}"`);
  }
  const target = new URL(form.action || authorizeUrl, authorizeUrl);
  const res = await fetch(target, {
    method: form.method,
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
    redirect: "manual",
  });
  const location = res.headers.get("location");
  if (res.status !== 302 || !location) {
    const text = await res.text();
    const shown = text.match(/<p class="error">([\s\S]*?)<\/p>/);
    throw new StepError("sign-in", `POST ${target} → ${res.status}${shown ? `: ${shown[1]}` : ` ${text.slice(0, 300)}`}`);
  }
  if (res.headers.get("set-cookie")) throw new StepError("sign-in", "the authorize answer set a cookie");
  const loc = new URL(location);
  // Exactly the registered URI plus the added query (README: string equality, no leeway).
  if (!location.startsWith(redirectUri + (redirectUri.includes("?") ? "&" : "?"))) {
    throw new StepError("sign-in", `redirected to ${location}, not to the registered ${redirectUri}`);
  }
  const code = loc.searchParams.get("code");
  if (!code) throw new StepError("sign-in", `no code in ${location}`);
  return { code, state: loc.searchParams.get("state"), iss: loc.searchParams.get("iss"), location };
}

function b64url(buf) {
  return buf.toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function json(res, step) {
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new StepError(step, `${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  if (!res.ok) throw new StepError(step, `${res.status} ${text.slice(0, 300)}`);
  return body;
}

/**
 * The whole OAuth flow over plain HTTP, for the clients that take a ready token (Inspector,
 * conformance proxy): RFC 9728 → RFC 8414 → RFC 7591 → authorize (PKCE S256, the sign-in
 * form) → token. Returns { access_token, refresh_token, client_id, ... }.
 */
export async function obtainToken(mcpUrl, creds, redirectUri = "http://localhost:7777/callback") {
  const origin = originOf(mcpUrl);
  const path = new URL(mcpUrl).pathname.replace(/\/$/, "");
  const prm = await json(await fetch(`${origin}/.well-known/oauth-protected-resource${path}`), "discovery");
  const as = prm.authorization_servers?.[0];
  if (!as) throw new StepError("discovery", "no authorization_servers in the protected resource metadata");
  const meta = await json(await fetch(`${as.replace(/\/$/, "")}/.well-known/oauth-authorization-server`), "discovery");
  const client = await json(await fetch(meta.registration_endpoint, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_name: "keryx spec token helper", redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"], response_types: ["code"], token_endpoint_auth_method: "none" }),
  }), "registration");
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash("sha256").update(verifier).digest());
  const state = b64url(randomBytes(16));
  const url = new URL(meta.authorization_endpoint);
  for (const [k, v] of Object.entries({ response_type: "code", client_id: client.client_id, redirect_uri: redirectUri,
    code_challenge: challenge, code_challenge_method: "S256", state, resource: prm.resource })) {
    url.searchParams.set(k, v);
  }
  const { code, state: back } = await signIn(url, creds, redirectUri);
  if (back !== state) throw new StepError("sign-in", "the state came back changed");
  const tokens = await json(await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: verifier, client_id: client.client_id,
      redirect_uri: redirectUri, resource: prm.resource }),
  }), "token");
  return { ...tokens, client_id: client.client_id };
}
