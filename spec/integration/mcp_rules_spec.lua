-- MCP Streamable HTTP, every rule broken (README "Use your actions from an AI agent"): the
-- guard's order (Origin → Host → bearer → protocol version), DNS-rebinding protection (a `*`
-- in WEB_SERVER_ALLOWED_ORIGINS does not open /mcp), missing/invalid/rotated/revoked bearers
-- (401 + WWW-Authenticate), a session id used with another client's or user's token, unknown
-- sessions, batches per version, 413, malformed JSON (-32700) with and without a session, an
-- unknown tool (-32602), an action error as isError without the secret input, and session
-- changes over MCP as a typed error — with no cookie and no Redis session key from a token.
local H = require "server"
local O = require "oauth_client"
local M = require "mcp_client"
local cjson = require "cjson"

local CHALLENGE = 'Bearer resource_metadata="' .. O.ORIGIN .. '/.well-known/oauth-protected-resource/mcp", scope="mcp"'

local function ping(id)
    return { jsonrpc = "2.0", id = id or 1, method = "ping" }
end

local function rpc_error(res)
    local v = cjson.decode(res.body)
    assert.are.equal("2.0", v.jsonrpc)
    assert.is_table(v.error, res.body)
    return v.error, v
end

describe("mcp: the guard", function()
    local R, srv, token, client_id, tokens, sid

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env { MCP_ALLOWED_ORIGINS = "https://agent.example.com",
            WEB_SERVER_ALLOWED_ORIGINS = "https://web.example.com,https://" .. M.HOST } }
        O.create_user(srv)
        client_id, tokens = O.tokens(srv)
        token = tokens.access_token
        sid = M.open(srv, token)
    end)
    teardown(function() H.stop(srv) end)

    it("serves requests without Origin and from the allowed origins", function()
        assert.are.equal(200, M.post(srv, token, ping(), sid).status)
        for _, o in ipairs { O.ORIGIN, "https://agent.example.com", "https://web.example.com" } do
            assert.are.equal(200, M.post(srv, token, ping(), sid, { { "Origin", o } }).status, o)
        end
    end)

    it("refuses a foreign Origin with 403 before looking at the token", function()
        for _, o in ipairs { "https://evil.example", "http://auth.example.com", "https://auth.example.com.evil.example",
            "null", "https://agent.example.com:444" } do
            local res = M.post(srv, token, ping(), sid, { { "Origin", o } })
            assert.are.equal(403, res.status, o)
            assert.are.same({ error = "Origin not allowed" }, cjson.decode(res.body))
            local anon = M.post(srv, false, ping(), nil, { { "Origin", o } })
            assert.are.equal(403, anon.status, o)
            assert.is_nil(anon.headers["www-authenticate"])
        end
    end)

    it("refuses a Host that is not APPLICATION_URL's with 403 before looking at the token", function()
        for _, h in ipairs { "evil.example", "127.0.0.1", "localhost", "auth.example.com:8443", "auth.example.com.evil" } do
            local res = M.post(srv, token, ping(), sid, { { "Host", h } })
            assert.are.equal(403, res.status, h)
            assert.are.same({ error = "Host not allowed" }, cjson.decode(res.body))
            assert.are.equal(403, M.post(srv, false, ping(), nil, { { "Host", h } }).status, h)
        end
        assert.are.equal(200, M.post(srv, token, ping(), sid, { { "Host", "AUTH.example.com:443" } }).status)
    end)

    it("answers 401 with WWW-Authenticate for a missing, malformed or unknown bearer", function()
        for _, auth in ipairs { false, "Basic dXNlcjpwYXNz", "Bearer", "Bearer " .. token .. "x", "Bearer a b",
            "Bearer " .. tokens.refresh_token, token } do
            local res = M.post(srv, false, ping(), sid, { { "Authorization", auth } })
            assert.are.equal(401, res.status, tostring(auth))
            assert.are.equal(CHALLENGE, res.headers["www-authenticate"])
            assert.are.same({ error = "Authentication required" }, cjson.decode(res.body))
            assert.are.equal(401, srv:request { method = "GET", path = "/mcp",
                headers = M.headers(false, sid, { { "Authorization", auth } }) }.status)
            assert.are.equal(401, srv:request { method = "DELETE", path = "/mcp",
                headers = M.headers(false, sid, { { "Authorization", auth } }) }.status)
        end
    end)

    it("answers 401 for an access token rotated away or revoked", function()
        local cid, t = O.tokens(srv)
        local s = M.open(srv, t.access_token)
        local fresh = cjson.decode(O.refresh(srv, cid, t.refresh_token).body)
        local old = M.post(srv, t.access_token, ping(), s)
        assert.are.equal(401, old.status)
        assert.are.equal(CHALLENGE, old.headers["www-authenticate"])
        -- The session is the client's and user's, not the token's: the new token goes on with it.
        assert.are.equal(200, M.post(srv, fresh.access_token, ping(), s).status)
        assert.are.equal(200, O.post_form(srv, "/oauth/revoke", { client_id = cid, token = fresh.access_token }).status)
        assert.are.equal(401, M.post(srv, fresh.access_token, ping(), s).status)
    end)

    it("refuses an unsupported MCP-Protocol-Version with 400", function()
        local res = M.post(srv, token, ping(), sid, { { "MCP-Protocol-Version", "2024-11-05" } })
        assert.are.equal(400, res.status)
        assert.matches("Unsupported protocol version", rpc_error(res).message)
        assert.are.equal(400, M.post(srv, token, M.initialize_body(), nil, { { "MCP-Protocol-Version", "x" } }).status)
        for _, v in ipairs { "2025-03-26", "2025-06-18", "2025-11-25" } do
            assert.are.equal(200, M.post(srv, token, ping(), sid, { { "MCP-Protocol-Version", v } }).status, v)
        end
    end)

    it("keeps every answer free of the session cookie", function()
        for _, res in ipairs { M.post(srv, token, ping(), sid), M.post(srv, false, ping()),
            M.post(srv, token, ping(), sid, { { "Origin", "https://evil.example" } }), M.post(srv, token, "{", sid) } do
            assert.is_nil(res.headers["set-cookie"])
        end
        assert.is_truthy(client_id)
    end)
