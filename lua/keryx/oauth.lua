-- keryx.oauth — the OAuth 2.1 authorization server behind MCP_SERVER_ENABLED (README "OAuth
-- 2.1 authorization server"): origins, clients, codes, token families and the endpoints'
-- answers. The security checks are C (src/oauth.c through core.oauth_redirect_check,
-- core.pkce_s256_ok, core.oauth_hash); this file decides what to check when and shapes the
-- answers.
--
-- Redis layout (every key a single key of its own slot; the one script, lua/redis/
-- oauth_family.lua, touches one key):
--   oauth:client:{<client id>}   JSON of the registered client       EX MCP_OAUTH_CLIENT_TTL
--   oauth:code:{<hash of code>}  the family id the code opens         EX MCP_OAUTH_CODE_TTL
--   oauth:family:{<family id>}   hash: state, client, user, redirect, challenge, at, rt
--   oauth:at:{<hash of token>}   family id                            EX SESSION_TTL
--   oauth:rt:{<hash of token>}   family id                            EX MCP_OAUTH_REFRESH_TTL
-- Codes and tokens are 256-bit random (core.random_id) and appear in Redis only as
-- core.oauth_hash (SHA-256); a token is valid only while its family is "active" and names it as
-- the current one, so revoking a family (code replay, refresh reuse, RFC 7009) is one change.
--
-- Owns: the rules of issue 9 item 2 that are not pure checks. Callers: keryx.actions.oauth.
-- Never: logs a code or token, puts one in a key or value, sets the session cookie.
local core = require "keryx.core"
local json = require "keryx.json"
local redis = require "keryx.redis"
local scripts = require "keryx.scripts"
local rate_limit = require "keryx.rate_limit"
local errors = require "keryx.errors"

local M = {}

local cfg = core.config
local mcp_cfg = cfg.server.mcp
local rl_cfg = cfg.rateLimit
local type, tostring, tonumber, pairs, ipairs = type, tostring, tonumber, pairs, ipairs
local gsub, find, format = string.gsub, string.find, string.format

M.MAX_REDIRECT_URIS = 10
M.MAX_FIELD = 1024 -- state, client_name and other free text we store or echo

-- ---- origins -------------------------------------------------------------------------------

local function origin_of(url)
    return type(url) == "string" and url:match("^(%a[%w+.-]*://[^/?#]+)") or nil
end

local APP_ORIGIN = origin_of(cfg.server.web.applicationUrl) or "http://localhost"

-- A forwarded host is used only when it looks like one (no path, no userinfo, no spaces).
local function sane_host(h)
    return type(h) == "string" and #h <= 255 and (h:match("^[%w.-]+$") or h:match("^[%w.-]+:%d+$")
        or h:match("^%[[%x:.]+%]$") or h:match("^%[[%x:.]+%]:%d+$")) and true or false
end

--- The issuer origin: APPLICATION_URL's, or with MCP_OAUTH_TRUST_PROXY the proxy's view
--- (X-Forwarded-Proto + X-Forwarded-Host, else Host). Request headers count for nothing
--- otherwise: a client must not choose the issuer it is told about.
function M.origin(conn)
    if not mcp_cfg.oauthTrustProxy then return APP_ORIGIN end
    local proto = (conn:header("X-Forwarded-Proto") or ""):match("^%s*(%a+)") or ""
    proto = proto:lower()
    local host = conn:header("X-Forwarded-Host") or conn:header("Host")
    host = host and host:match("^%s*([^,%s]+)")
    if (proto ~= "http" and proto ~= "https") or not sane_host(host) then return APP_ORIGIN end
    return proto .. "://" .. host
end

--- The MCP resource URL (RFC 8707 / RFC 9728): origin + MCP_SERVER_ROUTE.
function M.resource(conn)
    return M.origin(conn) .. mcp_cfg.route
end

-- ---- answers -------------------------------------------------------------------------------

--- JSON answer with status; no_store for token, introspection and revocation answers.
function M.answer(conn, status, body, no_store)
    conn.status = status
    if no_store then
        conn:set_header("Cache-Control", "no-store")
        conn:set_header("Pragma", "no-cache")
    end
    return body
