-- Black-box specs for answers streamed from Lua actions (conn:stream → core.stream_*), over
-- raw sockets so that each chunk's arrival time is seen: Server-Sent Events and chunked text,
-- keep-alive after a stream, a stream the action forgot to close or failed in the middle of,
-- a client that leaves, one that does not read (backpressure, the output cap, the action
-- timeout while a write waits), and misuse. Fixture actions: spec/fixtures/app/actions/stream.lua.
local H = require "server"
local W = require "ws_client"
local cjson = require "cjson"
local socket = require "socket"

local APP, CONFIG = "spec/fixtures/app", "spec/fixtures/config.lua"

local function now_ms() return socket.gettime() * 1000 end

--- Sends a GET of path on c; reads the status line and headers: status, headers (lowercase
--- names), the head's raw text.
local function get_head(c, path)
    assert(c:send(H.build { path = path }))
    local line = assert(c:receive("*l"))
    local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
    assert(status, "bad status line: " .. line)
    local headers, raw = {}, line .. "\r\n"
    while true do
        local h = assert(c:receive("*l"))
        raw = raw .. h .. "\r\n"
        if h == "" then break end
        local name, value = h:match("^([^:]+):%s*(.*)$")
        headers[name:lower()] = value
    end
    return status, headers, raw
end

--- One chunk of a chunked body: its data, "" for the terminator, or nil, err.
local function read_chunk(c)
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local size = tonumber(line:match("^(%x+)"), 16)
    assert(size, "bad chunk size line: " .. line)
    if size == 0 then
        assert(c:receive("*l") == "", "no CRLF after the last chunk")
        return ""
    end
    local data = assert(c:receive(size))
    assert(c:receive("*l") == "", "no CRLF after a chunk")
    return data
end

