-- oauth_client.lua — a raw-HTTP OAuth 2.1 client for the oauth_* integration specs: registers,
-- walks the authorize page and form, exchanges codes and refresh tokens. Every step returns
-- the parsed response so a spec can look at status, headers and body itself.
-- PKCE uses the RFC 7636 Appendix B pair (the verifier's S256 challenge is known).
local H = require "server"
local cjson = require "cjson"

local M = {}

M.VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
M.CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
M.ORIGIN = "https://auth.example.com"
M.REDIRECT = "http://localhost:3000/callback"
M.EMAIL, M.PASSWORD = "agent-owner@example.com", "correct-horse-9"

--- The environment that turns the OAuth server on with a known issuer.
function M.env(extra)
    local env = { MCP_SERVER_ENABLED = "true", APPLICATION_URL = M.ORIGIN .. "/app" }
    for k, v in pairs(extra or {}) do env[k] = v end
    return env
end

local function enc(s)
    return (tostring(s):gsub("[^%w%-._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
M.enc = enc

--- application/x-www-form-urlencoded text of t (keys sorted, so requests are reproducible).
function M.form(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = enc(k) .. "=" .. enc(t[k]) end
    return table.concat(parts, "&")
end

--- POST of a form; headers: extra {name, value} pairs.
function M.post_form(srv, path, t, headers)
    local hs = { { "Content-Type", "application/x-www-form-urlencoded" } }
    for _, h in ipairs(headers or {}) do hs[#hs + 1] = h end
    return srv:request { method = "POST", path = path, headers = hs, body = type(t) == "string" and t or M.form(t) }
end

function M.register(srv, body)
    return H.call(srv, "POST", "/oauth/register", body or { redirect_uris = { M.REDIRECT }, client_name = "spec" })
end

--- Registers a client; returns its id (the spec fails when registration does).
function M.client(srv, uris)
    local res = M.register(srv, { redirect_uris = uris or { M.REDIRECT } })
    assert(res.status == 201, res.body)
    return cjson.decode(res.body).client_id
end

--- The authorize parameters for client_id (overrides replace or, with false, drop a key).
function M.authorize_params(client_id, over)
    local p = { client_id = client_id, redirect_uri = M.REDIRECT, response_type = "code",
        code_challenge = M.CHALLENGE, code_challenge_method = "S256", state = "st-1" }
    for k, v in pairs(over or {}) do p[k] = v or nil end
    return p
end

function M.authorize_page(srv, params)
    return H.get(srv, "/oauth/authorize?" .. M.form(params))
end

--- Creates the spec's user through the app's own action (once per Redis flush).
function M.create_user(srv)
    local res = H.call(srv, "PUT", "/api/user", { name = "Agent Owner", email = M.EMAIL, password = M.PASSWORD })
    assert(res.status == 200, res.body)
    return cjson.decode(res.body).user.id
end

--- Posts the sign-in form; returns the response.
function M.sign_in(srv, params, email, password)
    local form = {}
    for k, v in pairs(params) do form[k] = v end
    form.mode, form.email, form.password = "signin", email or M.EMAIL, password or M.PASSWORD
    return M.post_form(srv, "/oauth/authorize", form)
end

--- The query parameters of a Location header (decoded).
function M.query_of(location)
    local q = {}
    for k, v in (location:match("%?(.*)$") or ""):gmatch("([^&=]+)=([^&]*)") do
        q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    end
    return q
end

--- Register + sign in: returns client_id, code (the spec fails on any step).
function M.code(srv, client_id)
    client_id = client_id or M.client(srv)
    local res = M.sign_in(srv, M.authorize_params(client_id))
    assert(res.status == 302, res.status .. " " .. res.body)
    return client_id, M.query_of(res.headers["location"]).code
end

function M.exchange(srv, client_id, code, over)
    local t = { grant_type = "authorization_code", code = code, code_verifier = M.VERIFIER, client_id = client_id,
        redirect_uri = M.REDIRECT }
    for k, v in pairs(over or {}) do t[k] = v or nil end
    return M.post_form(srv, "/oauth/token", t)
end

function M.refresh(srv, client_id, refresh_token)
    return M.post_form(srv, "/oauth/token",
        { grant_type = "refresh_token", refresh_token = refresh_token, client_id = client_id })
end

function M.introspect(srv, client_id, token)
    local res = M.post_form(srv, "/oauth/introspect", { client_id = client_id, token = token })
    return cjson.decode(res.body), res
end

--- Client, code and the token pair of a full flow: client_id, tokens (decoded body).
function M.tokens(srv)
    local client_id, code = M.code(srv)
    local res = M.exchange(srv, client_id, code)
    assert(res.status == 200, res.body)
    return client_id, cjson.decode(res.body), code
end

return M
