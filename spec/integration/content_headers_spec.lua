-- Black-box specs for answers that are not JSON (conn:set_content_type) and for request
-- headers read lazily by actions (conn:header), over HTTP with curl and the raw client,
-- and over a WebSocket (no HTTP request: nil).
local H = require "server"
local cjson = require "cjson"
local W = require "ws_client"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"

--- curl -i against srv: status, lowercased headers (last one wins), body.
local function curl(srv, path, args)
    local cmd = ("curl -s -S -i %s %s '%s'"):format(H.curl_args(), args or "", srv:url(path))
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    local head, body = out:match("^(.-)\r\n\r\n(.*)$")
    assert(head, "no response from curl: " .. out)
    local status = tonumber(head:match("^HTTP/1%.1 (%d+)"))
    local headers = {}
    for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do headers[name:lower()] = value end
    return status, headers, body
end

describe("non-JSON answers", function()
    local srv
    setup(function() srv = H.start { app = APP, config = CONFIG } end)
    teardown(function() if srv then srv:stop() end end)

    it("answers text/html; charset=utf-8 verbatim, with the action's headers and the usual ones", function()
        local status, headers, body = curl(srv, "/api/page.html?name=Ada")
        assert.are.equal(200, status)
        assert.are.equal("text/html; charset=utf-8", headers["content-type"])
        assert.are.equal("<!doctype html><title>hi</title><p>Hello, Ada</p>", body)
        assert.are.equal("no-store", headers["cache-control"])
        assert.are.equal("nosniff", headers["x-content-type-options"])
        assert.are.equal(tostring(#body), headers["content-length"])
    end)

    it("answers text/plain with the action's status", function()
        local res = srv:request("/api/page.txt")
        assert.are.equal(202, res.status)
        assert.are.equal("text/plain", res.headers["content-type"])
        assert.are.equal("accepted\n", res.body)
    end)

    it("still answers an error as the JSON envelope, whatever content type the action chose", function()
        local res = srv:request("/api/page-boom")
        assert.are.equal(401, res.status)
        assert.are.equal("application/json; charset=utf-8", res.headers["content-type"])
        assert.are.equal("CONNECTION_SESSION_NOT_FOUND", H.json(res.body).error.type)
    end)
end)

describe("request headers read by actions", function()
    local srv
    setup(function() srv = H.start { app = APP, config = CONFIG } end)
    teardown(function() if srv then srv:stop() end end)

    it("conn:header returns any request header, case-insensitively; nil when absent", function()
        local status, _, body = curl(srv, "/api/headers-echo",
            "-H 'Authorization: Bearer tok-123' -H 'Accept: application/json, text/event-stream' "
            .. "-H 'Mcp-Session-Id: sess-9' -H 'MCP-Protocol-Version: 2025-06-18'")
        assert.are.equal(200, status)
        local r = cjson.decode(body)
        assert.are.equal("Bearer tok-123", r.authorization)
        assert.are.equal("application/json, text/event-stream", r.accept)
        assert.are.equal("sess-9", r.mcp_session_id)
        assert.are.equal("2025-06-18", r.mcp_protocol_version)
        assert.is_nil(r.absent)
    end)

    it("still reads the request after the action parked", function()
        local res = H.get(srv, "/api/headers-after-sleep", { { "Accept", "text/plain" } })
        assert.are.equal(200, res.status)
        assert.are.equal("text/plain", H.json(res.body).accept)
    end)

    it("each request of a keep-alive connection sees its own headers", function()
        local c = srv:connect(2)
        for _, v in ipairs { "one", "two" } do
            assert(c:send(H.build { path = "/api/headers-echo", headers = { { "Authorization", v } } }))
            local res = assert(H.read_response(c, "GET"))
            assert.are.equal(v, H.json(res.body).authorization)
        end
        c:close()
    end)

    it("a WebSocket message has no HTTP request: every header is nil", function()
        local ws = assert(W.connect(srv.port, "/", { Authorization = "Bearer on-upgrade" }))
        local reply, raw = ws:request { messageType = "action", action = "headers:echo", messageId = 1 }
        assert.are.same({}, reply.response, raw)
        ws:close()
    end)
end)
