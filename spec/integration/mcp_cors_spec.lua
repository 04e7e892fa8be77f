-- CORS of the MCP route for browser clients (README "Use your actions from an AI agent",
-- "Browser clients"): the preflight and every answer of /mcp follow the MCP origin rule
-- (APPLICATION_URL's origin, MCP_ALLOWED_ORIGINS, explicit WEB_SERVER_ALLOWED_ORIGINS entries),
-- never the web policy — a foreign origin gets no grant even with WEB_SERVER_ALLOWED_ORIGINS="*",
-- while the API routes keep that policy unchanged.
local H = require "server"
local O = require "oauth_client"
local M = require "mcp_client"
local cjson = require "cjson"

local AGENT = "https://agent.example.com"
local EVIL = "https://evil.example"
local MCP_METHODS = "GET, POST, DELETE, OPTIONS"
local MCP_HEADERS = "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID"
local MCP_EXPOSE = "Mcp-Session-Id, WWW-Authenticate"

local function preflight(srv, path, origin)
    return srv:request { method = "OPTIONS", path = path, headers = { { "Host", M.HOST }, { "Origin", origin },
        { "Access-Control-Request-Method", "POST" },
        { "Access-Control-Request-Headers", "authorization, content-type, mcp-session-id, mcp-protocol-version" } } }
end

-- The Access-Control-* header names of a response.
local function cors_names(res)
    local names = {}
    for name in pairs(res.headers) do
        if name:find("^access%-control%-") then names[#names + 1] = name end
    end
    table.sort(names)
    return names
end

local function assert_varies_on_origin(res)
    assert.is_truthy((res.headers["vary"] or ""):find("Origin", 1, true), res.raw)
end

describe("mcp: CORS for browser clients", function()
    local R, srv, token, sid

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env { MCP_ALLOWED_ORIGINS = AGENT, WEB_SERVER_ALLOWED_ORIGINS = "*" } }
        O.create_user(srv)
        local _, tokens = O.tokens(srv)
        token = tokens.access_token
        sid = M.open(srv, token)
    end)
    teardown(function() H.stop(srv) end)

    it("grants the preflight of an allowed origin the MCP methods and headers, without credentials", function()
        for _, o in ipairs { AGENT, O.ORIGIN } do
            local res = preflight(srv, "/mcp", o)
            assert.are.equal(204, res.status)
            assert.are.equal(o, res.headers["access-control-allow-origin"], o)
            assert.are.equal(MCP_METHODS, res.headers["access-control-allow-methods"])
            assert.are.equal(MCP_HEADERS, res.headers["access-control-allow-headers"])
            assert.are.equal("600", res.headers["access-control-max-age"])
            assert.is_nil(res.headers["access-control-allow-credentials"])
            assert_varies_on_origin(res)
        end
    end)

    it("gives a foreign origin's preflight no grant at all, though WEB_SERVER_ALLOWED_ORIGINS is *", function()
        for _, o in ipairs { EVIL, "null", AGENT .. ":444", "http://auth.example.com" } do
            local res = preflight(srv, "/mcp", o)
            assert.are.equal(204, res.status)
            assert.are.same({}, cors_names(res), o)
        end
        local two = srv:request { method = "OPTIONS", path = "/mcp",
            headers = { { "Host", M.HOST }, { "Origin", AGENT }, { "Origin", AGENT } } }
        assert.are.equal(204, two.status)
        assert.are.same({}, cors_names(two))
    end)

    it("exposes Mcp-Session-Id on an initialize from an allowed origin", function()
        local res = M.post(srv, token, M.initialize_body(), nil, { { "Origin", AGENT } })
        assert.are.equal(200, res.status, res.body)
        assert.is_string(res.headers["mcp-session-id"])
        assert.are.equal(AGENT, res.headers["access-control-allow-origin"])
        assert.are.equal(MCP_EXPOSE, res.headers["access-control-expose-headers"])
        assert.is_nil(res.headers["access-control-allow-credentials"])
        assert.is_nil(res.headers["access-control-allow-methods"])
        assert_varies_on_origin(res)
    end)

    it("grants the 401 (WWW-Authenticate readable) and the SSE stream of an allowed origin", function()
        local res = M.post(srv, false, { jsonrpc = "2.0", id = 1, method = "ping" }, sid, { { "Origin", O.ORIGIN } })
        assert.are.equal(401, res.status)
        assert.is_string(res.headers["www-authenticate"])
        assert.are.equal(O.ORIGIN, res.headers["access-control-allow-origin"])
        assert.are.equal(MCP_EXPOSE, res.headers["access-control-expose-headers"])
        local s = M.stream(srv, token, sid, { { "Origin", AGENT } })
        assert.are.equal(200, s:status(), s.head)
        assert.is_truthy(s.head:find("\nAccess%-Control%-Allow%-Origin: " .. AGENT:gsub("%p", "%%%0") .. "\n"), s.head)
        assert.is_truthy(s.head:find("\nAccess%-Control%-Expose%-Headers: Mcp%-Session%-Id, WWW%-Authenticate\n"), s.head)
        s:close()
    end)

    it("adds no CORS header to the answers refused to a foreign origin", function()
        local res = M.post(srv, token, { jsonrpc = "2.0", id = 1, method = "ping" }, sid, { { "Origin", EVIL } })
        assert.are.equal(403, res.status)
        assert.are.same({ error = "Origin not allowed" }, cjson.decode(res.body))
        assert.are.same({}, cors_names(res))
        local plain = M.post(srv, token, { jsonrpc = "2.0", id = 1, method = "ping" }, sid)
        assert.are.equal(200, plain.status)
        assert.are.same({}, cors_names(plain))
    end)

    it("keeps the web policy on the API routes", function()
        local res = preflight(srv, "/api/status", EVIL)
        assert.are.equal(204, res.status)
        assert.are.equal("*", res.headers["access-control-allow-origin"])
        assert.are.equal("Content-Type", res.headers["access-control-allow-headers"])
        assert.is_nil(res.headers["access-control-max-age"])
        local get = srv:request { path = "/api/status", headers = { { "Origin", EVIL } } }
        assert.are.equal(200, get.status)
        assert.are.equal("*", get.headers["access-control-allow-origin"])
        assert.is_nil(get.headers["access-control-expose-headers"])
    end)
end)

describe("mcp: CORS with MCP off", function()
    it("leaves the path to the web policy", function()
        H.with_server({ env = { MCP_SERVER_ENABLED = "false", WEB_SERVER_ALLOWED_ORIGINS = "*" } }, function(srv)
            local res = preflight(srv, "/mcp", EVIL)
            assert.are.equal(204, res.status)
            assert.are.equal("*", res.headers["access-control-allow-origin"])
            assert.is_nil(res.headers["access-control-max-age"])
        end)
    end)
end)
