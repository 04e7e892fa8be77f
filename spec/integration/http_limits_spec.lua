-- Black-box checks of keryx's HTTP limits (README, What the C core enforces): head size and
-- header count (431), body cap answered before the body (413), slowloris head deadline and body
-- idle timeout (408), keep-alive idle timeout, connection cap (503). Timeouts are shortened
-- through the environment so the whole file runs in a few seconds.
local socket = require "socket"
local cjson = require "cjson"
local H = require "server"
local A = require "http_assert"

-- ---- helpers (the shared ones are in spec/helpers/http_assert.lua) --------------------------

local now = socket.gettime
local drain, exchange, parse_all = A.drain, A.exchange, A.parse_all
local assert_envelope_body, assert_envelope = A.assert_envelope_body, A.assert_envelope

-- Exactly one error response followed by a close.
local function assert_one_error_then_close(raw, how, status, typ)
    local list = parse_all(raw)
    assert.are.equal(1, #list, "expected one response, got:\n" .. raw)
    local doc = assert_envelope(list[1], status, typ)
    assert.are.equal("close", list[1].headers["connection"])
    assert.is_truthy(how == "closed" or how == "reset", "connection not closed (" .. how .. ")")
    return list[1], doc
end

local HOST = A.HOST

-- The server must survive what it just refused: a fresh request is still answered.
local function assert_still_serving(srv)
    local c = srv:connect(2)
    assert(c:send("GET /api/hello?name=Alive HTTP/1.1\r\n" .. HOST .. "Connection: close\r\n\r\n"))
    local raw = drain(c, 2)
    local list = parse_all(raw)
    assert.are.equal(1, #list, "server stopped answering after the previous request:\n" .. raw)
    assert.are.same({ message = "Hello, Alive!" }, cjson.decode(list[1].body))
end

-- A GET whose head is exactly `size` bytes long (request line + Host + padding header + CRLF).
local function head_of_size(size)
    local fixed = "GET /api/status HTTP/1.1\r\n" .. HOST .. "Connection: close\r\nX-Pad: \r\n\r\n"
    return "GET /api/status HTTP/1.1\r\n" .. HOST .. "Connection: close\r\nX-Pad: " ..
        string.rep("p", size - #fixed) .. "\r\n\r\n"
end

-- ---- head, body and timing limits (one server) -------------------------------------------

describe("HTTP limits", function()
    local srv
    setup(function()
        srv = H.start { env = {
            WEB_MAX_BODY_SIZE = "100",
            WEB_SERVER_HEADER_TIMEOUT_MS = "500",
            WEB_SERVER_BODY_TIMEOUT_MS = "500",
            WEB_SERVER_KEEPALIVE_TIMEOUT_MS = "300",
        } }
    end)
    teardown(function() srv:stop() end)

    describe("request head size", function()
        it("serves a head of exactly 16384 bytes", function()
            local bytes = head_of_size(16384)
            assert.are.equal(16384, #bytes)
            local list = parse_all((exchange(srv, bytes)))
            assert.are.equal(1, #list)
            assert.are.equal(200, list[1].status)
        end)

        it("answers a head of 16385 bytes with 431 CONNECTION_HEADERS_TOO_LARGE and closes", function()
            local bytes = head_of_size(16385)
            assert.are.equal(16385, #bytes)
            local raw, how = exchange(srv, bytes)
            assert_one_error_then_close(raw, how, 431, "CONNECTION_HEADERS_TOO_LARGE")
        end)

        it("answers 431 as soon as 16 KiB arrive without a head terminator", function()
            local c = srv:connect(2)
            local t0 = now()
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST .. "X-Big: " .. string.rep("b", 17000)))
            local raw, how, t1 = drain(c, 1)
            assert_one_error_then_close(raw, how, 431, "CONNECTION_HEADERS_TOO_LARGE")
            assert.is_true(t1 - t0 < 0.4, "431 came after " .. (t1 - t0) .. " s: it waited for a timeout")
        end)

        it("serves 100 header lines", function()
            local lines = { "GET /api/status HTTP/1.1\r\n", HOST, "Connection: close\r\n" }
            for i = 1, 98 do lines[#lines + 1] = "X-H" .. i .. ": v\r\n" end
            local list = parse_all((exchange(srv, table.concat(lines) .. "\r\n")))
            assert.are.equal(1, #list)
            assert.are.equal(200, list[1].status)
        end)

        it("answers 101 header lines with 431 CONNECTION_HEADERS_TOO_LARGE and closes", function()
            local lines = { "GET /api/status HTTP/1.1\r\n", HOST, "Connection: close\r\n" }
            for i = 1, 99 do lines[#lines + 1] = "X-H" .. i .. ": v\r\n" end
            local raw, how = exchange(srv, table.concat(lines) .. "\r\n")
            assert_one_error_then_close(raw, how, 431, "CONNECTION_HEADERS_TOO_LARGE")
        end)
    end)

    describe("body size (WEB_MAX_BODY_SIZE=100)", function()
        it("answers a Content-Length over the cap with 413 before any body byte is sent", function()
            local c = srv:connect(2)
            local t0 = now()
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST .. "Content-Length: 101\r\n\r\n"))
            local raw, how, t1 = drain(c, 1)
            local _, doc = assert_one_error_then_close(raw, how, 413, "CONNECTION_PAYLOAD_TOO_LARGE")
            assert.is_truthy(doc.error.message:find("Payload Too Large", 1, true))
            assert.is_true(t1 - t0 < 1, "413 took " .. (t1 - t0) .. " s")
        end)

        it("answers Expect: 100-continue with an over-cap Content-Length by 413, never 100 Continue", function()
            local raw, how = exchange(srv, "GET /api/status HTTP/1.1\r\n" .. HOST ..
                "Expect: 100-continue\r\nContent-Length: 101\r\n\r\n", 1)
            assert.is_nil(raw:find("100 Continue", 1, true), raw)
            assert_one_error_then_close(raw, how, 413, "CONNECTION_PAYLOAD_TOO_LARGE")
        end)

        it("answers a huge Content-Length (18 digits) with 413 at once", function()
            local raw, how = exchange(srv, "GET /api/status HTTP/1.1\r\n" .. HOST ..
                "Content-Length: 999999999999999999\r\n\r\n", 1)
            assert_one_error_then_close(raw, how, 413, "CONNECTION_PAYLOAD_TOO_LARGE")
        end)

        it("accepts a body of exactly the cap", function()
            local raw = exchange(srv, "GET /api/hello?name=Cap HTTP/1.1\r\n" .. HOST ..
                "Connection: close\r\nContent-Length: 100\r\n\r\n" .. string.rep("x", 100))
            local list = parse_all(raw)
            assert.are.equal(1, #list)
            assert.are.equal(200, list[1].status)
            assert.are.same({ message = "Hello, Cap!" }, cjson.decode(list[1].body))
        end)

        it("accepts a chunked body of exactly the cap", function()
            local raw = exchange(srv, "GET /api/hello?name=Chunks HTTP/1.1\r\n" .. HOST ..
                "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n" ..
                "32\r\n" .. string.rep("x", 50) .. "\r\n32\r\n" .. string.rep("y", 50) .. "\r\n0\r\n\r\n")
            local list = parse_all(raw)
            assert.are.equal(1, #list)
            assert.are.equal(200, list[1].status)
        end)

        it("answers a chunked body growing past the cap with 413 and closes", function()
            local raw, how = exchange(srv, "GET /api/status HTTP/1.1\r\n" .. HOST ..
                "Transfer-Encoding: chunked\r\n\r\n" ..
                "3c\r\n" .. string.rep("x", 60) .. "\r\n3c\r\n" .. string.rep("y", 60) .. "\r\n0\r\n\r\n")
            assert_one_error_then_close(raw, how, 413, "CONNECTION_PAYLOAD_TOO_LARGE")
        end)

        it("answers a single chunk announced over the cap with 413 before its data is sent", function()
            local c = srv:connect(2)
            local t0 = now()
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST ..
                "Transfer-Encoding: chunked\r\n\r\n" .. "ffff\r\n"))
            local raw, how, t1 = drain(c, 1)
            assert_one_error_then_close(raw, how, 413, "CONNECTION_PAYLOAD_TOO_LARGE")
            assert.is_true(t1 - t0 < 1)
        end)
    end)

    describe("timeouts", function()
        it("408s a slowloris head (one byte every 100 ms) at the 500 ms head deadline and closes", function()
            local c = srv:connect(3)
            local t0 = now()
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST .. "X-Slow: "))
            local out, how, t1 = {}, "timeout", nil
            while now() - t0 < 3 do
                c:settimeout(0.1)
                local chunk, err, partial = c:receive(4096)
                local got = chunk or partial
                if got and #got > 0 then out[#out + 1] = got end
                if err == "closed" or (err and err ~= "timeout") then
                    t1 = now()
                    how = err == "closed" and "closed" or "reset"
                    break
                end
                if #out == 0 then c:send("a") end -- keep trickling until the server answers
            end
            c:close()
            local raw = table.concat(out)
            assert.is_not_nil(t1, "server never closed the slow connection; got:\n" .. raw)
            assert_one_error_then_close(raw, how, 408, "CONNECTION_REQUEST_TIMEOUT")
            assert.is_true(t1 - t0 < 2, "closed only after " .. (t1 - t0) .. " s")
            assert.is_true(t1 - t0 > 0.4, "closed after " .. (t1 - t0) .. " s, before the deadline")
            assert_still_serving(srv)
        end)

        it("408s a body that stops arriving (body timeout 500 ms) and closes", function()
            local c = srv:connect(3)
            local t0 = now()
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST .. "Content-Length: 50\r\n\r\n0123456789"))
            local raw, how, t1 = drain(c, 3)
            assert_one_error_then_close(raw, how, 408, "CONNECTION_REQUEST_TIMEOUT")
            assert.is_true(t1 - t0 < 2, "closed only after " .. (t1 - t0) .. " s")
            assert.is_true(t1 - t0 > 0.4, "closed after " .. (t1 - t0) .. " s, before the timeout")
            assert_still_serving(srv)
        end)

        it("408s a chunked body that stops arriving and closes", function()
            local c = srv:connect(3)
            local t0 = now()
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST ..
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhel"))
            local raw, how, t1 = drain(c, 3)
            assert_one_error_then_close(raw, how, 408, "CONNECTION_REQUEST_TIMEOUT")
            assert.is_true(t1 - t0 < 2 and t1 - t0 > 0.4, "closed after " .. (t1 - t0) .. " s")
            assert_still_serving(srv)
        end)

        it("lets a body trickle in (gaps of 100 ms < body timeout) for longer than the timeout", function()
            local c = srv:connect(3)
            local t0 = now()
            assert(c:send("GET /api/hello?name=Trickle HTTP/1.1\r\n" .. HOST ..
                "Connection: close\r\nContent-Length: 9\r\n\r\n"))
            for _ = 1, 9 do
                socket.sleep(0.1)
                assert(c:send("z"))
            end
            local raw = drain(c, 2)
            assert.is_true(now() - t0 > 0.8)
            local list = parse_all(raw)
            assert.are.equal(1, #list, raw)
            assert.are.equal(200, list[1].status)
            assert.are.same({ message = "Hello, Trickle!" }, cjson.decode(list[1].body))
        end)

        it("closes an idle keep-alive connection after ~300 ms, not before ~200 ms", function()
            local c = srv:connect(3)
            assert(c:send("GET /api/status HTTP/1.1\r\n" .. HOST .. "\r\n"))
            local res = assert(H.read_response(c))
            assert.are.equal(200, res.status)
            assert.is_nil(res.headers["connection"])
            local t0 = now()
            local raw, how, t1 = drain(c, 3)
            assert.are.equal("", raw)
            assert.are.equal("closed", how)
            assert.is_true(t1 - t0 > 0.2, "idle connection closed after only " .. (t1 - t0) .. " s")
            assert.is_true(t1 - t0 < 1, "idle connection closed only after " .. (t1 - t0) .. " s")
            assert_still_serving(srv)
        end)

        it("restarts the keep-alive idle timer on every request", function()
            local c = srv:connect(3)
            local t0 = now()
            for i = 1, 4 do
                assert(c:send("GET /api/hello?name=I" .. i .. " HTTP/1.1\r\n" .. HOST .. "\r\n"))
                local res = assert(H.read_response(c))
                assert.are.same({ message = "Hello, I" .. i .. "!" }, cjson.decode(res.body))
                socket.sleep(0.15)
            end
            assert.is_true(now() - t0 > 0.5) -- longer than one idle period in total
            c:close()
        end)

        it("closes a connection that never sends a byte without answering it", function()
            local c = srv:connect(3)
            local t0 = now()
            local raw, how, t1 = drain(c, 3)
            assert.are.equal("", raw)
            assert.are.equal("closed", how)
            assert.is_true(t1 - t0 < 2, "silent connection kept for " .. (t1 - t0) .. " s")
            assert_still_serving(srv)
        end)
    end)
end)

-- ---- connection cap (its own server: other tests' connections must not count) ---------------

describe("HTTP connection cap (WEB_SERVER_MAX_CONNECTIONS=5)", function()
    local srv
    setup(function() srv = H.start { env = { WEB_SERVER_MAX_CONNECTIONS = "5" } } end)
    teardown(function() srv:stop() end)

    -- Opens the 6th connection and returns what the server sent on it.
    local function over_cap()
        local c = srv:connect(2)
        return drain(c, 2)
    end

    it("refuses the 6th connection with 503 CONNECTION_SERVER_BUSY and serves again after one closes", function()
        local held = {}
        for i = 1, 5 do held[i] = srv:connect(3) end
        socket.sleep(0.1) -- let the server accept all five (idle, accepted connections count)

        if srv.tls then
            H.assert_refused(srv) -- closed without a handshake (src/tls.h kx_tls_refuse)
        else
            local raw, how = over_cap()
            local list = parse_all(raw)
            assert.are.equal(1, #list, "expected one 503, got:\n" .. raw)
            assert.are.equal(503, list[1].status)
            assert_envelope_body(list[1], "CONNECTION_SERVER_BUSY")
            assert.are.equal("close", list[1].headers["connection"])
            assert.are.equal("closed", how)
        end

        -- The held connections were not disturbed by the refusal.
        assert(held[1]:send("GET /api/hello?name=Held HTTP/1.1\r\n" .. HOST .. "\r\n"))
        local res = assert(H.read_response(held[1]))
        assert.are.same({ message = "Hello, Held!" }, cjson.decode(res.body))

        -- Free one slot; a new connection is served (retry while the server notices the close).
        held[5]:close()
        local served
        for _ = 1, 20 do
            socket.sleep(0.05)
            local r = parse_all((exchange(srv, "GET /api/hello?name=Next HTTP/1.1\r\n" .. HOST ..
                "Connection: close\r\n\r\n")))
            if r[1] and r[1].status == 200 then
                served = r[1]
                break
            end
        end
        assert.is_not_nil(served, "no connection served after a slot was freed")
        assert.are.same({ message = "Hello, Next!" }, cjson.decode(served.body))
        for i = 1, 4 do held[i]:close() end
    end)

    it("gives the 503 envelope a current timestamp and the five security headers", function()
        if srv.tls then pending("over TLS the cap closes without a handshake: there is no 503 to read") end
        socket.sleep(0.2) -- let the server see the previous test's sockets close first
        local held = {}
        for i = 1, 5 do held[i] = srv:connect(3) end
        socket.sleep(0.1)
        local raw = over_cap()
        for i = 1, 5 do held[i]:close() end
        local list = parse_all(raw)
        assert.are.equal(1, #list, raw)
        assert.are.equal(503, list[1].status)
        assert_envelope(list[1], 503, "CONNECTION_SERVER_BUSY")
    end)
end)

-- ---- abusive clients (each found by review as a crash or an unbounded buffer) ------------------

describe("HTTP abusive clients", function()
    local srv
    setup(function()
        srv = H.start { env = { WEB_SERVER_BODY_TIMEOUT_MS = "300" } }
    end)
    teardown(function() if srv then srv:stop() end end)

    local function rss_kib() return H.rss_kib(srv.pid) end

    it("survives Expect: 100-continue followed by a reset, past the body timeout", function()
        for i = 1, 200 do
            local c = srv:connect(2)
            c:setoption("linger", { on = true, timeout = 0 }) -- close sends RST
            c:send("POST /api/hello HTTP/1.1\r\n" .. HOST .. "\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
            if i % 2 == 0 then socket.sleep(0.001) end -- vary whether the head or the RST is seen first
            c:close()
        end
        socket.sleep(0.7) -- past WEB_SERVER_BODY_TIMEOUT_MS: a timer left on a freed connection fires now
        assert.is_true(srv:alive(), srv:log())
        assert_still_serving(srv)
    end)

    it("stops reading from a client that pipelines requests and never reads the answers", function()
        local before = rss_kib()
        local c = srv:connect(1)
        c:settimeout(0)
        local req = "GET /api/status HTTP/1.1\r\n" .. HOST .. "\r\n\r\n"
        local chunk = req:rep(math.floor(65536 / #req))
        local sent, deadline = 0, now() + 3
        while sent < 32 * 1024 * 1024 and now() < deadline do
            local n, err, partial = c:send(chunk)
            local got = n or partial or 0
            sent = sent + got
            if got < #chunk then socket.sleep(0.01) end
            if err == "closed" then break end
        end
        local grown = rss_kib() - before
        c:close()
        -- The kernel buffers fill and the server stops reading: far less than what was offered.
        assert.is_true(sent < 32 * 1024 * 1024, "the server kept reading all " .. sent .. " bytes")
        assert.is_true(grown < 64 * 1024, "RSS grew by " .. grown .. " KiB")
        assert_still_serving(srv)
    end)
end)
