-- Black-box specs for HTTP hardening found by an attack run, each trying to break it:
--   * one client cannot take every connection: at WEB_SERVER_MAX_CONNECTIONS, another client
--     is served by closing an idle connection of the biggest holder (never one with a request
--     in flight), the holder itself is refused (503) as before, and
--     WEB_SERVER_MAX_CONNECTIONS_PER_IP adds a hard per-address cap;
--   * a request with two Origin headers (an allowed one first) gets no CORS grant, and a
--     WebSocket upgrade with two is refused;
--   * JSON answers, C-decided errors included, say `application/json; charset=utf-8`.
-- Clients on 127.0.0.2 stand for "another client" (Linux routes all of 127/8 to loopback).
local H = require "server"
local W = require "ws_client"
local socket = require "socket"

local function connect_from(srv, ip)
    return srv:connect(2, ip)
end

local function get_on(c, path)
    assert(c:send(H.build { path = path or "/api/status" }))
    return H.read_response(c)
end

local function closed(c)
    c:settimeout(1)
    local _, err = c:receive(1)
    return err == "closed"
end


describe("hardening: HTTP", function()
    local srv
    after_each(function()
        if srv then srv:stop() end
        srv = nil
    end)

    describe("the connection cap", function()
        it("serves another client by closing an idle connection of the one holding them all", function()
            srv = H.start { env = { WEB_SERVER_MAX_CONNECTIONS = "6" } }
            local hog = {}
            for i = 1, 6 do
                hog[i] = connect_from(srv, "127.0.0.1")
                assert.are.equal(200, get_on(hog[i]).status) -- then idle, kept alive
            end
            local other = connect_from(srv, "127.0.0.2")
            local res = get_on(other)
            assert.are.equal(200, res.status)
            local gone = 0
            for i = 1, 6 do if closed(hog[i]) then gone = gone + 1 end end
            assert.are.equal(1, gone)
            assert.truthy(srv:log():find("closing an idle connection of 127.0.0.1 for 127.0.0.2", 1, true))
            -- The holder asking for one more is refused, as any client at the cap was.
            H.assert_refused(srv, "127.0.0.1")
            for i = 1, 6 do hog[i]:close() end
            other:close()
            -- the server sees the closes as it reads the EOFs: then 127.0.0.1 is welcome again
            -- (until then a TLS connection is refused without a handshake: connect raises)
            assert.is_true(H.eventually(2, function()
                local ok, again = pcall(srv.request, srv, { path = "/api/status", timeout = 2 })
                return ok and again.status == 200
            end))
        end)

        it("never closes a connection with a request in flight", function()
            srv = H.start { env = { WEB_SERVER_MAX_CONNECTIONS = "3" } }
            local busy = {}
            for i = 1, 3 do
                busy[i] = connect_from(srv, "127.0.0.1")
                assert.are.equal(200, get_on(busy[i]).status)
                -- a request under way: half of its head has arrived
                assert(busy[i]:send("GET /api/status HTTP/1.1\r\nHost: x\r\n"))
            end
            socket.sleep(0.3) -- the server has read the partial heads
            H.assert_refused(srv, "127.0.0.2")
            for i = 1, 3 do
                assert(busy[i]:send("\r\n"))
                assert.are.equal(200, H.read_response(busy[i]).status)
                busy[i]:close()
            end
        end)

        it("WEB_SERVER_MAX_CONNECTIONS_PER_IP caps one address, others still get in", function()
            srv = H.start { env = { WEB_SERVER_MAX_CONNECTIONS_PER_IP = "2" } }
            local a1, a2 = connect_from(srv, "127.0.0.1"), connect_from(srv, "127.0.0.1")
            assert.are.equal(200, get_on(a1).status)
            assert.are.equal(200, get_on(a2).status)
            H.assert_refused(srv, "127.0.0.1")
            local b = connect_from(srv, "127.0.0.2")
            assert.are.equal(200, get_on(b).status)
            a1:close()
            a2:close()
            b:close()
            -- once one closes, the address may connect again
            assert.is_true(H.eventually(2, function()
                local opened, a4 = pcall(connect_from, srv, "127.0.0.1") -- over TLS a refusal raises
                if not opened then return false end
                local ok = get_on(a4)
                a4:close()
                return ok and ok.status == 200
            end))
        end)

        it("refuses a negative per-address cap at start-up, naming the variable", function()
            local bad = H.start { env = { WEB_SERVER_MAX_CONNECTIONS_PER_IP = "-1" }, wait = false }
            H.eventually(5, function() return not bad:alive() end)
            assert.truthy(bad:log():find("WEB_SERVER_MAX_CONNECTIONS_PER_IP", 1, true))
            bad:stop()
        end)
    end)

    describe("two Origin headers", function()
        it("get no CORS grant, even with an allowed origin first", function()
            srv = H.start { env = { WEB_SERVER_ALLOWED_ORIGINS = "https://good.example" } }
            local one = srv:request { path = "/api/status", headers = { { "Origin", "https://good.example" } } }
            assert.are.equal("https://good.example", one.headers["access-control-allow-origin"])
            local two = srv:request { path = "/api/status",
                headers = { { "Origin", "https://good.example" }, { "Origin", "https://evil.example" } } }
            assert.are.equal(200, two.status)
            assert.is_nil(two.headers["access-control-allow-origin"])
            assert.is_nil(two.headers["access-control-allow-credentials"])
        end)

        it("refuse a WebSocket upgrade", function()
            srv = H.start { env = { WEB_SERVER_ALLOWED_ORIGINS = "https://good.example" } }
            local ws = W.connect(srv.port, "/", { Origin = "https://good.example" })
            assert.truthy(ws) -- one allowed Origin upgrades
            ws:close()
            local c = srv:connect(2)
            assert(c:send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" ..
                "Origin: https://good.example\r\nOrigin: https://evil.example\r\n\r\n"))
            local res = H.read_response(c)
            c:close()
            assert.are.equal(403, res.status)
            srv:assert_serving()
        end)
    end)

    describe("JSON content type", function()
        it("names the charset on action answers and on errors decided in C", function()
            srv = H.start {}
            assert.are.equal("application/json; charset=utf-8", srv:request("/api/status").headers["content-type"])
            local nf = srv:request("/api/nope")
            assert.are.equal(404, nf.status)
            assert.are.equal("application/json; charset=utf-8", nf.headers["content-type"])
            local raw = srv:raw("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            assert.truthy(raw:find("HTTP/1.1 400", 1, true))
            assert.truthy(raw:find("Content-Type: application/json; charset=utf-8\r\n", 1, true))
        end)
    end)
end)