--- Every chunk up to the terminator, concatenated.
local function read_body(c)
    local out = {}
    while true do
        local chunk = assert(read_chunk(c))
        if chunk == "" then return table.concat(out) end
        out[#out + 1] = chunk
    end
end

--- A second request on the same connection is answered: keep-alive survived the stream.
local function assert_keep_alive(c)
    assert(c:send(H.build { path = "/api/echo-get?name=after-stream" }))
    local res = assert(H.read_response(c, "GET"))
    assert.are.equal(200, res.status)
    assert.are.equal("after-stream", H.json(res.body).name)
end

local rss_kib = H.rss_kib

describe("streamed answers", function()
    local srv
    setup(function() srv = H.start { app = APP, config = CONFIG } end)
    teardown(function() if srv then srv:stop() end end)

    it("sends each Server-Sent Event as it happens, as text/event-stream over chunked framing", function()
        local c = srv:connect(5)
        local status, headers = get_head(c, "/api/stream/sse?gap=300")
        assert.are.equal(200, status)
        assert.are.equal("text/event-stream", headers["content-type"])
        assert.are.equal("chunked", headers["transfer-encoding"])
        assert.are.equal("no-cache", headers["cache-control"])
        assert.are.equal("sse", headers["x-stream"])
        assert.is_nil(headers["content-length"])
        assert.is_nil(headers["set-cookie"])
        local events = {}
        for i = 1, 3 do
            local chunk = assert(read_chunk(c))
            local data = chunk:match("^event: tick\ndata: (.-)\n\n$")
            assert(data, "not one tick event: " .. chunk)
            events[i] = { received = now_ms(), data = cjson.decode(data) }
            assert.are.equal(i, events[i].data.n)
        end
        -- Each event reached the client before the next was even written.
        for i = 1, 2 do
            assert.is_true(events[i].received < events[i + 1].data.sent_ms - 100,
                ("event %d arrived at %d, event %d was sent at %d"):format(i, events[i].received, i + 1,
                    events[i + 1].data.sent_ms))
        end
        assert.are.equal("", assert(read_chunk(c)))
        assert_keep_alive(c)
        c:close()
        assert.is_truthy(srv:wait_log("[ACTION:WEB:OK] stream:sse"):find("[ACTION:WEB:OK] stream:sse", 1, true))
    end)

    it("streams chunked text with the action's status, content type and headers", function()
        local c = srv:connect(5)
        local status, headers = get_head(c, "/api/stream/text")
        assert.are.equal(201, status)
        assert.are.equal("text/plain; charset=utf-8", headers["content-type"])
        assert.are.equal("chunked", headers["transfer-encoding"])
        assert.are.equal("set_header", headers["x-before"])
        assert.are.equal("one\n", read_chunk(c))
        assert.are.equal("two\nthree\n", read_body(c))
        assert_keep_alive(c)
        c:close()
    end)

    it("ends a stream the action left open, and sends nothing of its return value", function()
        local c = srv:connect(5)
        local status = get_head(c, "/api/stream/forgot")
        assert.are.equal(200, status)
        assert.are.equal("data: only\n\n", read_body(c))
        assert_keep_alive(c) -- the next bytes are the next answer's status line, no stray body
        c:close()
    end)

    it("an action that fails midway ends its stream cleanly: no second status line; the error is logged", function()
        local c = srv:connect(5)
        local status = get_head(c, "/api/stream/boom")
        assert.are.equal(200, status)
        assert.are.equal("event: first\ndata: before the failure\n\n", read_body(c))
        assert_keep_alive(c)
        c:close()
        local log = srv:wait_log("[ACTION:WEB:ERROR] stream:boom")
        assert.is_truthy(log:find("[ACTION:WEB:ERROR] stream:boom", 1, true), log)
        assert.is_truthy(log:find("stream boom midway", 1, true))
    end)

    it("a client that leaves mid-stream: the action's next write answers nil, \"closed\"; the server goes on", function()
        local c = srv:connect(5)
        assert.are.equal(200, (get_head(c, "/api/stream/forever")))
        assert.are.equal("event: tick\ndata: 1\n\n", read_chunk(c))
        c:close()
        local log = srv:wait_log("[ACTION:WEB:ERROR] stream:forever", 5)
        assert.is_truthy(log:match("forever write %d+ failed: closed"), log)
        assert.are.equal(200, H.get(srv, "/api/echo-get?name=x-1").status)
    end)

    it("pauses an action writing 20 MiB to a client that does not read; memory stays bounded", function()
        local before = rss_kib(srv.pid)
        local c = srv:connect(5)
        assert(c:send(H.build { path = "/api/stream/flood" }))
        socket.sleep(1.5) -- the writer runs into the pause mark and waits
        local grown = rss_kib(srv.pid) - before
        assert.is_true(grown < 64 * 1024, "RSS grew by " .. grown .. " KiB")
        assert.is_falsy(srv:log():find("stream:flood stopped", 1, true), "the writer was not paused")
        assert.are.equal(200, H.get(srv, "/api/echo-get?name=during-flood").status) -- others are served
        c:close() -- unread bytes: the kernel resets the connection, which wakes the paused write
        local log = srv:wait_log("stream:flood stopped", 5)
        local sent, paused, err = log:match("stream:flood stopped after (%d+) bytes, (%d+) paused writes: (%a+)")
        assert(sent, log)
        assert.are.equal("closed", err)
        assert.is_true(tonumber(sent) < 20 * 1024 * 1024, sent)
        assert.is_true(tonumber(paused) >= 1, paused)
        -- The action's log line follows its "stopped" line: wait for it too (a loaded machine).
        log = srv:wait_log("[ACTION:WEB:ERROR] stream:flood", 5)
        assert.is_truthy(log:find("[ACTION:WEB:ERROR] stream:flood", 1, true), log)
    end)

    it("drops a client at the output cap: a write that would put it 4 MiB behind answers nil, \"closed\"", function()
        local c = srv:connect(5)
        assert(c:send(H.build { path = "/api/stream/flood?piece=" .. 5 * 1024 * 1024 }))
        local log = srv:wait_log("stream:flood stopped after 0 bytes", 5)
        assert.is_truthy(log:find("stream:flood stopped after 0 bytes, 0 paused writes: closed", 1, true), log)
        assert.is_truthy(log:find("is not reading a streamed response: dropping it", 1, true))
        c:close()
        assert.are.equal(200, H.get(srv, "/api/echo-get?name=after-cap").status)
    end)

    it("the action timeout wakes a write paused on backpressure: the action ends with its timeout", function()
        local c = srv:connect(5)
        local t0 = now_ms()
        assert(c:send(H.build { path = "/api/stream/flood-short" }))
        local log = srv:wait_log("[ACTION:WEB:ERROR] stream:flood-short", 5)
        assert.is_true(now_ms() - t0 < 4000)
        assert.is_truthy(log:match("stream:flood stopped after %d+ bytes, 1 paused writes: aborted"), log)
        assert.is_truthy(log:find("timed out after 600ms", 1, true))
        c:close()
        assert.are.equal(200, H.get(srv, "/api/echo-get?name=after-timeout").status)
    end)

    it("raises on a write after close (logged), and stream is for web requests only", function()
        local c = srv:connect(5)
        assert.are.equal(200, (get_head(c, "/api/stream/misuse")))
        assert.are.equal("", read_body(c))
        c:close()
        local log = srv:wait_log("[ACTION:WEB:ERROR] stream:misuse")
        assert.is_truthy(log:find("stream:write: the stream was closed", 1, true), log)

        local ws = assert(W.connect(srv.port, "/"))
        local reply, raw = ws:request { messageType = "action", action = "stream:text", messageId = 1 }
        assert.are.equal("CONNECTION_TYPE_NOT_FOUND", reply.error and reply.error.type, raw)
        ws:close()
    end)
end)
