-- OAuth 2.1 authorization server, the happy path over raw HTTP against the real binary and
-- Redis (README "OAuth 2.1 authorization server"): off by default; discovery; registration;
-- the authorize page; the sign-in form; code → tokens → refresh → introspect → revoke; the
-- answers' headers; the endpoints hidden from swagger and `keryx actions`; and a scan of every
-- Redis key and value after a full flow showing no raw code or token anywhere.
local H = require "server"
local O = require "oauth_client"
local cjson = require "cjson"

describe("oauth: switched off", function()
    local srv
    setup(function() srv = H.start { env = { APPLICATION_URL = O.ORIGIN } } end)
    teardown(function() H.stop(srv) end)

    it("every OAuth path is a plain 404 without MCP_SERVER_ENABLED", function()
        for _, path in ipairs { "/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp", "/oauth/authorize" } do
            assert.are.equal(404, H.get(srv, path).status, path)
        end
        for _, path in ipairs { "/oauth/register", "/oauth/token", "/oauth/introspect", "/oauth/revoke" } do
            assert.are.equal(404, H.call(srv, "POST", path, { x = 1 }).status, path)
        end
    end)
end)

describe("oauth: the full flow", function()
    local R, srv

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env() }
        O.create_user(srv)
    end)
    teardown(function() H.stop(srv) end)

    it("serves RFC 8414 metadata from APPLICATION_URL's origin, S256 only", function()
        local res = H.get(srv, "/.well-known/oauth-authorization-server",
            { { "Host", "evil.example" }, { "X-Forwarded-Host", "evil.example" }, { "X-Forwarded-Proto", "http" } })
        assert.are.equal(200, res.status)
        local m = cjson.decode(res.body)
        assert.are.equal(O.ORIGIN, m.issuer)
        assert.are.equal(O.ORIGIN .. "/oauth/token", m.token_endpoint)
        assert.are.equal(O.ORIGIN .. "/oauth/authorize", m.authorization_endpoint)
        assert.are.equal(O.ORIGIN .. "/oauth/register", m.registration_endpoint)
        assert.are.equal(O.ORIGIN .. "/oauth/introspect", m.introspection_endpoint)
        assert.are.equal(O.ORIGIN .. "/oauth/revoke", m.revocation_endpoint)
        assert.are.same({ "S256" }, m.code_challenge_methods_supported)
        assert.are.same({ "code" }, m.response_types_supported)
        assert.is_nil(res.headers["set-cookie"])
    end)

    it("serves RFC 9728 metadata for the origin and for the MCP route", function()
        local plain = cjson.decode(H.get(srv, "/.well-known/oauth-protected-resource").body)
        local mcp = cjson.decode(H.get(srv, "/.well-known/oauth-protected-resource/mcp").body)
        assert.are.equal(O.ORIGIN .. "/mcp", mcp.resource)
        assert.are.same({ O.ORIGIN }, mcp.authorization_servers)
        assert.are.same(mcp, plain)
    end)

    it("registers a client (RFC 7591): 201, a 256-bit client id, no secret, no cookie", function()
        local res = O.register(srv)
        assert.are.equal(201, res.status, res.body)
        local c = cjson.decode(res.body)
        assert.are.equal(43, #c.client_id)
        assert.are.same({ O.REDIRECT }, c.redirect_uris)
        assert.are.equal("none", c.token_endpoint_auth_method)
        assert.is_nil(c.client_secret)
        assert.is_nil(res.headers["set-cookie"])
    end)

    it("renders the authorize page with the five security headers and the flagged actions' forms", function()
        local client_id = O.client(srv)
        local res = O.authorize_page(srv, O.authorize_params(client_id, { state = "a<b\"c" }))
        assert.are.equal(200, res.status, res.body)
        assert.matches("^text/html", res.headers["content-type"])
        for _, h in ipairs { "content-security-policy", "x-content-type-options", "x-frame-options",
            "strict-transport-security", "referrer-policy" } do
            assert.is_truthy(res.headers[h], h)
        end
        assert.is_truthy(res.body:find("Authorize Application", 1, true))
        assert.is_truthy(res.body:find('name="mode" value="signin"', 1, true))
        assert.is_truthy(res.body:find('name="mode" value="signup"', 1, true))
        assert.is_truthy(res.body:find('name="password" type="password" required', 1, true))
        assert.is_truthy(res.body:find('name="email" type="email" required', 1, true))
        assert.is_truthy(res.body:find('value="a&lt;b&quot;c"', 1, true)) -- state escaped
        assert.is_nil(res.body:find("a<b", 1, true))
        assert.is_nil(res.headers["set-cookie"])
    end)

    it("walks code → token → refresh → introspect → revoke", function()
        local client_id = O.client(srv)
        -- sign in through the page's form: a redirect to the registered URI with code, iss, state
        local res = O.sign_in(srv, O.authorize_params(client_id))
        assert.are.equal(302, res.status, res.body)
        assert.is_nil(res.headers["set-cookie"])
        local loc = res.headers["location"]
        assert.are.equal(O.REDIRECT .. "?", loc:sub(1, #O.REDIRECT + 1))
        local q = O.query_of(loc)
        assert.are.equal("st-1", q.state)
        assert.are.equal(O.ORIGIN, q.iss)
        assert.are.equal(43, #q.code)

        res = O.exchange(srv, client_id, q.code, { resource = O.ORIGIN .. "/mcp" })
        assert.are.equal(200, res.status, res.body)
        assert.are.equal("no-store", res.headers["cache-control"])
        assert.is_nil(res.headers["set-cookie"])
        local t = cjson.decode(res.body)
        assert.are.equal("Bearer", t.token_type)
        assert.are.equal(86400, t.expires_in)
        assert.are.equal(43, #t.access_token)
        assert.are.equal(43, #t.refresh_token)

        local info, ires = O.introspect(srv, client_id, t.access_token)
        assert.are.equal("no-store", ires.headers["cache-control"])
        assert.is_true(info.active)
        assert.are.equal(client_id, info.client_id)
        assert.are.equal("1", info.sub)
        assert.is_true(info.exp > os.time())

        res = O.refresh(srv, client_id, t.refresh_token)
        assert.are.equal(200, res.status, res.body)
        assert.are.equal("no-store", res.headers["cache-control"])
        local t2 = cjson.decode(res.body)
        assert.are_not.equal(t.access_token, t2.access_token)
        assert.are_not.equal(t.refresh_token, t2.refresh_token)
        assert.is_false(O.introspect(srv, client_id, t.access_token).active) -- rotated away
        assert.is_true(O.introspect(srv, client_id, t2.access_token).active)
        assert.is_true(O.introspect(srv, client_id, t2.refresh_token).active)

        res = O.post_form(srv, "/oauth/revoke", { client_id = client_id, token = t2.access_token })
        assert.are.equal(200, res.status)
        assert.are.equal("", res.body)
        assert.are.equal("no-store", res.headers["cache-control"])
        assert.is_false(O.introspect(srv, client_id, t2.access_token).active)
        assert.is_false(O.introspect(srv, client_id, t2.refresh_token).active)
        assert.are.equal(400, O.refresh(srv, client_id, t2.refresh_token).status)
    end)

    it("signs a new user up through the page's sign-up form", function()
        local client_id = O.client(srv)
        local form = O.authorize_params(client_id)
        form.mode, form.name, form.email, form.password = "signup", "New Agent", "new-agent@example.com", "pass-word-42"
        local res = O.post_form(srv, "/oauth/authorize", form)
        assert.are.equal(302, res.status, res.body)
        local code = O.query_of(res.headers["location"]).code
        local t = cjson.decode(O.exchange(srv, client_id, code).body)
        assert.are_not.equal("1", O.introspect(srv, client_id, t.access_token).sub)
    end)

    it("re-renders the page with the error on a wrong password (no code, no redirect)", function()
        local client_id = O.client(srv)
        local res = O.sign_in(srv, O.authorize_params(client_id), O.EMAIL, "wrong-password")
        assert.are.equal(200, res.status)
        assert.is_nil(res.headers["location"])
        assert.is_truthy(res.body:find("Invalid email or password", 1, true))
    end)

    it("keeps the endpoints out of swagger and `keryx actions`, and out of reach by name", function()
        local doc = cjson.decode(H.get(srv, "/api/swagger").body)
        for path in pairs(doc.paths) do assert.is_nil(path:find("oauth", 1, true), path) end
        local code, out = H.cli({ "actions" }, O.env())
        assert.are.equal(0, code, out)
        assert.is_nil(out:find("oauth", 1, true), out)
        assert.is_truthy(out:find("session:create", 1, true))
        local err
        code, out, err = H.cli({ "run", "oauth:register" }, O.env())
        assert.are_not.equal(0, code, out)
        assert.is_truthy((out .. err):find("oauth:register", 1, true)) -- named as unknown
    end)

    it("never logs a code, a token, a verifier or the form's password", function()
        local _, t, code = O.tokens(srv)
        local log = srv:log()
        for _, secret in ipairs { t.access_token, t.refresh_token, code, O.VERIFIER, O.PASSWORD } do
            assert.is_nil(log:find(secret, 1, true), "logged: " .. secret)
        end
    end)
end)

describe("oauth: Redis holds no raw code or token", function()
    local R, srv
    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env() }
        O.create_user(srv)
    end)
    teardown(function() H.stop(srv) end)

    --- Every key and its whole value (strings, hashes), as one text per key.
    local function dump()
        local out = {}
        for key in R.cli("--scan"):gmatch("[^\n]+") do
            local typ = R.cli("TYPE", key)
            local v
            if typ == "string" then v = R.cli("GET", key)
            elseif typ == "hash" then v = R.cli("HGETALL", key)
            elseif typ == "set" then v = R.cli("SMEMBERS", key)
            else v = R.cli("DUMP", key) end
            out[#out + 1] = key .. "\n" .. v
        end
        return out
    end

    it("after register → authorize → token → refresh → introspect", function()
        local client_id, t, code = O.tokens(srv)
        local t2 = cjson.decode(O.refresh(srv, client_id, t.refresh_token).body)
        assert.is_true(O.introspect(srv, client_id, t2.access_token).active)
        local entries = dump()
        assert.is_true(#entries >= 6, table.concat(entries, "\n"))
        local seen_family = false
        for _, e in ipairs(entries) do
            for _, secret in ipairs { code, t.access_token, t.refresh_token, t2.access_token, t2.refresh_token } do
                assert.is_nil(e:find(secret, 1, true), "raw secret in Redis: " .. e)
            end
            if e:find("^oauth:family:{") then seen_family = true end
        end
        assert.is_true(seen_family)
        -- Every OAuth key carries a hash tag, so each script call stays in one slot.
        for _, e in ipairs(entries) do
            local key = e:match("^[^\n]+")
            if key:find("^oauth:") then assert.matches("^oauth:%a+:{[%w_-]+}$", key) end
        end
    end)
end)

describe("oauth: the derived issuer", function()
    it("names the port the kernel picked when WEB_SERVER_PORT=0 and APPLICATION_URL is unset", function()
        local srv = H.start { env = { MCP_SERVER_ENABLED = "true", APPLICATION_URL = false } }
        local res = srv:request("/.well-known/oauth-authorization-server")
        assert.are.equal(200, res.status, res.body)
        local doc = require("cjson").decode(res.body)
        assert.are.equal(H.scheme(srv) .. "://127.0.0.1:" .. srv.port, doc.issuer)
        srv:stop()
    end)
end)
