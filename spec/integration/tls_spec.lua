-- Black-box specs for TLS in-process (src/tls.c, README "TLS"): with WEB_SERVER_TLS_CERT/KEY the
-- port speaks HTTPS and WSS only — TLS 1.2 (ECDHE + AEAD suites) and 1.3, ALPN http/1.1, session
-- resumption; plain HTTP, garbage, stalled and flooding handshakes are closed while the server
-- keeps serving; start-up refuses a missing, unreadable or mismatched certificate or key naming
-- the variable; the session cookie is always Secure; SIGHUP reloads the certificate for new
-- connections and keeps the open ones. Real clients: openssl s_client / s_time, curl, lua-sec.
-- These run in every integration run (they turn TLS on themselves, whatever KERYX_TEST_TLS says).
local H = require "server"
local T = require "tls_client"
local W = require "ws_client"
local socket = require "socket"
local cjson = require "cjson"
local ffi = require "ffi"

ffi.cdef [[ long write(int fd, const void *buf, unsigned long n); ]]

local sh_quote, now = H.sh_quote, socket.gettime

--- Runs a shell command; returns its exit code and combined output.
local function run(cmd)
    local out = os.tmpname()
    local p = assert(io.popen(cmd .. " > " .. sh_quote(out) .. " 2>&1; echo $?"))
    local code = tonumber(p:read("*l"))
    p:close()
    local text = H.read_file(out)
    os.remove(out)
    return code, text
end

--- openssl s_client against srv with extra arguments; stdin closed at once unless `stdin` (a
--- shell command whose output is piped in). Returns exit code and output.
local function s_client(srv, args, stdin)
    local cmd = ("openssl s_client -connect 127.0.0.1:%d -servername localhost -CAfile %s %s"):format(srv.port,
        sh_quote(T.dir() .. "/ca.pem"), args or "")
    if stdin then return run(stdin .. " | " .. cmd) end
    return run(cmd .. " < /dev/null")
end

--- The negotiated "New, TLSv1.x, Cipher is X" line of s_client's output (nil when none).
local function negotiated(out)
    local proto, cipher = out:match("\nNew, (TLSv1%.%d), Cipher is ([%w_-]+)")
    if cipher == "NONE" or not proto then return nil end
    return proto, cipher
end

--- Copies the test certificate pair to fresh paths (so a spec may overwrite them).
local function own_pair(name)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. sh_quote(dir)))
    local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
    assert(os.execute(("cp %s %s && cp %s %s"):format(sh_quote(T.dir() .. "/" .. name .. ".pem"), sh_quote(cert),
        sh_quote(T.dir() .. "/" .. name .. ".key"), sh_quote(key))))
    return cert, key, dir
end


--- Reads until the peer closes or `timeout` s pass: returns the bytes and "closed" / "timeout".
local function drain(c, timeout)
    c:settimeout(timeout)
    local out = {}
    while true do
        local chunk, err, partial = c:receive(4096)
        local got = chunk or partial
        if got and #got > 0 then out[#out + 1] = got end
        if not chunk then return table.concat(out), err == "timeout" and "timeout" or "closed" end
    end
end

local function raw_tcp(srv, timeout)
    local c = assert(socket.tcp())
    c:settimeout(timeout or 3)
    assert(c:connect("127.0.0.1", srv.port))
    return c
end

