-- MCP Streamable HTTP, the happy path over raw HTTP against the real binary and Redis (README
-- "Use your actions from an AI agent"): off → 404; a token from the OAuth flow; initialize →
-- tools/list → tools/call of status, user-me and message-create (a WebSocket subscriber gets
-- the broadcast); structuredContent and the JSON text; ping; an SSE-only Accept; DELETE; the
-- GET stream relaying a broadcast only to a session whose user the channel authorizes.
local H = require "server"
local O = require "oauth_client"
local M = require "mcp_client"
local WS = require "ws_client"
local cjson = require "cjson"

describe("mcp: switched off", function()
    local srv
    setup(function() srv = H.start { env = { APPLICATION_URL = O.ORIGIN } } end)
    teardown(function() H.stop(srv) end)

    it("/mcp is a plain 404 for every method without MCP_SERVER_ENABLED", function()
        for _, method in ipairs { "GET", "POST", "DELETE" } do
            local res = srv:request { method = method, path = "/mcp", headers = M.headers("x"),
                body = method == "POST" and "{}" or nil }
            assert.are.equal(404, res.status, method)
        end
    end)
end)

describe("mcp: the happy path", function()
    local R, srv, token, sid, user_id

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env { RATE_LIMIT_ENABLED = "true", RATE_LIMIT_UNAUTH_LIMIT = "1000" } }
        user_id = O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
    end)
    teardown(function() H.stop(srv) end)

    it("initialize opens a session bound to the token's client and user", function()
        local res = M.post(srv, token, M.initialize_body("2025-06-18"))
        assert.are.equal(200, res.status)
        assert.matches("^application/json", res.headers["content-type"])
        assert.is_nil(res.headers["set-cookie"])
        sid = res.headers["mcp-session-id"]
        assert.matches("^[%w_-]+$", sid)
        assert.is_true(#sid >= 43) -- 256 bits in base64url
        local body = cjson.decode(res.body)
        assert.are.equal(1, body.id)
        assert.are.equal("2025-06-18", body.result.protocolVersion)
        assert.are.equal("keryx", body.result.serverInfo.name)
        assert.is_table(body.result.capabilities.tools)
        local rec = cjson.decode(R.cli("GET", "mcp:session:{" .. sid .. "}"))
        assert.are.equal(tostring(user_id), tostring(rec.user))
        assert.is_string(rec.client)
        -- No Redis key or value holds the token.
        assert.are.equal("", R.cli("KEYS", "*" .. token .. "*"))
        assert.are.equal(202, M.post(srv, token, { jsonrpc = "2.0", method = "notifications/initialized" }, sid).status)
    end)

    it("negotiates each supported version and answers the latest for an unknown one", function()
        for _, v in ipairs { "2025-03-26", "2025-06-18", "2025-11-25" } do
            local res = M.post(srv, token, M.initialize_body(v))
            assert.are.equal(v, cjson.decode(res.body).result.protocolVersion)
        end
        local res = M.post(srv, token, M.initialize_body("1999-01-01"))
        assert.are.equal("2025-11-25", cjson.decode(res.body).result.protocolVersion)
    end)

    it("ping answers an empty result", function()
        local v = M.rpc(srv, token, sid, "ping", nil, "p-1")
        assert.are.same({ jsonrpc = "2.0", id = "p-1", result = {} }, v)
    end)

    it("tools/list shows the opted-in actions only, named with - and with their JSON Schema", function()
        local v = M.rpc(srv, token, sid, "tools/list")
        local by = {}
        for _, t in ipairs(v.result.tools) do by[t.name] = t end
        for _, name in ipairs { "status", "hello", "user-create", "user-me", "session-create", "session-destroy",
            "message-create", "messages-list" } do
            assert.is_table(by[name], name)
            assert.are.equal("object", by[name].inputSchema.type, name)
        end
        assert.is_nil(by.swagger) -- not opted in
        for name in pairs(by) do assert.is_nil(name:find("oauth", 1, true), name) end -- internal never
        assert.are.same({ "body" }, by["message-create"].inputSchema.required)
        assert.are.equal(1000, by["message-create"].inputSchema.properties.body.maxLength)
        assert.are.equal("Post a message to the chat", by["message-create"].description)
    end)

    it("tools/call status answers structuredContent and the same JSON as text", function()
        local r = M.call(srv, token, sid, "status")
        assert.is_nil(r.isError)
        assert.are.equal("text", r.content[1].type)
        assert.are.same(cjson.decode(r.content[1].text), r.structuredContent)
        assert.is_true(r.structuredContent.healthy)
        assert.matches("%[ACTION:MCP:OK%] status", srv:wait_log("[ACTION:MCP:OK] status"))
    end)

    it("user-me answers the token's user", function()
        local r = M.call(srv, token, sid, "user-me")
        assert.are.equal(user_id, r.structuredContent.user.id)
        assert.are.equal(O.EMAIL, r.structuredContent.user.email)
        assert.is_nil(r.structuredContent.user.password_hash)
    end)

    it("message-create posts as the token's user, broadcast to WebSocket subscribers", function()
        local login = H.call(srv, "PUT", "/api/session", { email = O.EMAIL, password = O.PASSWORD })
        local cookie = login.headers["set-cookie"]:match("^([^;]+)")
        local ws = WS.open(srv, { { "Cookie", cookie } })
        local sub = ws:request { messageType = "subscribe", channel = "messages", messageId = 1 }
        assert.is_nil(sub.error)
        local r = M.call(srv, token, sid, "message-create", { body = "from an agent" })
        assert.are.equal("from an agent", r.structuredContent.message.body)
        assert.are.equal(user_id, r.structuredContent.message.user_id)
        local b = ws:broadcast("messages", 3, function(m) return m.sender ~= "presence" end)
        assert.is_table(b)
        assert.are.equal("from an agent", b.message.message.message.body)
        assert.are.equal(user_id, b.message.message.message.user_id)
        ws:close(1000)
        local list = H.json(H.call(srv, "GET", "/api/messages").body)
        assert.are.equal("from an agent", list.data[1].body)
    end)

    it("rate limits count against the token's user, not the address", function()
        M.call(srv, token, sid, "hello", { name = "agent" })
        local keys = R.cli("KEYS", "ratelimit:*")
        assert.matches("user:" .. user_id, keys)
    end)

    it("answers with one SSE event when the client accepts only text/event-stream", function()
        local hs = M.headers(token, sid, { { "Accept", "text/event-stream" }, { "Connection", "close" } })
        hs[#hs + 1] = { "Content-Type", "application/json" }
        local raw = srv:raw(H.build { method = "POST", path = "/mcp", headers = hs,
            body = cjson.encode { jsonrpc = "2.0", id = 9, method = "ping" } })
        assert.matches("^HTTP/1%.1 200", raw)
        assert.matches("\r\n[Cc]ontent%-[Tt]ype: text/event%-stream", raw)
        assert.matches('data: {[^\n]*"id":9', raw)
    end)

    it("answers JSON when Accept lacks text/event-stream", function()
        local res = M.post(srv, token, { jsonrpc = "2.0", id = 10, method = "ping" }, sid,
            { { "Accept", "application/json" } })
        assert.are.equal(200, res.status)
        assert.matches("^application/json", res.headers["content-type"])
        assert.are.equal(10, cjson.decode(res.body).id)
        local none = M.post(srv, token, { jsonrpc = "2.0", id = 11, method = "ping" }, sid, { { "Accept", false } })
        assert.are.equal(11, cjson.decode(none.body).id)
    end)

    it("DELETE ends the session: later requests get 404", function()
        local s2 = M.open(srv, token)
        local res = srv:request { method = "DELETE", path = "/mcp", headers = M.headers(token, s2) }
        assert.are.equal(200, res.status)
        assert.are.equal("0", R.cli("EXISTS", "mcp:session:{" .. s2 .. "}"))
        local _, after = M.rpc(srv, token, s2, "ping")
        assert.are.equal(404, after.status)
        local again = srv:request { method = "DELETE", path = "/mcp", headers = M.headers(token, s2) }
        assert.are.equal(404, again.status)
    end)
end)

-- An app with a per-user channel, `private:<user id>`, which only that user may join, and a tool
-- that broadcasts on any channel: the GET stream must relay a broadcast only where the
-- channel's authorize accepts the session's user.
local function private_app()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. " && cp -r " .. H.ROOT .. "/app/. " .. dir)
    local f = assert(io.open(dir .. "/channels/private.lua", "w"))
    f:write([[
local keryx = require "keryx"
return keryx.channel {
    pattern = "^private:%d+$",
    authorize = function(channel, conn)
        local uid = conn.session and conn.session.data.user_id
        if tostring(uid) ~= channel:match("%d+$") then
            keryx.error("CONNECTION_CHANNEL_AUTHORIZATION", "not yours")
        end
    end,
}
]])
    f:close()
    f = assert(io.open(dir .. "/actions/notify.lua", "w"))
    f:write([[
local keryx = require "keryx"
local z = keryx.schema
return keryx.action {
    name = "notify",
    inputs = z.object { channel = z.string(), text = z.string() },
    mcp = { tool = true },
    run = function(p)
        assert(keryx.channels.broadcast(p.channel, { text = p.text }))
        return { sent = true }
    end,
}
]])
    f:close()
    return dir
