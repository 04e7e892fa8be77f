-- Black-box specs for large whole answers (an action returning a string of megabytes): the web
-- epilogue lends the string to the connection's write queue instead of copying it behind the
-- head (src/response.c kx_http_send_lent, src/conn.c kx_conn_write_lent), so a client that
-- reads slowly gets every byte in order while keryx holds no second copy, and a drained
-- connection keeps no large write buffer. Also HEAD of a large answer (the length, no body,
-- keep-alive intact), a gzip-compressed large answer, and a large streamed answer whose
-- pieces (fresh strings the action drops at once) are lent too, and a reload while a lent
-- body is still unwritten (its VM stays until the body is out). The app is written to a temporary
-- directory: one action whose body is built once per size and kept, so the only memory a
-- request can add is the wire path's own.
local H = require "server"
local socket = require "socket"

local MB = 1024 * 1024

local ACTION = [[
local keryx = require "keryx"
local z = keryx.schema
local bodies = {}
-- 16-byte numbered lines: a byte lost, repeated or moved shows in the comparison.
local function body(mb)
    if not bodies[mb] then
        local lines = {}
        for i = 1, mb * 65536 do lines[i] = ("%015d\n"):format(i) end
        bodies[mb] = table.concat(lines)
    end
    return bodies[mb]
end
return {
    keryx.action {
        name = "large:text",
        description = "A large text answer",
        web = { route = "/large", method = "GET" },
        inputs = z.object { mb = z.integer():min(1):max(8) },
        run = function(params, conn)
            conn:set_content_type("text/plain; charset=utf-8")
            return body(params.mb)
        end,
    },
    keryx.action {
        name = "large:sized",
        description = "The first `bytes` bytes of the text, under the status and type asked for",
        web = { route = "/large-sized", method = "GET" },
        inputs = z.object {
            bytes = z.integer():min(1):max(1048576),
            status = z.integer():min(200):max(599):default(200),
            type = z.string():default("text/plain"),
        },
        run = function(params, conn)
            conn.status = params.status
            conn:set_content_type(params.type)
            return body(1):sub(1, params.bytes)
        end,
    },
    keryx.action {
        name = "large:sse",
        description = "One Server-Sent Event carrying the first `bytes` bytes of the text",
        web = { route = "/large-sse", method = "GET" },
        inputs = z.object { bytes = z.integer():min(16):max(1048576) },
        run = function(params, conn)
            local s = assert(conn:stream { sse = true })
            assert(s:event("big", body(1):sub(1, params.bytes)))
            s:close()
        end,
    },
    keryx.action {
        name = "large:stream",
        description = "The same text streamed in 1 MB pieces, each a fresh string collected once sent",
        web = { route = "/large-stream", method = "GET" },
        inputs = z.object { mb = z.integer():min(1):max(8) },
        run = function(params, conn)
            local s = assert(conn:stream { content_type = "text/plain; charset=utf-8" })
            local text = body(params.mb)
            for i = 1, params.mb do
                assert(s:write(text:sub((i - 1) * 1048576 + 1, i * 1048576)))
                -- Nothing in Lua refers to the piece any more: only the write queue's anchor
                -- keeps it alive for a client that is behind.
                collectgarbage()
            end
            s:close()
        end,
    },
}
]]

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function expected(mb)
    local lines = {}
    for i = 1, mb * 65536 do lines[i] = ("%015d\n"):format(i) end
    return table.concat(lines)
end

local rss_kib = H.rss_kib

--- Reads the head of one response on c: status, headers (lower-case names).
local function read_head(c)
    local line = assert(c:receive("*l"))
    local status = tonumber(line:match("^HTTP/1%.1 (%d+)"))
    local headers = {}
    while true do
        local h = assert(c:receive("*l"))
        if h == "" then break end
        local name, value = h:match("^([^:]+):%s*(.*)$")
        headers[name:lower()] = value
    end
    return status, headers
end