describe("TLS", function()
    local srv
    setup(function()
        srv = H.start { tls = true, env = { WEB_SERVER_HEADER_TIMEOUT_MS = "600" } }
    end)
    teardown(function() H.stop(srv) end)

    it("announces https:// and serves HTTPS to curl (ALPN http/1.1) with the throwaway CA", function()
        assert.is_true(srv.tls)
        local code, out = run(("curl -sS -v --cacert %s %s"):format(sh_quote(T.dir() .. "/ca.pem"),
            sh_quote(srv:url("/api/status"))))
        assert.are.equal(0, code, out)
        assert.truthy(out:find("ALPN: server accepted http/1.1", 1, true), out)
        assert.truthy(out:find('"healthy":true', 1, true), out)
    end)

    describe("protocols and suites", function()
        it("negotiates TLS 1.3", function()
            local code, out = s_client(srv, "-tls1_3")
            assert.are.equal(0, code, out)
            assert.are.equal("TLSv1.3", (negotiated(out)))
        end)

        it("negotiates TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305 only", function()
            for _, suite in ipairs { "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305" } do
                local code, out = s_client(srv, "-tls1_2 -cipher " .. suite)
                assert.are.equal(0, code, out)
                local proto, cipher = negotiated(out)
                assert.are.same({ "TLSv1.2", suite }, { proto, cipher })
            end
        end)

        it("refuses TLS 1.1 and 1.0", function()
            for _, v in ipairs { "-tls1_1", "-tls1" } do
                local code, out = s_client(srv, v .. " -cipher DEFAULT@SECLEVEL=0")
                assert.are_not.equal(0, code, out)
                assert.is_nil(negotiated(out), out)
            end
        end)

        it("refuses CBC suites and suites without forward secrecy", function()
            for _, suite in ipairs { "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384",
                "AES128-GCM-SHA256", "AES256-SHA", "DHE-RSA-AES128-GCM-SHA256" } do
                local code, out = s_client(srv, "-tls1_2 -cipher " .. suite)
                assert.are_not.equal(0, code, suite .. ":\n" .. out)
                assert.is_nil(negotiated(out), out)
            end
        end)

        it("answers ALPN with http/1.1, and refuses a client offering only h2", function()
            local code, out = s_client(srv, "-alpn h2,http/1.1")
            assert.are.equal(0, code, out)
            assert.truthy(out:find("ALPN protocol: http/1.1", 1, true), out)
            code, out = s_client(srv, "-alpn h2")
            assert.are_not.equal(0, code, out)
            assert.truthy(out:find("no application protocol", 1, true), out)
        end)

        it("resumes sessions (TLS 1.2 session cache, TLS 1.3 tickets)", function()
            for _, v in ipairs { "-tls1_2", "-tls1_3" } do
                local sess = os.tmpname()
                -- TLS 1.3 sends its ticket after the handshake: give s_client a moment to read it.
                local code, out = s_client(srv, v .. " -sess_out " .. sh_quote(sess), "sleep 0.3")
                assert.are.equal(0, code, out)
                code, out = s_client(srv, v .. " -sess_in " .. sh_quote(sess))
                os.remove(sess)
                assert.are.equal(0, code, out)
                assert.truthy(out:find("\nReused, TLSv1", 1, true), v .. ":\n" .. out)
            end
        end)
    end)

    describe("hostile clients", function()
        it("answers plain HTTP on the TLS port with a 400 and closes", function()
            local c = raw_tcp(srv)
            assert(c:send("GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"))
            local raw, how = drain(c, 2)
            c:close()
            assert.truthy(raw:find("^HTTP/1%.1 400 "), raw)
            assert.truthy(raw:find("https://", 1, true), raw)
            assert.is_nil(raw:find('"healthy"', 1, true), raw)
            assert.are.equal("closed", how)
            srv:assert_serving(3)
        end)

        it("closes garbage before a handshake and a garbage record after one", function()
            for _, bytes in ipairs { "\0\1\2\3garbage", "\22\3\1\0\5hello", ("\22\3\3\255\255" .. ("x"):rep(100)),
                "\128\1\0\0\0" } do
                local c = raw_tcp(srv)
                c:send(bytes)
                local raw, how = drain(c, 2)
                c:close()
                assert.are.equal("closed", how, ("%q"):format(bytes))
                assert.is_nil(raw:find("HTTP/1", 1, true))
            end
            -- After a real handshake: an application-data record that fails authentication.
            local c = srv:connect(3)
            local record = "\23\3\3\0\32" .. ("\0"):rep(32)
            assert.are.equal(#record, tonumber(ffi.C.write(c:getfd(), record, #record)))
            local _, how = drain(c, 2)
            c:close()
            assert.are.equal("closed", how)
            srv:assert_serving(3)
        end)

        it("closes a stalled handshake at the header timeout (600 ms here)", function()
            local silent, partial = raw_tcp(srv), raw_tcp(srv)
            assert(partial:send("\22\3\1\2\0\1\0\1\252\3\3")) -- the first bytes of a ClientHello
            local t0 = now()
            local _, how1 = drain(silent, 3)
            local _, how2 = drain(partial, 3)
            local took = now() - t0
            silent:close()
            partial:close()
            assert.are.same({ "closed", "closed" }, { how1, how2 })
            assert.is_true(took >= 0.4 and took < 2, "closed after " .. took .. " s")
            srv:assert_serving(3)
        end)

        it("survives a handshake flood and still serves", function()
            -- 150 abandoned half handshakes and 150 connections that hang up mid-handshake, while
            -- s_time completes new full handshakes for a second.
            local held = {}
            for i = 1, 150 do
                held[i] = raw_tcp(srv)
                held[i]:send("\22\3\1\2\0\1\0\1\252\3\3")
            end
            for _ = 1, 150 do
                local c = raw_tcp(srv)
                c:send("\22\3\1\2\0\1\0\1\252\3\3")
                c:close()
            end
            local code, out = run(("openssl s_time -connect 127.0.0.1:%d -new -time 1 -CAfile %s"):format(srv.port,
                sh_quote(T.dir() .. "/ca.pem")))
            assert.are.equal(0, code, out)
            local n = tonumber(out:match("(%d+) connections in [%d.]+s"))
            assert.is_true(n ~= nil and n > 10, out)
            srv:assert_serving(3)
            for i = 1, 150 do held[i]:close() end
            -- The held ones were closed by the header timeout in the meantime or now: still fine.
            srv:assert_serving(3)
        end)
    end)

    describe("over TLS", function()
        it("upgrades a WebSocket (wss) and answers a message", function()
            local ws = W.open(srv)
            local reply, raw = ws:request { messageType = "action", action = "status", messageId = 1 }
            assert.are.equal(1, reply.messageId, raw)
            assert.are.equal(cjson.encode(true), cjson.encode(reply.response.healthy), raw)
            ws:close()
        end)

        it("sets the session cookie Secure even with SESSION_COOKIE_SECURE=false", function()
            local s2 = H.start { tls = true, env = { SESSION_COOKIE_SECURE = "false" } }
            finally(function() s2:stop() end)
            local email = ("tls%d@example.com"):format(math.random(1e9))
            local body = { name = "TLS User", email = email, password = "correct horse battery" }
            assert.are.equal(200, H.call(s2, "PUT", "/api/user", body).status)
            local res = H.call(s2, "PUT", "/api/session", { email = email, password = body.password })
            assert.are.equal(200, res.status, res.body)
            local cookie = res.headers["set-cookie"]
            assert.truthy(cookie and cookie:find("; Secure", 1, true), tostring(cookie))
        end)

        it("closes connections over the cap without a handshake and serves the others", function()
            local s2 = H.start { tls = true, env = { WEB_SERVER_MAX_CONNECTIONS = "2" } }
            finally(function() s2:stop() end)
            local a, b = s2:connect(2), s2:connect(2)
            H.assert_refused(s2)
            assert(a:send(H.build { path = "/api/status" }))
            assert.are.equal(200, H.read_response(a).status)
            a:close()
            b:close()
        end)
    end)
end)

describe("TLS start-up", function()
    local function refused(env, needle, also)
        local code, out = H.start_fail(env)
        assert.are.equal(1, code, out)
        assert.truthy(out:find(needle, 1, true), out)
        if also then assert.truthy(out:find(also, 1, true), out) end
        assert.is_nil(out:find("started server", 1, true), out)
    end

    it("refuses a missing certificate or key file, naming its variable", function()
        local d = T.dir()
        refused({ WEB_SERVER_TLS_CERT = d .. "/nope.pem", WEB_SERVER_TLS_KEY = d .. "/server.key" },
            "WEB_SERVER_TLS_CERT", "No such file")
        refused({ WEB_SERVER_TLS_CERT = d .. "/server.pem", WEB_SERVER_TLS_KEY = d .. "/nope.key" },
            "WEB_SERVER_TLS_KEY", "No such file")
    end)

    it("refuses an unreadable or non-PEM file, naming its variable", function()
        local d = T.dir()
        refused({ WEB_SERVER_TLS_CERT = d, WEB_SERVER_TLS_KEY = d .. "/server.key" }, "WEB_SERVER_TLS_CERT")
        refused({ WEB_SERVER_TLS_CERT = d .. "/server.pem", WEB_SERVER_TLS_KEY = d .. "/ca.pem" },
            "WEB_SERVER_TLS_KEY")
        local junk = os.tmpname()
        local f = assert(io.open(junk, "w"))
        f:write("not a certificate\n")
        f:close()
        refused({ WEB_SERVER_TLS_CERT = junk, WEB_SERVER_TLS_KEY = d .. "/server.key" }, "WEB_SERVER_TLS_CERT")
        os.remove(junk)
    end)

    it("refuses a key that does not match the certificate, naming WEB_SERVER_TLS_KEY", function()
        local d = T.dir()
        refused({ WEB_SERVER_TLS_CERT = d .. "/server.pem", WEB_SERVER_TLS_KEY = d .. "/other.key" },
            "WEB_SERVER_TLS_KEY", "does not match")
    end)

    it("refuses a certificate without a key", function()
        refused({ WEB_SERVER_TLS_CERT = T.dir() .. "/server.pem" }, "WEB_SERVER_TLS_KEY")
    end)
end)

describe("TLS reload on SIGHUP", function()
    it("serves the new certificate to new connections and keeps the open ones; a bad file keeps the old", function()
        local cert, key, dir = own_pair("server")
        local srv = H.start { tls = true, env = { WEB_SERVER_TLS_CERT = cert, WEB_SERVER_TLS_KEY = key } }
        finally(function()
            srv:stop()
            os.execute("rm -rf " .. sh_quote(dir))
        end)
        local function subject()
            local _, out = s_client(srv, "")
            return out:match("subject=CN ?= ?([%w.-]+)")
        end
        assert.are.equal("localhost", subject())
        local open = srv:connect(5) -- a keep-alive connection made with the first certificate
        assert(open:send(H.build { path = "/api/status" }))
        assert.are.equal(200, H.read_response(open).status)

        assert(os.execute(("cp %s %s && cp %s %s"):format(sh_quote(T.dir() .. "/other.pem"), sh_quote(cert),
            sh_quote(T.dir() .. "/other.key"), sh_quote(key))))
        os.execute("kill -HUP " .. srv.pid)
        assert.truthy(srv:wait_log("reloaded the TLS certificate"):find("reloaded the TLS certificate", 1, true))
        assert.are.equal("keryx-reloaded", subject())
        assert(open:send(H.build { path = "/api/status" }))
        assert.are.equal(200, H.read_response(open).status, "the open connection was dropped")

        -- A broken file: logged, and the last good pair stays in use.
        local f = assert(io.open(cert, "w"))
        f:write("garbage\n")
        f:close()
        os.execute("kill -HUP " .. srv.pid)
        local log = srv:wait_log("not reloaded")
        assert.truthy(log:find("TLS certificate not reloaded", 1, true), log)
        assert.truthy(log:find("WEB_SERVER_TLS_CERT", 1, true), log)
        assert.are.equal("keryx-reloaded", subject())
        assert(open:send(H.build { path = "/api/status" }))
        assert.are.equal(200, H.read_response(open).status)
        open:close()
        assert.is_true(srv:alive())
    end)
end)