end

function M.fail(conn, status, code, description, no_store)
    return M.answer(conn, status, { error = code, error_description = description }, no_store)
end

--- One string parameter: nil when absent, false when repeated or not a string.
function M.param(p, name)
    local v = p[name]
    if v == nil then return nil end
    if type(v) ~= "string" then return false end
    return v
end

-- ---- rate limiting -------------------------------------------------------------------------

--- nil when the request may go on, else the 429 answer (already shaped). `register` uses the
--- registration limit and key prefix; the others count with the action middleware's per-IP
--- counters (`ip:<address>`, the unauthenticated limit).
function M.limit(conn, register)
    if not rl_cfg.enabled then return nil end
    local opts = register and { limit = rl_cfg.oauthRegisterLimit, window_ms = rl_cfg.oauthRegisterWindowMs,
        key_prefix = "ratelimit:oauth-register" } or nil
    local info, err = rate_limit.check("ip:" .. tostring(conn.identifier), false, opts)
    if not info then
        if rl_cfg.failOpen then return nil end
        error(errors.unavailable("Rate limiting unavailable", "Redis: " .. tostring(err)), 0)
    end
    local h = rate_limit.headers(info)
    for i = 1, #h, 2 do conn:set_header(h[i], h[i + 1]) end
    if not info.limited then return nil end
    return M.fail(conn, 429, "rate_limit_exceeded",
        format("Rate limit exceeded. Try again in %d seconds.", info.retry_after))
end

-- ---- clients -------------------------------------------------------------------------------

local function client_key(id)
    return "oauth:client:{" .. id .. "}"
end

--- The registered client `id` (a table) or nil. Ids are core.random_id values: anything else
--- (braces that would move the hash tag included) is unknown without asking Redis.
function M.client(id)
    if type(id) ~= "string" or not core.valid_id(id) then return nil end
    local v = redis.ok(redis.call("GET", client_key(id)))
    if v == redis.null then return nil end
    return json.decode(v)
end

--- True when uri is exactly one of the client's registered redirect URIs (string equality).
function M.registered_uri(client, uri)
    if type(uri) ~= "string" then return false end
    for _, u in ipairs(client.redirect_uris) do
        if u == uri then return true end
    end
    return false
end

