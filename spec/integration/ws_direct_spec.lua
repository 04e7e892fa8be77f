-- Black-box specs for the WebSocket direct paths of src/ws.c: a whole masked text frame is
-- taken without wslay, and a reply is written straight to the socket when wslay has nothing
-- queued. Each spec tries to break what wslay used to guarantee on its own:
--   * order: pongs, replies and the close handshake interleaved in one write keep their order
--     and their frames intact; nothing follows the server's close frame;
--   * sizes: replies on both sides of the on-stack limit (16 KiB) and of the 7/16-bit length
--     boundaries arrive whole; a request with a 16-bit length whose header and payload come
--     in pieces, and one with a non-minimal length (taken by wslay), are answered;
--   * a peer that sends but never reads is dropped at the output cap, and the server serves on.
-- Run over TLS too (KERYX_TEST_TLS=1): direct writes go through tls.c there. Large replies
-- echo a long string messageId (never logged: the harness scans the log in time quadratic in a
-- line's length, spec/helpers/server.lua's Server:finish).
local H = require "server"
local W = require "ws_client"
local socket = require "socket"
local cjson = require "cjson"
local bit = require "bit"

local OP = W.OP


local function action_frame(action, mid, params)
    return W.frame { payload = cjson.encode { messageType = "action", action = action, messageId = mid, params = params } }
end

--- The `status` reply echoing a messageId of `len` bytes: its size follows len.
local function long_reply(ws, len)
    local mid = ("m"):rep(len)
    local reply, raw = ws:request({ messageType = "action", action = "status", messageId = mid }, 5)
    assert.is_table(reply, raw and raw:sub(1, 200))
    assert.are.equal(mid, reply.messageId)
    assert.is_table(reply.response)
    return raw
end

