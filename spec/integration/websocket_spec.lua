-- Black-box specs for the WebSocket transport (security: Origin check, message and size limits) on
-- the default app and a real redis-server, with the hand-written client in
-- spec/helpers/ws_client.lua:
--   * the handshake: Sec-WebSocket-Accept, Origin allow-list (403, no upgrade), version (426),
--     key (400), method (400);
--   * every messageType: action replies and errors, messageId echo, bad JSON, unknown types;
--   * the limits: payload (1009), messages per second (1008 and disconnect), subscriptions,
--     UTF-8 (1007), binary (1003), RFC 6455 framing violations (1002), fragments with a ping
--     in between, ping/pong, server pings, idle timeout;
--   * the drain on SIGTERM/SIGINT: close 1001 "Server shutting down", 503 for a late upgrade,
--     the process exits.
-- After every hostile input the server must still answer GET /api/status with 200.
local H = require "server"
local W = require "ws_client"
local socket = require "socket"
local cjson = require "cjson"

local OP = W.OP

-- Both bugs found while writing these specs are fixed (a close decided inside
-- wslay_event_recv freed the context under it; a protocol error ended the stream without a
-- 1002 close frame): their tests run like every other one.
local BUGS = {}

local function it_unless(bug, name, fn)
    assert(bug == nil, "no test may be skipped: " .. tostring(bug))
    it(name, fn)
end

local stop, open, error_of, count = H.stop, W.open, W.error_of, H.count


--- The socket receives a close frame with code (and reason when given), then the TCP stream ends.
local function closes_with(ws, code, reason)
    local got, why = ws:read_close(2)
    assert.are.equal(code, got, "expected close " .. code .. ", got " .. tostring(got) .. " (" .. tostring(why) .. ")")
    if reason then assert.are.equal(reason, why) end
    assert.is_true(ws:closed_by_peer(2), "the server kept the TCP stream open after its close frame")
    ws:close()
end

--- An action message; returns the decoded reply and its raw text.
local function act(ws, action, params, mid)
    return ws:request { messageType = "action", action = action, params = params, messageId = mid }
end


-- ---- handshake -------------------------------------------------------------------------------