local function client_metadata_error(p)
    local name = p.client_name
    if name ~= nil and (type(name) ~= "string" or #name > 200) then
        return "client_name must be a string of at most 200 bytes"
    end
    local at = p.application_type
    if at ~= nil and at ~= "web" and at ~= "native" then return 'application_type must be "web" or "native"' end
    return nil
end

--- RFC 7591 registration: the stored client, or nil, error code, description.
function M.register(p)
    local uris = p.redirect_uris
    if type(uris) ~= "table" or uris[1] == nil then return nil, "invalid_request", "redirect_uris is required" end
    if #uris > M.MAX_REDIRECT_URIS then
        return nil, "invalid_request", "at most " .. M.MAX_REDIRECT_URIS .. " redirect_uris"
    end
    local list = {}
    for i, u in ipairs(uris) do
        if type(u) ~= "string" then return nil, "invalid_request", "Each redirect_uri must be a string" end
        local ok, why = core.oauth_redirect_check(u)
        if not ok then return nil, "invalid_redirect_uri", why end
        list[i] = u
    end
    local merr = client_metadata_error(p)
    if merr then return nil, "invalid_client_metadata", merr end
    local client = {
        client_id = core.random_id(),
        client_id_issued_at = math.floor(core.now_ms() / 1000),
        redirect_uris = json.array(list),
        client_name = p.client_name,
        grant_types = json.array { "authorization_code", "refresh_token" },
        response_types = json.array { "code" },
        token_endpoint_auth_method = "none",
        application_type = p.application_type or "web",
    }
    redis.ok(redis.call("SET", client_key(client.client_id), json.encode(client), "EX",
        tostring(mcp_cfg.oauthClientTtl)))
    return client
end

-- ---- authorization requests ----------------------------------------------------------------

--- Checks an authorize request (GET or POST) BEFORE anything is shown or redirected:
--- returns the client, or nil and the message of the 400 error page.
function M.check_authorize(conn, p)
    for _, k in ipairs { "client_id", "redirect_uri", "code_challenge", "code_challenge_method",
        "response_type", "state", "resource" } do
        if M.param(p, k) == false then return nil, k .. " must be given once" end
    end
    local client = M.client(p.client_id)
    if not client then return nil, "Unknown client" end
    if not M.registered_uri(client, p.redirect_uri) then return nil, "Invalid redirect URI" end
    if p.response_type ~= "code" then return nil, 'response_type must be "code"' end
    if p.code_challenge_method ~= "S256" then return nil, "code_challenge_method must be S256" end
    local ch = p.code_challenge
    if type(ch) ~= "string" or #ch ~= 43 or not ch:match("^[%w_-]+$") then
        return nil, "code_challenge is required (base64url of a SHA-256, 43 characters)"
    end
    if p.state ~= nil and #p.state > M.MAX_FIELD then return nil, "state is too long" end
    if p.resource ~= nil and p.resource ~= M.resource(conn) then
        return nil, "resource must be " .. M.resource(conn) -- RFC 8707 invalid_target
    end
    return client
end

local function escape_query(s)
    return (gsub(s, "[^%w%-._~]", function(c) return format("%%%02X", c:byte()) end))
end

--- Issues a code for user_id and returns the redirect Location (RFC 9207 iss included).
function M.issue_code(conn, p, user_id)
    local code, fid = core.random_id(), core.random_id()
    local fkey = "oauth:family:{" .. fid .. "}"
    redis.ok_all(redis.pipeline {
        { "HSET", fkey, "state", "code", "client", p.client_id, "user", tostring(user_id),
            "redirect", p.redirect_uri, "challenge", p.code_challenge },
        { "EXPIRE", fkey, tostring(mcp_cfg.oauthCodeTtl) },
    })
    redis.ok(redis.call("SET", "oauth:code:{" .. core.oauth_hash(code) .. "}", fid, "EX",
        tostring(mcp_cfg.oauthCodeTtl)))
    local uri = p.redirect_uri
    local sep = find(uri, "?", 1, true) and "&" or "?"
    local loc = uri .. sep .. "code=" .. code .. "&iss=" .. escape_query(M.origin(conn))
    if p.state then loc = loc .. "&state=" .. escape_query(p.state) end
    return loc
end

-- ---- tokens --------------------------------------------------------------------------------

local function family_key(fid)
    return "oauth:family:{" .. fid .. "}"
end

-- The family id a code/token pointer names, or nil. Only hashes reach Redis.
local function pointer(kind, secret)
    if type(secret) ~= "string" or secret == "" or #secret > 512 then return nil end
    local v = redis.ok(redis.call("GET", "oauth:" .. kind .. ":{" .. core.oauth_hash(secret) .. "}"))
    if v == redis.null then return nil end
    return v
end

local function family_ttl()
    return math.max(mcp_cfg.oauthRefreshTtl, cfg.session.ttl)
end

-- A fresh access + refresh pair for family fid: the pointers are written before the family
-- names them, so a token the client receives always resolves.
local function new_pair(fid)
    local at, rt = core.random_id(), core.random_id()
    local hat, hrt = core.oauth_hash(at), core.oauth_hash(rt)
    redis.ok_all(redis.pipeline {
        { "SET", "oauth:at:{" .. hat .. "}", fid, "EX", tostring(cfg.session.ttl) },
        { "SET", "oauth:rt:{" .. hrt .. "}", fid, "EX", tostring(mcp_cfg.oauthRefreshTtl) },
    })
    return at, rt, hat, hrt
end

local function token_body(at, rt)
    return { access_token = at, refresh_token = rt, token_type = "Bearer", expires_in = cfg.session.ttl,
        scope = "mcp" }
end

local function run_family(fid, ...)
    return redis.ok(scripts.run("oauth_family", { family_key(fid) }, { ... }))
end

--- grant_type=authorization_code: the token body, or nil, error code, description.
function M.exchange_code(conn, p)
    local code, verifier = M.param(p, "code"), M.param(p, "code_verifier")
    if not code or not verifier then return nil, "invalid_request", "code and code_verifier are required" end
    local resource = M.param(p, "resource")
    if resource == false or (resource and resource ~= M.resource(conn)) then
        return nil, "invalid_target", "resource must be " .. M.resource(conn)
    end
    local fid = pointer("code", code)
    if not fid then return nil, "invalid_grant", "Invalid or expired authorization code" end
    -- Single use from here on, whatever the checks below say.
    local rec = run_family(fid, "consume")
    if rec == "reused" then
        return nil, "invalid_grant", "Authorization code already used; the tokens issued from it are revoked"
    end
    if type(rec) ~= "table" then return nil, "invalid_grant", "Invalid or expired authorization code" end
    local client, user, redirect, challenge = rec[1], rec[2], rec[3], rec[4]
    if M.param(p, "client_id") ~= client then return nil, "invalid_grant", "client_id mismatch" end
    if M.param(p, "redirect_uri") ~= redirect then return nil, "invalid_grant", "redirect_uri mismatch" end
    if not core.pkce_s256_ok(verifier, challenge) then
        return nil, "invalid_grant", "PKCE verification failed"
    end
    local at, rt, hat, hrt = new_pair(fid)
    if run_family(fid, "issue", hat, hrt, tostring(family_ttl())) ~= 1 then
        return nil, "invalid_grant", "Authorization code already used; the tokens issued from it are revoked"
    end
    core.log("info", "oauth: tokens issued to client " .. client .. " for user " .. user)
    return token_body(at, rt)
end

--- grant_type=refresh_token (rotation; reuse revokes the family).
function M.refresh(conn, p)
    local old = M.param(p, "refresh_token")
    if not old then return nil, "invalid_request", "refresh_token is required" end
    local resource = M.param(p, "resource")
    if resource == false or (resource and resource ~= M.resource(conn)) then
        return nil, "invalid_target", "resource must be " .. M.resource(conn)
    end
    local client_id = M.param(p, "client_id")
    if not client_id then return nil, "invalid_request", "client_id is required" end
    local fid = pointer("rt", old)
    if not fid then return nil, "invalid_grant", "Invalid or expired refresh token" end
    local at, rt, hat, hrt = new_pair(fid)
    local r = run_family(fid, "rotate", core.oauth_hash(old), client_id, hat, hrt, tostring(family_ttl()))
    if r == "client" then return nil, "invalid_grant", "client_id mismatch" end
    if r == "reused" then
        core.log("warn", "oauth: a rotated refresh token was presented again; its token family is revoked")
        return nil, "invalid_grant", "Refresh token already used; the token family is revoked"
    end
    if r == "invalid" then return nil, "invalid_grant", "Invalid or expired refresh token" end
    return token_body(at, rt)
end

-- The family of token (hint-ordered access/refresh lookup), its hash fields and the kind found.
local function find_token(token, hint)
    local order = hint == "refresh_token" and { "rt", "at" } or { "at", "rt" }
    for _, kind in ipairs(order) do
        local fid = pointer(kind, token)
        if fid then return fid, kind end
    end
    return nil
end

local function pointer_ttl(kind, token)
    return redis.ok(redis.call("TTL", "oauth:" .. kind .. ":{" .. core.oauth_hash(token) .. "}"))
end

--- The client and user of an active access token: {client, user} or nil (unknown, expired,
--- rotated away, revoked, or not a string). The token is looked up by its hash only.
function M.access(token)
    local fid = pointer("at", token)
    if not fid then return nil end
    local f = redis.ok(redis.call("HMGET", family_key(fid), "state", "client", "user", "at"))
    if f[1] ~= "active" or f[4] ~= core.oauth_hash(token) or type(f[2]) ~= "string" then return nil end
    return { client = f[2], user = f[3] }
end

--- RFC 7662 for client_id's own tokens; anything else is {active = false}.
function M.introspect(p)
    local token = M.param(p, "token")
    local inactive = { active = false }
    if not token then return inactive end
    local fid, kind = find_token(token, M.param(p, "token_type_hint"))
    if not fid then return inactive end
    local f = redis.ok(redis.call("HMGET", family_key(fid), "state", "client", "user", kind))
    if f[1] ~= "active" or f[2] ~= p.client_id or f[4] ~= core.oauth_hash(token) then return inactive end
    local body = { active = true, client_id = f[2], scope = "mcp", token_type = "Bearer",
        sub = tostring(f[3]) }
    local ttl = tonumber(pointer_ttl(kind, token))
    if ttl and ttl > 0 then body.exp = math.floor(core.now_ms() / 1000) + ttl end
    return body
end

--- RFC 7009: revokes the token's whole family when it is client_id's; silent otherwise.
function M.revoke(p)
    local token = M.param(p, "token")
    if not token then return end
    local fid = find_token(token, M.param(p, "token_type_hint"))
    if fid then run_family(fid, "revoke", tostring(p.client_id)) end
end

-- ---- the authorize page --------------------------------------------------------------------

local function html_escape(s)
    return (gsub(tostring(s), "[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
        ['"'] = "&quot;", ["'"] = "&#39;" }))
