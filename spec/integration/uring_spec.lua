-- Black-box specs of WEB_SERVER_IO_URING (README "Configuration"): with it on, plain sockets
-- read and send through one io_uring (src/uring.c) and the server says so once; answers are
-- byte for byte what the socket path gives, one at a time, pipelined in one write, and while
-- the client reads slowly; with TLS the switch is ignored. `make test-integration-uring`
-- reruns the byte-moving specs with the switch on; this file checks it really is on.
local H = require "server"
local cjson = require "cjson"

local HOST = "Host: localhost\r\n"
local RING_LINE = "io_uring: plain-socket reads and sends are batched"

local function start(extra)
    local env = { LOG_LEVEL = "info" }
    for k, v in pairs(extra or {}) do env[k] = v end
    return H.start { env = env }
end

describe("WEB_SERVER_IO_URING", function()
    if H.over_tls() then
        it("is ignored over TLS (the ring serves plain sockets only)", function()
            local srv = start { WEB_SERVER_IO_URING = "true" }
            finally(function() H.stop(srv) end)
            assert.is_nil(srv:log():find(RING_LINE, 1, true), srv:log())
            assert.are.equal(200, H.get(srv, "/api/status").status)
        end)
        return
    end

    local srv
    setup(function() srv = start { WEB_SERVER_IO_URING = "true" } end)
    teardown(function() H.stop(srv) end)

    it("turns the ring on and says so once", function()
        local log = srv:wait_log(RING_LINE, 2)
        assert.are.equal(1, H.count(log, RING_LINE), log)
    end)

    it("answers 200 sequential requests on one keep-alive connection", function()
        local c = srv:connect(5)
        for i = 1, 200 do
            assert(c:send("GET /api/hello?name=R" .. i .. " HTTP/1.1\r\n" .. HOST .. "\r\n"))
            local res = assert(H.read_response(c))
            assert.are.equal(200, res.status)
            assert.are.same({ message = "Hello, R" .. i .. "!" }, cjson.decode(res.body))
        end
        c:close()
    end)

    it("answers 50 requests sent in one write, in order", function()
        local c = srv:connect(5)
        local batch = {}
        for i = 1, 50 do batch[i] = "GET /api/hello?name=P" .. i .. " HTTP/1.1\r\n" .. HOST .. "\r\n" end
        assert(c:send(table.concat(batch)))
        for i = 1, 50 do
            local res = assert(H.read_response(c))
            assert.are.equal(200, res.status)
            assert.are.same({ message = "Hello, P" .. i .. "!" }, cjson.decode(res.body))
        end
        c:close()
    end)

    it("takes a head that arrives one byte at a time", function()
        local c = srv:connect(5)
        local req = "GET /api/hello?name=Slow HTTP/1.1\r\n" .. HOST .. "\r\n"
        for i = 1, #req do
            assert(c:send(req:sub(i, i)))
            if i % 7 == 0 then require("socket").sleep(0.002) end
        end
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.are.same({ message = "Hello, Slow!" }, cjson.decode(res.body))
        c:close()
    end)

    it("still refuses a smuggling shape and closes", function()
        local c = srv:connect(5)
        assert(c:send("POST /api/hello HTTP/1.1\r\n" .. HOST ..
            "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
        local res = assert(H.read_response(c))
        assert.are.equal(400, res.status)
        c:close()
    end)

    it("is off unless asked for", function()
        local plain = start { WEB_SERVER_IO_URING = "false" } -- `make test-integration-uring` exports true
        finally(function() H.stop(plain) end)
        assert.are.equal(200, H.get(plain, "/api/status").status)
        assert.is_nil(plain:log():find(RING_LINE, 1, true), plain:log())
    end)
end)