describe("websocket handshake", function()
    local srv, strict

    setup(function()
        srv = H.start {}
        strict = H.start { env = { WEB_SERVER_ALLOWED_ORIGINS = "https://a.example" } }
    end)
    teardown(function()
        stop(srv)
        stop(strict)
    end)
    after_each(function()
        srv:assert_serving()
        strict:assert_serving()
    end)

    it("answers 101 with the RFC 6455 Sec-WebSocket-Accept", function()
        local ws = open(srv)
        local h = ws.response.headers
        assert.are.equal(101, ws.response.status)
        assert.are.equal("websocket", h["upgrade"]:lower())
        assert.are.equal("upgrade", h["connection"]:lower())
        assert.are.equal(W.accept_for(ws.key), h["sec-websocket-accept"])
        ws:close(1000)
        -- The example of RFC 6455 §1.3, independent of this client's SHA-1.
        ws = open(srv, { ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ==" })
        assert.are.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", ws.response.headers["sec-websocket-accept"])
        ws:close(1000)
    end)

    it("upgrades on any path", function()
        local ws = assert(W.connect(srv.port, "/some/where?x=1"))
        ws:send_frame { opcode = OP.PING, payload = "p" }
        local f = assert(ws:receive(2))
        assert.are.equal(OP.PONG, f.opcode)
        ws:close(1000)
    end)

    it("refuses a disallowed Origin with 403 and never upgrades", function()
        for _, origin in ipairs { "https://evil.example", "http://a.example", "https://a.example:8443",
            "https://a.example.evil.com", "null" } do
            local ws, res = W.connect(strict.port, "/", { Origin = origin })
            assert.is_nil(ws, origin)
            assert.are.equal(403, res.status, origin)
            assert.is_truthy(res.body:find("WebSocket origin not allowed", 1, true), res.body)
            assert.is_nil(res.headers["sec-websocket-accept"])
            assert.is_nil(res.headers["upgrade"])
        end
        -- A frame pipelined behind the refused handshake is never read as WebSocket: the bytes
        -- that come back are the 403 alone, and the server closes.
        local key = W.new_key()
        local out, closed = strict:raw("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
            "Origin: https://evil.example\r\nSec-WebSocket-Key: " .. key .. "\r\nSec-WebSocket-Version: 13\r\n\r\n" ..
            W.frame { opcode = OP.PING, payload = "smuggled" }, 2)
        assert.is_true(closed)
        assert.are.equal(1, count(out, "HTTP/1.1"))
        assert.is_truthy(out:match("^HTTP/1%.1 403"))
        assert.is_nil(out:find("smuggled", 1, true))
        assert.is_nil(strict:log():find("New websocket connection", 1, true), strict:log())
    end)

    it("upgrades an allowed Origin and a request without Origin", function()
        local ws = open(strict, { Origin = "https://a.example" })
        assert.are.equal(W.accept_for(ws.key), ws.response.headers["sec-websocket-accept"])
        ws:close(1000)
        ws = open(strict)
        assert.are.equal(101, ws.response.status)
        ws:close(1000)
        -- With the default allow-list ("*") any Origin upgrades.
        ws = open(srv, { Origin = "https://anywhere.example" })
        ws:close(1000)
    end)

    it("answers 426 with Sec-WebSocket-Version: 13 to another version", function()
        for _, v in ipairs { "8", "12", "14", "13, 8", false } do
            local ws, res = W.connect(srv.port, "/", { ["Sec-WebSocket-Version"] = v })
            assert.is_nil(ws, tostring(v))
            assert.are.equal(426, res.status, tostring(v))
            assert.are.equal("13", res.headers["sec-websocket-version"])
            assert.is_nil(res.headers["sec-websocket-accept"])
            -- the same envelope and headers as every other error decided in C
            local e = cjson.decode(res.body).error
            assert.are.equal("CONNECTION_BAD_REQUEST", e.type)
            assert.is_number(e.timestamp)
            assert.are.equal("nosniff", res.headers["x-content-type-options"])
        end
    end)

    it("answers 400 to a malformed or missing Sec-WebSocket-Key", function()
        local keys = {
            false, "", "short", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub2*jZQ==", "dGhlIHNhbXBsZSBub25jZQ==dGhl",
            ("A"):rep(300),
        }
        for _, k in ipairs(keys) do
            local ws, res = W.connect(srv.port, "/", { ["Sec-WebSocket-Key"] = k })
            assert.is_nil(ws, tostring(k))
            assert.are.equal(400, res.status, tostring(k))
            assert.is_nil(res.headers["sec-websocket-accept"])
        end
    end)

    it("answers 400 to an upgrade that is not a GET", function()
        for _, m in ipairs { "POST", "PUT", "HEAD" } do
            local ws, res = W.connect(srv.port, "/", { ["Content-Length"] = "0" }, { method = m })
            assert.is_nil(ws, m)
            assert.are.equal(400, res.status, m)
            assert.is_nil(res.headers["sec-websocket-accept"])
        end
    end)
end)

-- ---- messages --------------------------------------------------------------------------------

describe("websocket messages", function()
    local srv, ws

    setup(function()
        -- A cap far above what the specs below send (0 is refused at start-up).
        srv = H.start { env = { PROCESS_NAME = "ws-test-server", WS_MAX_MESSAGES_PER_SECOND = "1000000" } }
    end)
    teardown(function() stop(srv) end)
    before_each(function() ws = open(srv) end)
    after_each(function()
        ws:close(1000)
        srv:assert_serving()
    end)

    it("runs an action: {messageId, response}", function()
        local reply, raw = act(ws, "status", {}, 1)
        assert.is_table(reply, raw)
        assert.are.equal(1, reply.messageId)
        assert.is_table(reply.response, raw)
        assert.are.equal("ws-test-server", reply.response.name)
        assert.is_number(reply.response.pid)
        assert.is_nil(reply.error)
        -- Compact JSON, messageId first (as Keryx answers).
        assert.is_truthy(raw:match('^{"messageId":1,"response":{'), raw)
    end)

    it("answers an unknown action with CONNECTION_ACTION_NOT_FOUND", function()
        local reply, raw = act(ws, "unknown", {}, 1)
        local err = error_of(reply, raw)
        assert.are.equal(1, reply.messageId)
        assert.are.equal("CONNECTION_ACTION_NOT_FOUND", err.type)
        assert.are.equal("Action not found: unknown", err.message)
        assert.is_nil(reply.response)
    end)

    it("answers a validation failure with the error shape and its key", function()
        local reply, raw = act(ws, "hello", { name = ("x"):rep(101) }, "v1")
        local err = error_of(reply, raw)
        assert.are.equal("v1", reply.messageId)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", err.type)
        assert.are.equal("name", err.key)
        assert.are.equal("name must be at most 100 characters", err.message)
        -- A wrong type and a secret input: the secret is never echoed back.
        reply, raw = act(ws, "user:create", { name = "Al", email = "not-an-email", password = "hunter2-secret" }, 2)
        err = error_of(reply, raw)
        assert.are.equal("CONNECTION_ACTION_PARAM_REQUIRED", err.type)
        assert.is_string(err.key)
        assert.is_nil(raw:find("hunter2-secret", 1, true), raw)
        -- params that are not an object
        reply, raw = act(ws, "hello", { "a", "b" }, 3)
        error_of(reply, raw)
        assert.are.equal(3, reply.messageId)
        -- and a valid call for contrast
        reply, raw = act(ws, "hello", { name = "Ada" }, 4)
        assert.are.same({ messageId = 4, response = { message = "Hello, Ada!" } }, reply, raw)
    end)

    it("echoes messageId verbatim (numbers, strings, objects) and omits it when absent", function()
        for _, mid in ipairs { 7, 0, -3, 2.5, "abc", "", { a = { 1, 2 } }, true } do
            -- Read the very next message: a reply with a different id must fail here.
            ws:send_json { messageType = "action", action = "status", messageId = mid }
            local reply, raw = ws:json(2)
            assert.are.same(mid, reply.messageId, raw)
            assert.is_table(reply.response, raw)
        end
        local reply, raw = ws:request { messageType = "action", action = "status" }
        assert.is_table(reply.response, raw)
        assert.is_nil(raw:find('"messageId"', 1, true), raw)
        reply, raw = ws:request { messageType = "action", action = "nope" }
        error_of(reply, raw)
        assert.is_nil(raw:find('"messageId"', 1, true), raw)
    end)

    it("answers malformed JSON with an error reply and keeps the socket", function()
        for _, bad in ipairs { "{bad", "", "[1,2", '{"messageType":"action",}', "\"unterminated" } do
            ws:send_text(bad)
            local reply, raw = ws:json(2)
            local err = error_of(reply, raw)
            assert.are.equal("CONNECTION_ACTION_RUN", err.type, raw)
            assert.is_nil(reply.messageId)
        end
        local reply = act(ws, "status", {}, 9)
        assert.are.equal(9, reply.messageId)
    end)

    it("answers a missing or unknown messageType", function()
        local reply, raw = ws:request { messageType = "bogus", messageId = 42 }
        local err = error_of(reply, raw)
        assert.are.equal(42, reply.messageId)
        assert.are.equal("CONNECTION_ACTION_RUN", err.type)
        assert.is_truthy(err.message:find("messageType either missing or unknown", 1, true), err.message)
        reply, raw = ws:request { action = "status", messageId = "m" }
        err = error_of(reply, raw)
        assert.are.equal("m", reply.messageId)
        assert.is_truthy(err.message:find("messageType either missing or unknown", 1, true), err.message)
        -- Valid JSON that is not an object, and the client→server "broadcast" Keryx never had.
        for _, text in ipairs { "42", '"action"', "null", "[]" } do
            ws:send_text(text)
            reply, raw = ws:json(2)
            error_of(reply, raw)
        end
        reply, raw = ws:request { messageType = "broadcast", channel = "room:lobby", message = "x", messageId = 5 }
        err = error_of(reply, raw)
        assert.is_truthy(err.message:find("messageType either missing or unknown", 1, true), err.message)
    end)

    it("logs [ACTION:WEBSOCKET:OK] for an action run over the socket", function()
        local reply = act(ws, "status", {}, 1)
        assert.is_table(reply.response)
        H.sleep(0.05)
        local log = srv:log()
        assert.is_truthy(log:find("[ACTION:WEBSOCKET:OK] status", 1, true), log)
        assert.is_truthy(log:find("New websocket connection from 127.0.0.1", 1, true), log)
    end)

    it("answers a fragmented message (3 fragments) with a ping in between, pong included", function()
        local text = cjson.encode { messageType = "action", action = "hello", params = { name = "Fragmented" }, messageId = 77 }
        assert(ws:send_text(text, {
            fragments = 3,
            between = function(i)
                if i == 1 then ws:send_frame { opcode = OP.PING, payload = "mid-message" } end
            end,
        }))
        local pong, reply
        for _ = 1, 4 do
            local f = assert(ws:receive(2))
            if f.opcode == OP.PONG then
                pong = f
            elseif f.opcode == OP.TEXT then
                assert.is_nil(reply, "two replies to one fragmented message")
                reply = cjson.decode(f.payload)
            end
            if pong and reply then break end
        end
        assert.is_table(pong, "no pong for the ping between fragments")
        assert.are.equal("mid-message", pong.payload)
        assert.are.same({ messageId = 77, response = { message = "Hello, Fragmented!" } }, reply)
        -- and nothing else follows
        local extra = ws:receive(0.2)
        assert.is_nil(extra)
    end)

    it("answers every one of 100 messages pipelined in one write", function()
        local frames = {}
        for i = 1, 100 do
            frames[i] = W.frame { payload = cjson.encode { messageType = "action", action = "status", messageId = i } }
        end
        assert(ws:send_raw(table.concat(frames)))
        local seen = 0
        for _ = 1, 100 do
            local reply, raw = ws:json(3)
            assert.is_table(reply, raw)
            assert.is_table(reply.response, raw)
            seen = seen + 1
        end
        assert.are.equal(100, seen)
    end)

    it("reassembles a frame that arrives a byte at a time", function()
        ws.sock:setoption("tcp-nodelay", true)
        local bytes = W.frame { payload = cjson.encode { messageType = "action", action = "hello",
            params = { name = "Slow" }, messageId = 1 } }
        for i = 1, #bytes do
            assert(ws:send_raw(bytes:sub(i, i)))
            if i % 8 == 0 then socket.sleep(0.002) end
        end
        local reply, raw = ws:json(2)
        assert.are.same({ messageId = 1, response = { message = "Hello, Slow!" } }, reply, raw)
    end)

    it("reads a frame sent in the same write as the upgrade request", function()
        local early = assert(W.connect(srv.port, "/", nil, {
            body = W.frame { payload = cjson.encode { messageType = "action", action = "status", messageId = "early" } },
        }))
        local reply, raw = early:json(2)
        assert.is_table(reply, raw)
        assert.are.equal("early", reply.messageId)
        assert.is_table(reply.response, raw)
        early:close(1000)
    end)

    it("answers a ping with a pong carrying the same payload, unmasked", function()
        for _, p in ipairs { "", "x", ("p"):rep(125), "\0\1\2\255" } do
            ws:send_frame { opcode = OP.PING, payload = p }
            local f = assert(ws:receive(2))
            assert.are.equal(OP.PONG, f.opcode)
            assert.are.equal(p, f.payload)
            assert.is_false(f.masked)
        end
        -- An unsolicited pong is ignored, not answered.
        ws:send_frame { opcode = OP.PONG, payload = "unsolicited" }
        assert.is_nil(ws:receive(0.2))
    end)

    it("survives sockets that vanish while their action is still running", function()
        for i = 1, 5 do
            local gone = open(srv)
            -- user:create hashes the password on a worker thread: the reply comes after the close
            assert(gone:send_json { messageType = "action", action = "user:create", messageId = i,
                params = { name = "Gone " .. i, email = ("gone-%d-%d@example.com"):format(i, math.random(1, 1e9)),
                    password = "vanishing-password" } })
            gone.sock:close()
        end
        H.sleep(0.3)
        local reply = act(ws, "status", {}, "after")
        assert.are.equal("after", reply.messageId)
    end)

    it("answers a clean close with a close echo", function()
        ws:send_frame { opcode = OP.CLOSE, payload = "\3\232bye" }
        local code = ws:read_close(2)
        assert.are.equal(1000, code)
        assert.is_true(ws:closed_by_peer(2))
    end)
end)

-- ---- limits and framing -------------------------------------------------------------------

describe("websocket limits", function()
    local srv

    setup(function()
        srv = H.start { env = {
            WS_MAX_PAYLOAD_SIZE = "1024", WS_MAX_MESSAGES_PER_SECOND = "5", WS_MAX_SUBSCRIPTIONS = "2",
        } }
    end)
    teardown(function() stop(srv) end)
    after_each(function() srv:assert_serving() end)

    --- A JSON action message of exactly n bytes.
    local function message_of_size(n, mid)
        local base = cjson.encode { messageType = "action", action = "status", messageId = mid, pad = "" }
        local text = base:gsub('"pad":""', '"pad":"' .. ("p"):rep(n - #base) .. '"')
        assert(#text == n)
        return text
    end

    it("accepts a message of exactly WS_MAX_PAYLOAD_SIZE bytes", function()
        local ws = open(srv)
        ws:send_text(message_of_size(1024, 5))
        local reply, raw = ws:json(2)
        assert.is_table(reply, raw)
        assert.are.equal(5, reply.messageId)
        assert.is_table(reply.response, raw)
        ws:close(1000)
    end)

    it("closes with 1009 on a message over WS_MAX_PAYLOAD_SIZE, unanswered", function()
        local ws = open(srv)
        ws:send_text(message_of_size(1025, 6))
        local f = assert(ws:receive(2))
        assert.are.equal(OP.CLOSE, f.opcode, "expected a close, got: " .. f.payload)
        assert.are.equal(1009, (W.close_code(f.payload)))
        assert.is_true(ws:closed_by_peer(2))
        ws:close()
    end)

    it("closes with 1009 when fragments add up to more than WS_MAX_PAYLOAD_SIZE", function()
        local ws = open(srv)
        ws:send_text(message_of_size(1200, 7), { fragments = 3 })
        closes_with(ws, 1009)
    end)

    it("closes with 1009 on a frame header announcing a huge length (nothing buffered)", function()
        local ws = open(srv)
        -- 2^40 bytes announced, 64 sent: refused from the header, not after reading a terabyte.
        ws:send_frame { opcode = OP.TEXT, payload = ("x"):rep(64), length = 2 ^ 40 }
        closes_with(ws, 1009)
    end)

    it("ends the connection on a 64-bit length with the most significant bit set", function()
        local ws = open(srv)
        ws:send_frame { opcode = OP.TEXT, payload = ("x"):rep(64), length = 2 ^ 63 }
        local code = ws:read_close(2)
        assert.is_true(code == nil or code == 1002 or code == 1009, tostring(code))
        assert.is_true(ws:closed_by_peer(2))
        ws:close()
    end)

    it_unless(BUGS.close_in_callback, "disconnects a client over WS_MAX_MESSAGES_PER_SECOND with close 1008", function()
        local ws = open(srv)
        for i = 1, 10 do ws:send_json { messageType = "action", action = "status", messageId = i } end
        local replies, code, reason = {}, nil, nil
        while true do
            local f = ws:receive(2)
            if not f then break end
            if f.opcode == OP.TEXT then
                replies[#replies + 1] = cjson.decode(f.payload)
            elseif f.opcode == OP.CLOSE then
                code, reason = W.close_code(f.payload)
                break
            end
        end
        assert.are.equal(1008, code)
        assert.are.equal("WebSocket rate limit exceeded", reason)
        assert.is_true(#replies <= 5, #replies .. " replies")
        for _, r in ipairs(replies) do assert.is_table(r.response) end
        assert.is_true(ws:closed_by_peer(2))
        ws:close()
    end)

    it("lets WS_MAX_MESSAGES_PER_SECOND messages through in a second", function()
        local ws = open(srv)
        for i = 1, 5 do ws:send_json { messageType = "action", action = "status", messageId = i } end
        local seen = {}
        for _ = 1, 5 do
            local reply, raw = ws:json(2)
            assert.is_table(reply, raw)
            seen[reply.messageId] = true
        end
        for i = 1, 5 do assert.is_true(seen[i], "no reply " .. i) end
        assert.is_false(ws:closed_by_peer(0.2))
        ws:close(1000)
    end)

    it("refuses a subscription over WS_MAX_SUBSCRIPTIONS", function()
        local ws = open(srv)
        local r1 = ws:request { messageType = "subscribe", channel = "room:one", messageId = 1 }
        local r2 = ws:request { messageType = "subscribe", channel = "room:two", messageId = 2 }
        assert.are.same({ messageId = 1, subscribed = { channel = "room:one" } }, r1)
        assert.are.same({ messageId = 2, subscribed = { channel = "room:two" } }, r2)
        local r3, raw = ws:request { messageType = "subscribe", channel = "room:three", messageId = 3 }
        local err = error_of(r3, raw)
        assert.are.equal(3, r3.messageId)
        assert.are.equal("Too many subscriptions (max 2)", err.message)
        assert.are.equal("CONNECTION_CHANNEL_VALIDATION", err.type)
        -- The cap counts current subscriptions: after leaving one, another fits.
        local u = ws:request { messageType = "unsubscribe", channel = "room:one", messageId = 4 }
        assert.are.same({ messageId = 4, unsubscribed = { channel = "room:one" } }, u)
        local r5 = ws:request { messageType = "subscribe", channel = "room:three", messageId = 5 }
        assert.are.same({ messageId = 5, subscribed = { channel = "room:three" } }, r5)
        ws:close(1000)
    end)

    it("closes with 1007 on invalid UTF-8 in a text message", function()
        for _, bad in ipairs { "\255\254", '{"a":"\192\175"}', "\237\160\128", "\244\144\128\128", "ok\226\130" } do
            local ws = open(srv)
            ws:send_text(bad)
            closes_with(ws, 1007)
        end
        -- split inside a code point across fragments is fine: "€" = E2 82 AC
        local ws = open(srv)
        ws:send_frame { opcode = OP.TEXT, payload = '{"messageType":"action","action":"hello","messageId":1,"params":{"name":"\226', fin = false }
        ws:send_frame { opcode = OP.CONT, payload = '\130\172"}}', fin = true }
        local reply, raw = ws:json(2)
        assert.are.same({ messageId = 1, response = { message = "Hello, \226\130\172!" } }, reply, raw)
        ws:close(1000)
    end)

    it_unless(BUGS.close_in_callback, "closes with 1003 on a binary message", function()
        local ws = open(srv)
        ws:send_frame { opcode = OP.BINARY, payload = cjson.encode { messageType = "action", action = "status", messageId = 1 } }
        closes_with(ws, 1003)
    end)

    local protocol_errors = {
        { "an unmasked client frame", { opcode = OP.TEXT, payload = '{"messageType":"action","action":"status"}', mask = false } },
        { "a reserved data opcode (0x3)", { opcode = 0x3, payload = "x" } },
        { "a reserved control opcode (0xB)", { opcode = 0xB, payload = "x" } },
        { "an RSV1 bit (no extension negotiated)", { opcode = OP.TEXT, payload = "{}", rsv = 4 } },
        { "an RSV3 bit", { opcode = OP.TEXT, payload = "{}", rsv = 1 } },
        { "a continuation without a start", { opcode = OP.CONT, payload = "x" } },
        { "a close frame with an invalid code (999)", { opcode = OP.CLOSE, payload = "\3\231" } },
    }
    for _, case in ipairs(protocol_errors) do
        it("closes with 1002 on " .. case[1], function()
            local ws = open(srv)
            ws:send_frame(case[2])
            closes_with(ws, 1002)
        end)
    end

    it("closes with 1002 on a new data frame while a fragmented message is open", function()
        local ws = open(srv)
        ws:send_frame { opcode = OP.TEXT, payload = '{"messageType":', fin = false }
        ws:send_frame { opcode = OP.TEXT, payload = '"action"}', fin = true }
        closes_with(ws, 1002)
    end)

    -- RFC 6455 §5.5: control frames are never fragmented and carry at most 125 bytes. keryx ends
    -- these connections (the protection); the close frame with 1002 the RFC asks for (§7.1.7,
    -- SHOULD) is checked apart, below.
    local control_violations = {
        { "a fragmented ping", { opcode = OP.PING, payload = "frag", fin = false } },
        { "a 126-byte ping", { opcode = OP.PING, payload = ("p"):rep(126) } },
    }
    for _, case in ipairs(control_violations) do
        it("ends the connection on " .. case[1] .. ", without a pong", function()
            local ws = open(srv)
            ws:send_frame(case[2])
            local f = ws:receive(2)
            assert.is_true(f == nil or f.opcode == OP.CLOSE, "got opcode " .. tostring(f and f.opcode))
            assert.is_true(ws:closed_by_peer(2))
            ws:close()
        end)
        it_unless(BUGS.control_no_1002, "closes with 1002 on " .. case[1], function()
            local ws = open(srv)
            ws:send_frame(case[2])
            closes_with(ws, 1002)
        end)
    end
end)

-- ---- keepalive -------------------------------------------------------------------------------

describe("websocket keepalive", function()
    local srv

    setup(function()
        srv = H.start { env = { WS_IDLE_TIMEOUT_MS = "500", WS_PING_INTERVAL_MS = "150" } }
    end)
    teardown(function() stop(srv) end)
    after_each(function() srv:assert_serving() end)

    it("pings every WS_PING_INTERVAL_MS and closes an idle socket after WS_IDLE_TIMEOUT_MS", function()
        local ws = open(srv)
        local t0 = socket.gettime()
        local f = assert(ws:receive(1))
        assert.are.equal(OP.PING, f.opcode)
        assert.is_true(socket.gettime() - t0 < 0.4)
        -- The client never answers: the server's own pings are not activity.
        local code, reason = ws:read_close(1.5)
        local elapsed = socket.gettime() - t0
        assert.are.equal(1001, code, tostring(reason))
        assert.are.equal("Idle timeout", reason)
        assert.is_true(elapsed >= 0.4 and elapsed < 1.5, "closed after " .. elapsed .. " s")
        assert.is_true(ws:closed_by_peer(1.5))
        ws:close()
    end)

    it("keeps a socket that answers pings open past the idle timeout", function()
        local ws = open(srv)
        local t0, pings = socket.gettime(), 0
        while socket.gettime() - t0 < 1.1 do
            local f = ws:receive(0.2)
            if f then
                assert.are_not.equal(OP.CLOSE, f.opcode, "closed: " .. f.payload)
                if f.opcode == OP.PING then
                    pings = pings + 1
                    ws:send_frame { opcode = OP.PONG, payload = f.payload }
                end
            end
        end
        assert.is_true(pings >= 3, pings .. " pings")
        ws:send_frame { opcode = OP.PING, payload = "still here" }
        local f
        repeat f = assert(ws:receive(1)) until f.opcode ~= OP.PING
        assert.are.equal(OP.PONG, f.opcode)
        assert.are.equal("still here", f.payload)
        ws:close(1000)
    end)
end)

-- ---- drain ----------------------------------------------------------------------------------

describe("websocket drain", function()
    local function exited_within(srv, seconds)
        local deadline = socket.gettime() + seconds
        while srv:alive() and socket.gettime() < deadline do H.sleep(0.02) end
        return not srv:alive()
    end

    it("sends close 1001 'Server shutting down' on SIGTERM, refuses a late upgrade with 503, then exits", function()
        local srv = H.start { env = { WS_DRAIN_TIMEOUT = "2000" } }
        local ws = open(srv)
        assert.are.equal(OP.PONG, (function()
            ws:send_frame { opcode = OP.PING, payload = "up" }
            return assert(ws:receive(2)).opcode
        end)())
        -- A client already connected, halfway through sending an upgrade request.
        local late = srv:connect(3)
        assert(late:send("GET /late HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
        H.sleep(0.1)
        local t0 = socket.gettime()
        os.execute("kill -TERM " .. srv.pid)
        local code, reason = ws:read_close(2)
        assert.are.equal(1001, code, tostring(reason))
        assert.are.equal("Server shutting down", reason)
        assert(late:send("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " .. W.new_key() ..
            "\r\nSec-WebSocket-Version: 13\r\n\r\n"))
        local res = assert(H.read_response(late))
        late:close()
        assert.are.equal(503, res.status)
        assert.is_truthy(res.body:find("Server is shutting down", 1, true), res.body)
        assert.is_nil(res.headers["sec-websocket-accept"])
        -- A brand-new connection gets no WebSocket either (the listener is closed).
        local fresh = W.connect(srv.port, "/", nil, { timeout = 1 })
        assert.is_nil(fresh)
        -- The socket never answers the close: the server drops it and exits in time.
        assert.is_true(exited_within(srv, 4), "keryx still running after SIGTERM:\n" .. srv:log())
        assert.is_true(socket.gettime() - t0 < 4)
        assert.is_true(ws:closed_by_peer(1))
        ws:close()
        local log = srv:log()
        assert.is_truthy(log:find("Draining 1 WebSocket connection(s)", 1, true), log)
        stop(srv)
    end)

    it("drains on SIGINT too, and exits at once when the clients answer the close", function()
        local srv = H.start { env = { WS_DRAIN_TIMEOUT = "5000" } }
        local a, b = open(srv), open(srv)
        local t0 = socket.gettime()
        os.execute("kill -INT " .. srv.pid)
        for _, ws in ipairs { a, b } do
            local code, reason = ws:read_close(2)
            assert.are.equal(1001, code)
            assert.are.equal("Server shutting down", reason)
            ws:send_frame { opcode = OP.CLOSE, payload = "\3\233" }
        end
        assert.is_true(exited_within(srv, 3), "keryx still running after SIGINT:\n" .. srv:log())
        assert.is_true(socket.gettime() - t0 < 1.5, "took " .. (socket.gettime() - t0) .. " s")
        a:close()
        b:close()
        stop(srv)
    end)
end)

describe("websocket slow consumer", function()
    local srv
    setup(function() srv = H.start {} end)
    teardown(function() if srv then srv:stop() end end)

    it("drops a subscriber that never reads once 4 MiB are waiting for it, and serves the others", function()
        local stalled = W.open(srv)
        local reader = W.open(srv)
        for i, ws in ipairs { stalled, reader } do
            local r = ws:request { messageType = "subscribe", channel = "room:flood", messageId = i }
            assert.are.same({ channel = "room:flood" }, r.subscribed)
        end
        local payload = '{"channel":"room:flood","message":"' .. ("x"):rep(60000) .. '","sender":"spec"}'
        local redis = H.redis()
        -- 200 × 60 KB = 12 MB: more than the kernel's socket buffers plus keryx's 4 MiB cap.
        for i = 1, 200 do
            redis.cli("PUBLISH", "keryx:pubsub", payload)
            if i % 20 == 0 then
                -- the reading socket keeps up (drain what arrived so far)
                while reader:receive(0.01) do end
            end
        end
        local log = srv:wait_log("is not reading: dropping it", 5)
        assert.truthy(log:find("is not reading: dropping it", 1, true), log)
        assert.is_true(stalled:closed_by_peer(5))
        -- the reader is still served
        local r = reader:request { messageType = "action", action = "status", messageId = 9 }
        assert.is_table(r.response)
        reader:close(1000)
        assert.are.equal(200, srv:request("/api/status").status)
    end)
end)