end

describe("mcp: the GET notification stream", function()
    local R, srv, app, token, sid, uid, other_token, other_sid, other_uid

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        app = private_app()
        srv = H.start { env = O.env(), app = app }
        uid = O.create_user(srv)
        local _, t = O.tokens(srv)
        token = t.access_token
        sid = M.open(srv, token)
        local _, t2 = M.other_user_tokens(srv, "second@example.com")
        other_token = t2.access_token
        other_sid = M.open(srv, other_token)
        other_uid = M.call(srv, other_token, other_sid, "user-me").structuredContent.user.id
    end)
    teardown(function()
        H.stop(srv)
        if app then os.execute("rm -rf " .. app) end
    end)

    it("needs the session and Accept: text/event-stream", function()
        local no_sid = M.stream(srv, token, nil)
        assert.are.equal(400, no_sid:status())
        no_sid:close()
        local unknown = M.stream(srv, token, "nope")
        assert.are.equal(404, unknown:status())
        unknown:close()
        local json_only = M.stream(srv, token, sid, { { "Accept", "application/json" } })
        assert.are.equal(406, json_only:status())
        json_only:close()
    end)

    it("relays a broadcast as notifications/message only to sessions the channel authorizes", function()
        local mine = M.stream(srv, token, sid)
        local theirs = M.stream(srv, other_token, other_sid)
        assert.are.equal(200, mine:status())
        assert.matches("text/event%-stream", mine.head)
        assert.are.equal(200, theirs:status())
        H.sleep(0.2) -- both streams are reading the feed
        M.call(srv, token, sid, "notify", { channel = "private:" .. uid, text = "for the first user" })
        M.call(srv, token, sid, "notify", { channel = "room:lobby", text = "for everyone" })
        local function on(channel)
            return function(v) return v.method == "notifications/message" and v.params.data.channel == channel end
        end
        local n = mine:next(on("private:" .. uid))
        assert.is_table(n)
        assert.are.equal("info", n.params.level)
        assert.are.same({ text = "for the first user" }, n.params.data.message)
        assert.is_table(mine:next(on("room:lobby")))
        -- The second user sees the open room, never the first user's private channel.
        assert.is_table(theirs:next(on("room:lobby")))
        assert.is_nil(theirs:next(on("private:" .. uid), 0.5))
        M.call(srv, other_token, other_sid, "notify", { channel = "private:" .. other_uid, text = "second" })
        assert.is_table(theirs:next(on("private:" .. other_uid)))
        assert.is_nil(mine:next(on("private:" .. other_uid), 0.5))
        mine:close()
        theirs:close()
    end)

    it("relays a broadcast made by another keryx process on the same Redis", function()
        local srv2 = H.start { env = O.env(), app = app }
        local ok, err = pcall(function()
            local s = M.stream(srv, token, sid)
            H.sleep(0.2)
            -- The session lives in Redis: the other process serves it too.
            M.call(srv2, token, sid, "notify", { channel = "room:far", text = "from process two" })
            local n = s:next(function(v) return v.params and v.params.data.channel == "room:far" end)
            assert.is_table(n)
            assert.are.same({ text = "from process two" }, n.params.data.message)
            s:close()
        end)
        H.stop(srv2)
        assert(ok, err)
    end)

    it("relays a chat message posted over HTTP to a logged-in session's stream", function()
        local s = M.stream(srv, token, sid)
        H.sleep(0.2)
        local login = H.call(srv, "PUT", "/api/session", { email = O.EMAIL, password = O.PASSWORD })
        local cookie = login.headers["set-cookie"]:match("^([^;]+)")
        assert.are.equal(200, H.call(srv, "PUT", "/api/message", { body = "over http" }, cookie).status)
        local n = s:next(function(v) return v.params and v.params.data.channel == "messages" end)
        assert.are.equal("over http", n.params.data.message.message.body)
        s:close()
    end)
end)