end
M.html_escape = html_escape

M.HIDDEN = { "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "response_type", "state",
    "resource" }

local function label_of(key, field)
    local text = type(field.description) == "string" and field.description or key:gsub("_", " ")
    return (text:gsub("^%l", string.upper))
end

local function input_type(key, field)
    if field.is_secret then return "password" end
    if find(key, "email", 1, true) then return "email" end
    return "text"
end

local function form(action, mode, title, p)
    local inputs = action and action.inputs
    if not inputs or not inputs.field_keys or #inputs.field_keys == 0 then return "" end
    local out = { '<section><h2>' .. title .. '</h2><form method="POST" action="/oauth/authorize">' }
    for _, k in ipairs(M.HIDDEN) do
        if type(p[k]) == "string" then
            out[#out + 1] = format('<input type="hidden" name="%s" value="%s">', k, html_escape(p[k]))
        end
    end
    out[#out + 1] = format('<input type="hidden" name="mode" value="%s">', mode)
    for _, key in ipairs(inputs.field_keys) do
        local f = inputs.fields[key]
        out[#out + 1] = format('<label>%s <input name="%s" type="%s"%s></label>', html_escape(label_of(key, f)),
            html_escape(key), input_type(key, f), f.is_optional and "" or " required")
    end
    out[#out + 1] = format('<button type="submit">%s</button></form></section>', title)
    return table.concat(out, "\n")
end

local PAGE_STYLE = "body{font-family:sans-serif;max-width:28rem;margin:2rem auto}label{display:block;" ..
    "margin:.5rem 0}input{display:block;width:100%}.error{color:#a00;border:1px solid #a00;padding:.5rem}"

--- The sign-in / sign-up page for a checked authorize request (error: a message to show).
function M.page(p, login, signup, err)
    local parts = { "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Authorize Application</title>",
        "<style>" .. PAGE_STYLE .. "</style></head><body><h1>Authorize Application</h1>" }
    if err then parts[#parts + 1] = '<p class="error">' .. html_escape(err) .. "</p>" end
    parts[#parts + 1] = form(login, "signin", "Sign In", p)
    parts[#parts + 1] = form(signup, "signup", "Sign Up", p)
    parts[#parts + 1] = "</body></html>"
    return table.concat(parts, "\n")
end

--- The 400 page of a request that cannot be trusted with a redirect.
function M.error_page(msg)
    return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Authorization error</title></head>" ..
        "<body><h1>Authorization error</h1><p>" .. html_escape(msg) .. "</p></body></html>"
end

--- The app's actions flagged mcp.login / mcp.signup (first of each in load order).
function M.flagged(list)
    local login, signup
    for _, a in ipairs(list) do
        if not a.internal and type(a.mcp) == "table" then
            login = login or (a.mcp.login and a) or nil
            signup = signup or (a.mcp.signup and a) or nil
        end
    end
    return login, signup
end

--- The posted fields minus the OAuth ones: what the login / signup action gets.
function M.action_fields(p)
    local skip = { mode = true }
    for _, k in ipairs(M.HIDDEN) do skip[k] = true end
    local out = {}
    for k, v in pairs(p) do
        if not skip[k] then out[k] = v end
    end
    return out
end

return M