end)

describe("mcp: sessions", function()
    local R, srv, token, sid

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env() }
        O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
        sid = M.open(srv, token)
    end)
    teardown(function() H.stop(srv) end)

    it("needs Mcp-Session-Id for anything but initialize", function()
        local res = M.post(srv, token, ping())
        assert.are.equal(400, res.status)
        assert.matches("Mcp%-Session%-Id header required", rpc_error(res).message)
        assert.are.equal(400, srv:request { method = "DELETE", path = "/mcp", headers = M.headers(token) }.status)
    end)

    it("answers 404 for an unknown or malformed session id", function()
        for _, s in ipairs { "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "not-an-id", sid .. "x" } do
            assert.are.equal(404, M.post(srv, token, ping(), s).status, s)
        end
    end)

    it("refuses a stolen session id used with another client's token of the same user (403)", function()
        local _, t2 = O.tokens(srv) -- a second registered client, same user
        local res = M.post(srv, t2.access_token, ping(), sid)
        assert.are.equal(403, res.status)
        assert.are.same({ error = "Token does not match session" }, cjson.decode(res.body))
        assert.are.equal(403, srv:request { method = "DELETE", path = "/mcp", headers = M.headers(t2.access_token, sid) }.status)
        local get = M.stream(srv, t2.access_token, sid)
        assert.are.equal(403, get:status())
        get:close()
        assert.are.equal("1", R.cli("EXISTS", "mcp:session:{" .. sid .. "}"))
    end)

    it("refuses a session id used with another user's token (403)", function()
        local _, t3 = M.other_user_tokens(srv, "thief@example.com")
        assert.are.equal(403, M.post(srv, t3.access_token, ping(), sid).status)
        local v = M.call(srv, t3.access_token, M.open(srv, t3.access_token), "user-me")
        assert.are.equal("thief@example.com", v.structuredContent.user.email)
    end)

    it("refuses initialize inside a session and an initialize notification", function()
        local v = M.rpc(srv, token, sid, "initialize", M.initialize_body().params)
        assert.are.equal(-32600, v.error.code)
        local res = M.post(srv, token, { jsonrpc = "2.0", method = "initialize", params = {} })
        assert.are.equal(400, res.status)
    end)

    it("refuses batches for 2025-06-18 and later, answers them for 2025-03-26", function()
        for _, v in ipairs { "2025-06-18", "2025-11-25" } do
            local s = M.open(srv, token, v)
            local res = M.post(srv, token, { ping(1), ping(2) }, s)
            assert.are.equal(400, res.status, v)
            assert.are.equal(-32600, rpc_error(res).code)
        end
        local old = M.open(srv, token, "2025-03-26")
        local res = M.post(srv, token, { ping(1), { jsonrpc = "2.0", method = "notifications/x" }, ping(2) }, old)
        assert.are.equal(200, res.status)
        local arr = cjson.decode(res.body)
        assert.are.equal(2, #arr)
        assert.are.equal(1, arr[1].id)
        assert.are.equal(2, arr[2].id)
        assert.are.equal(400, M.post(srv, token, "[]", old).status)
        -- The header wins over the session's version.
        assert.are.equal(400, M.post(srv, token, { ping(1) }, old, { { "MCP-Protocol-Version", "2025-06-18" } }).status)
    end)

    it("answers malformed JSON with 400 and -32700, with or without a session", function()
        for _, s in ipairs { sid, false } do
            for _, body in ipairs { "{", "not json", '{"jsonrpc":"2.0",', "" } do
                local res = M.post(srv, token, body, s or nil)
                assert.are.equal(400, res.status, body)
                local e, v = rpc_error(res)
                assert.are.equal(-32700, e.code)
                assert.are.equal(cjson.null, v.id)
            end
        end
    end)

    it("answers unknown methods with -32601 and invalid messages with -32600", function()
        local v = M.rpc(srv, token, sid, "no/such/method")
        assert.are.equal(-32601, v.error.code)
        local res = M.post(srv, token, { id = 3, method = "ping" }, sid)
        assert.are.equal(-32600, rpc_error(res).code)
        assert.are.equal(202, M.post(srv, token, { jsonrpc = "2.0", method = "notifications/cancelled" }, sid).status)
    end)
end)

describe("mcp: tools/call failures", function()
    local R, srv, token, sid

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env() }
        O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
        sid = M.open(srv, token)
    end)
    teardown(function() H.stop(srv) end)

    it("answers an unknown, internal or not opted-in tool with JSON-RPC -32602", function()
        for _, name in ipairs { "no-such-tool", "swagger", "oauth-token", "mcp-post", "user:me", "" } do
            local v = M.rpc(srv, token, sid, "tools/call", { name = name, arguments = {} })
            assert.are.equal(-32602, v.error.code, name)
        end
        local v = M.rpc(srv, token, sid, "tools/call", { name = "hello", arguments = { 1, 2 } })
        assert.are.equal(-32602, v.error.code)
    end)

    it("answers an action error as isError with {error, type}, never echoing a secret input", function()
        local r = M.call(srv, token, sid, "message-create", {})
        assert.is_true(r.isError)
        local e = cjson.decode(r.content[1].text)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", e.type)
        assert.is_string(e.error)
        assert.is_nil(r.structuredContent)
        local s = M.call(srv, token, sid, "user-create", { name = "Someone", email = "x@example.com",
            password = "sekrit" })
        assert.is_true(s.isError)
        assert.is_nil(s.content[1].text:find("sekrit", 1, true))
        assert.matches("%[ACTION:MCP:ERROR%] user:create", srv:wait_log("[ACTION:MCP:ERROR] user:create"))
        assert.is_nil(srv:log():find("sekrit", 1, true))
    end)

    it("raises a typed error for a session change over MCP (destroy, regenerate)", function()
        local d = M.call(srv, token, sid, "session-destroy")
        assert.is_true(d.isError)
        local e = cjson.decode(d.content[1].text)
        assert.are.equal("CONNECTION_TYPE_NOT_FOUND", e.type)
        assert.matches("destroy_session", e.error)
        local c = M.call(srv, token, sid, "session-create", { email = O.EMAIL, password = O.PASSWORD })
        assert.is_true(c.isError)
        assert.matches("regenerate_session", cjson.decode(c.content[1].text).error)
        -- The call's user is still the token's, and no Redis session exists for any call.
        assert.are.equal(O.EMAIL, M.call(srv, token, sid, "user-me").structuredContent.user.email)
        assert.are.equal("", R.cli("KEYS", "session:*"))
    end)