describe("websocket direct paths", function()
    local srv, ws
    setup(function()
        srv = H.start { env = { WS_MAX_MESSAGES_PER_SECOND = "1000000" } }
    end)
    teardown(function() H.stop(srv) end)
    before_each(function() ws = W.open(srv) end)
    after_each(function()
        ws:close()
        srv:assert_serving()
    end)

    it("keeps pongs and replies whole and in order when pings and actions share a write", function()
        local parts = {}
        for i = 1, 20 do
            parts[#parts + 1] = W.frame { opcode = OP.PING, payload = "p" .. i }
            parts[#parts + 1] = action_frame("status", i)
        end
        assert(ws:send_raw(table.concat(parts)))
        local pongs, replies = 0, 0
        while pongs < 20 or replies < 20 do
            local f = assert(ws:receive(3))
            if f.opcode == OP.PONG then
                pongs = pongs + 1
                assert.are.equal("p" .. pongs, f.payload) -- in the order of their pings
            else
                assert.are.equal(OP.TEXT, f.opcode)
                replies = replies + 1
                local reply = cjson.decode(f.payload)
                assert.is_table(reply.response, f.payload)
                -- A reply never overtakes the pong of a ping sent before its request.
                assert.is_true(pongs >= reply.messageId, "reply " .. reply.messageId .. " before its pong")
            end
        end
    end)

    it("sends nothing after its close frame when a close follows messages in the same write", function()
        local parts = {}
        for i = 1, 10 do parts[i] = action_frame("status", i) end
        parts[#parts + 1] = W.frame { opcode = OP.CLOSE, payload = "\3\232" } -- 1000
        assert(ws:send_raw(table.concat(parts)))
        local closed
        repeat
            local f = ws:receive(3)
            if f then
                assert.is_nil(closed, "a frame (opcode " .. f.opcode .. ") after the close frame")
                if f.opcode == OP.CLOSE then closed = W.close_code(f.payload) end
            end
        until not f
        assert.are.equal(1000, closed)
    end)

    it("answers replies of every size around the stack limit and the length boundaries", function()
        for _, len in ipairs { 1, 60, 200, 16 * 1024 - 150, 16 * 1024, 16 * 1024 + 10, 40000, 65000 } do
            assert.is_true(#long_reply(ws, len) > len)
        end
    end)

    it("takes a 16-bit-length request whose header and payload arrive in pieces", function()
        ws.sock:setoption("tcp-nodelay", true)
        local mid = ("x"):rep(300)
        local bytes = action_frame("status", mid)
        for _, cut in ipairs { 1, 3, 5, 9, 200, #bytes } do
            assert(ws:send_raw(bytes:sub(1, cut)))
            bytes = bytes:sub(cut + 1)
            socket.sleep(0.02)
            if bytes == "" then break end
        end
        local reply, raw = ws:json(3)
        assert.is_table(reply, raw)
        assert.are.equal(mid, reply.messageId)
        assert.is_table(reply.response, raw)
    end)

    it("answers a request whose length is not in its minimal encoding, like any other", function()
        local text = cjson.encode { messageType = "action", action = "status", messageId = 3 }
        local mask = "\1\2\3\4"
        local masked = {}
        for i = 1, #text do
            masked[i] = string.char(bit.bxor(text:byte(i), mask:byte((i - 1) % 4 + 1)))
        end
        -- 16-bit length field holding a length under 126 (the minimal form is the 7-bit one)
        local frame = "\129" .. string.char(0x80 + 126) .. string.char(0, #text) .. mask .. table.concat(masked)
        assert(ws:send_raw(frame .. action_frame("status", 4)))
        local f = ws:receive(3)
        assert.is_table(f)
        if f.opcode == OP.CLOSE then return end -- refused as a protocol error: also fine
        local seen = {}
        seen[cjson.decode(f.payload).messageId] = true
        local reply = ws:json(3)
        seen[reply.messageId] = true
        assert.are.same({ [3] = true, [4] = true }, seen)
    end)
end)

describe("websocket UTF-8 check after an ASCII run", function()
    local srv
    setup(function() srv = H.start { env = { WS_MAX_MESSAGES_PER_SECOND = "1000000" } } end)
    teardown(function() H.stop(srv) end)

    -- ws.c skips ASCII 8 bytes at a time before kx_utf8_valid: a bad byte anywhere in or after
    -- the words, or one cut short at the end, still closes with 1007.
    for _, bad in ipairs { ("a"):rep(8) .. "\192\175", ("a"):rep(7) .. "\255", ("a"):rep(16) .. "\237\160\128",
        ("a"):rep(23) .. "\226\130", ("a"):rep(9) .. "\128" .. ("b"):rep(20) } do
        it(("closes with 1007 on %d bytes, bad from byte %d"):format(#bad, (bad:find("[\128-\255]"))), function()
            local ws = W.open(srv)
            ws:send_text(bad)
            local code = ws:read_close(2)
            assert.are.equal(1007, code)
            ws:close()
        end)
    end

    it("accepts multi-byte characters after a long ASCII run", function()
        local ws = W.open(srv)
        local mid = ("x"):rep(40) .. "\226\130\172\240\159\152\128"
        local reply, raw = ws:request({ messageType = "action", action = "status", messageId = mid }, 3)
        assert.is_table(reply, raw)
        assert.are.equal(mid, reply.messageId)
        ws:close()
    end)
end)

describe("websocket direct replies to a peer that does not read", function()
    it("drops the socket once its replies pass the output cap, and serves the others", function()
        local srv = H.start { env = { WS_MAX_MESSAGES_PER_SECOND = "1000000" } }
        local reader = W.open(srv)
        local ws = W.open(srv)
        ws.sock:setoption("tcp-nodelay", true)
        -- 60 KiB replies: 200 of them are 12 MiB, three times the 4 MiB cap.
        local frame = action_frame("status", ("m"):rep(60000))
        ws.sock:settimeout(0)
        local deadline = socket.gettime() + 10
        local sent = 0
        while sent < 200 and socket.gettime() < deadline do
            local _, err, partial = ws.sock:send(frame)
            if err == "closed" then break end
            if err then
                if partial and partial > 0 then frame = frame:sub(partial + 1) end
                socket.sleep(0.01)
            else
                sent = sent + 1
                frame = action_frame("status", ("m"):rep(60000))
            end
        end
        local dropped
        repeat
            dropped = srv:log():find("is not reading: dropping it", 1, true) ~= nil
            if not dropped then socket.sleep(0.05) end
        until dropped or socket.gettime() > deadline
        assert.is_true(dropped, "a peer 12 MiB behind was not dropped:\n" .. srv:log())
        local reply, raw = reader:request({ messageType = "action", action = "status", messageId = 9 }, 3)
        assert.is_table(reply, raw)
        assert.is_table(reply.response, raw)
        reader:close()
        ws.sock:close()
        srv:assert_serving()
        H.stop(srv)
    end)
end)

describe("websocket replies the C encoder leaves to json.lua", function()
    local srv, ws, dir
    setup(function()
        -- A throw-away app: responses core.ws_hold_json refuses (a metatable of the app's own, a
        -- function) go the Lua way, as core.json_encode's do over HTTP.
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir .. "/actions") == 0)
        local f = assert(io.open(dir .. "/actions/shapes.lua", "w"))
        f:write([[
local keryx = require "keryx"
return {
    keryx.action { name = "shape:meta", description = "a response with a metatable",
        run = function() return setmetatable({ a = 1 }, { __index = {} }) end },
    keryx.action { name = "shape:fn", description = "a response JSON cannot carry",
        run = function() return { f = function() end } end },
    keryx.action { name = "shape:nil", description = "no response", run = function() end },
}
]])
        f:close()
        srv = H.start { app = dir }
    end)
    teardown(function()
        H.stop(srv)
        os.execute("rm -rf " .. dir)
    end)
    before_each(function() ws = W.open(srv) end)
    after_each(function() ws:close() end)

    it("answers each as before: Lua-encoded, an encoding error, {}", function()
        local reply, raw = ws:request({ messageType = "action", action = "shape:meta", messageId = 1 }, 3)
        assert.are.same({ messageId = 1, response = { a = 1 } }, reply, raw)
        reply, raw = ws:request({ messageType = "action", action = "shape:fn", messageId = 2 }, 3)
        assert.is_table(reply.error, raw)
        assert.are.equal("CONNECTION_ACTION_RUN", reply.error.type)
        reply, raw = ws:request({ messageType = "action", action = "shape:nil", messageId = 3 }, 3)
        assert.are.same({ messageId = 3, response = {} }, reply, raw)
        -- and the next held reply is whole
        reply, raw = ws:request({ messageType = "action", action = "status", messageId = 4 }, 3)
        assert.is_table(reply.response, raw)
    end)
end)