--- Reads n bytes piece by piece, sleeping between pieces; calls on_piece after each one.
local function read_slowly(c, n, piece, pause, on_piece)
    local out, got = {}, 0
    while got < n do
        local want = math.min(piece, n - got)
        local data = assert(c:receive(want))
        out[#out + 1] = data
        got = got + #data
        if on_piece then on_piece(got) end
        socket.sleep(pause)
    end
    return table.concat(out)
end

describe("large whole answers", function()
    local srv, dir
    setup(function()
        dir = os.tmpname()
        os.remove(dir)
        os.execute("mkdir -p " .. sh_quote(dir .. "/actions"))
        local f = assert(io.open(dir .. "/actions/large.lua", "w"))
        f:write(ACTION)
        f:close()
        srv = H.start { app = dir }
    end)
    teardown(function()
        H.stop(srv)
        if dir then os.execute("rm -rf " .. sh_quote(dir)) end
    end)

    it("sends 1 MB intact to a client that reads it slowly, then serves the next request", function()
        local c = srv:connect(10)
        assert(c:send(H.build { path = "/api/large?mb=1" }))
        local status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal(tostring(MB), headers["content-length"])
        local body = read_slowly(c, MB, 64 * 1024, 0.01)
        assert.is_true(body == expected(1), "the 1 MB body differs from what the action returned")
        assert(c:send(H.build { path = "/api/large?mb=1" })) -- keep-alive: the framing held
        status = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal(MB, #assert(c:receive(MB)))
        c:close()
    end)

    it("sends 8 MB to a slow client without a second copy, and keeps no buffer once drained", function()
        -- Warm-up: the action builds its 8 MB string once (kept by the app).
        local w = srv:connect(10)
        assert(w:send(H.build { path = "/api/large?mb=8" }))
        read_head(w)
        assert.are.equal(8 * MB, #assert(w:receive(8 * MB)))
        w:close()
        collectgarbage()
        socket.sleep(0.2)
        local base = rss_kib(srv.pid)

        local c = srv:connect(20)
        assert(c:send(H.build { path = "/api/large?mb=8" }))
        local status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal(tostring(8 * MB), headers["content-length"])
        local peak = base
        local body = read_slowly(c, 8 * MB, 512 * 1024, 0.02, function()
            peak = math.max(peak, rss_kib(srv.pid))
        end)
        assert.is_true(body == expected(8), "the 8 MB body differs from what the action returned")
        -- A copy of the body behind the head would be 8 MB more while the client reads.
        assert.is_true(peak - base < 4 * 1024, ("RSS grew by %d KiB while sending 8 MB"):format(peak - base))
        -- The connection stays open (keep-alive) and holds no large write buffer.
        socket.sleep(0.2)
        local after = rss_kib(srv.pid)
        assert.is_true(after - base < 2 * 1024, ("RSS stayed %d KiB above the start"):format(after - base))
        assert(c:send(H.build { path = "/api/large?mb=1" }))
        assert.are.equal(200, (read_head(c)))
        assert.are.equal(MB, #assert(c:receive(MB)))
        c:close()
    end)

    it("streams 8 MB in 1 MB pieces to a slow client: each piece lent, its chunk CRLF apart, intact", function()
        local c = srv:connect(20)
        assert(c:send(H.build { path = "/api/large-stream?mb=8" }))
        local status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal("chunked", headers["transfer-encoding"])
        local out = {}
        while true do
            local size = tonumber(assert(c:receive("*l")):match("^(%x+)"), 16)
            if size == 0 then break end
            out[#out + 1] = read_slowly(c, size, 256 * 1024, 0.01)
            assert.are.equal("", assert(c:receive("*l")))
        end
        assert.are.equal("", assert(c:receive("*l")))
        assert.is_true(table.concat(out) == expected(8), "the streamed 8 MB differ from what the action wrote")
        c:close()
    end)

    it("sends bodies either side of the lending threshold (16 KiB) intact on one connection", function()
        local c = srv:connect(10)
        local text = expected(1)
        for _, n in ipairs { 16383, 16384, 16385, 1 } do
            assert(c:send(H.build { path = "/api/large-sized?bytes=" .. n }))
            local res = assert(H.read_response(c, "GET"))
            assert.are.equal(200, res.status)
            assert.is_true(res.body == text:sub(1, n), "body of " .. n .. " bytes differs")
        end
        c:close()
    end)

    it("heads stay right past the cached head starts: more (status, type) pairs than slots, a long type", function()
        local c = srv:connect(10)
        local long = "text/plain; profile=" .. string.rep("x", 120)
        for round = 1, 2 do
            for i = 1, 10 do
                local ctype = i == 10 and long or ("text/x-kind-%d"):format(i)
                local status = 200 + (i % 3)
                assert(c:send(H.build { path = ("/api/large-sized?bytes=%d&status=%d&type=%s"):format(
                    i, status, ctype:gsub("[^%w]", function(ch) return ("%%%02X"):format(ch:byte()) end)) }))
                local res = assert(H.read_response(c, "GET"))
                assert.are.equal(status, res.status, "round " .. round)
                assert.are.equal(ctype, res.headers["content-type"])
                assert.are.equal(tostring(i), res.headers["content-length"])
                assert.is_truthy(res.headers["date"])
                assert.is_truthy(res.headers["x-content-type-options"])
            end
        end
        c:close()
    end)

    it("sends a 256 KiB Server-Sent Event (its text handed to the write queue) intact", function()
        local c = srv:connect(10)
        assert(c:send(H.build { path = "/api/large-sse?bytes=262144" }))
        local status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal("text/event-stream", headers["content-type"])
        local out = {}
        while true do
            local size = tonumber(assert(c:receive("*l")):match("^(%x+)"), 16)
            if size == 0 then break end
            out[#out + 1] = read_slowly(c, size, 64 * 1024, 0.005)
            assert.are.equal("", assert(c:receive("*l")))
        end
        local lines = {}
        for i = 1, 262144 / 16 do lines[i] = ("data: %015d\n"):format(i) end
        assert.is_true(table.concat(out) == "event: big\n" .. table.concat(lines) .. "\n", "the event differs")
        c:close()
    end)

    it("a reload (SIGHUP) while a slow client holds an 8 MB body: the old VM waits for it", function()
        local c = srv:connect(20)
        assert(c:send(H.build { path = "/api/large?mb=8" }))
        local status = read_head(c)
        assert.are.equal(200, status)
        local first = assert(c:receive(1024 * 1024))
        -- The body is the old VM's string: closing that VM now would free it under the queue.
        os.execute("kill -HUP " .. srv.pid)
        srv:wait_log("reload: new requests run", 5)
        socket.sleep(0.3)
        assert.is_nil(srv:log():find("closed the Lua VM", 1, true), "the VM was closed under a lent body")
        local rest = read_slowly(c, 7 * MB, 512 * 1024, 0.01)
        assert.is_true(first .. rest == expected(8), "the 8 MB body differs")
        -- Written to its end: the old VM goes.
        assert.truthy(srv:wait_log("closed the Lua VM replaced", 5):find("closed the Lua VM", 1, true), srv:log())
        assert(c:send(H.build { path = "/api/large?mb=1" }))
        assert.are.equal(200, (read_head(c)))
        assert.is_true(assert(c:receive(MB)) == expected(1))
        c:close()
    end)

    it("answers HEAD of a large body with its length and no body; the connection goes on", function()
        local c = srv:connect(10)
        assert(c:send(H.build { method = "HEAD", path = "/api/large?mb=8" }))
        local status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal(tostring(8 * MB), headers["content-length"])
        -- No body follows: the next bytes are the next answer's status line.
        assert(c:send(H.build { path = "/api/large?mb=1" }))
        status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal(tostring(MB), headers["content-length"])
        assert.is_true(assert(c:receive(MB)) == expected(1))
        c:close()
    end)

    it("sends a large gzip-compressed answer whole (the compressed copy is lent, then freed)", function()
        local c = srv:connect(10)
        assert(c:send(H.build { path = "/api/large?mb=1", headers = { { "Accept-Encoding", "gzip" } } }))
        local status, headers = read_head(c)
        assert.are.equal(200, status)
        assert.are.equal("gzip", headers["content-encoding"])
        local n = tonumber(headers["content-length"])
        local gz = read_slowly(c, n, 16 * 1024, 0.005)
        c:close()
        local path = os.tmpname()
        local f = assert(io.open(path, "wb"))
        f:write(gz)
        f:close()
        local p = io.popen("gzip -dc " .. sh_quote(path))
        local plain = p:read("*a")
        p:close()
        os.remove(path)
        assert.is_true(plain == expected(1), "the decompressed body differs")
    end)
end)