end)

describe("mcp: the body limit", function()
    local srv, token, sid

    setup(function()
        H.redis().cli("FLUSHALL")
        srv = H.start { env = O.env { WEB_MAX_BODY_SIZE = "4096" } }
        O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
        sid = M.open(srv, token)
    end)
    teardown(function() H.stop(srv) end)

    it("answers a body over WEB_MAX_BODY_SIZE with 413, with or without a session", function()
        local big = cjson.encode { jsonrpc = "2.0", id = 1, method = "tools/call",
            params = { name = "message-create", arguments = { body = ("x"):rep(5000) } } }
        for _, s in ipairs { sid, false } do
            local res = M.post(srv, token, big, s or nil)
            assert.are.equal(413, res.status)
        end
        assert.are.equal(200, M.post(srv, token, ping(), sid).status)
    end)
end)

describe("mcp: a loopback APPLICATION_URL", function()
    local srv, token

    setup(function()
        H.redis().cli("FLUSHALL")
        srv = H.start { env = O.env { APPLICATION_URL = "http://localhost:3000" } }
        O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
    end)
    teardown(function() H.stop(srv) end)

    it("accepts any loopback Host on any port and nothing else", function()
        for _, h in ipairs { "localhost:3000", "127.0.0.1:" .. srv.port, "[::1]:1", "app.localhost", "LOCALHOST" } do
            assert.are.equal(200, M.post(srv, token, M.initialize_body(), nil, { { "Host", h } }).status, h)
        end
        for _, h in ipairs { "evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1" } do
            assert.are.equal(403, M.post(srv, token, M.initialize_body(), nil, { { "Host", h } }).status, h)
        end
    end)

    it("accepts http://localhost:3000 as Origin but not another loopback origin", function()
        local ok = M.post(srv, token, M.initialize_body(), nil, { { "Host", "localhost:3000" },
            { "Origin", "http://localhost:3000" } })
        assert.are.equal(200, ok.status)
        local other = M.post(srv, token, M.initialize_body(), nil, { { "Host", "localhost:3000" },
            { "Origin", "http://localhost:4000" } })
        assert.are.equal(403, other.status)
    end)
end)
