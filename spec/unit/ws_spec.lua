-- keryx.ws: the WebSocket entry points lua_bridge.c calls (open, message, close, heartbeat),
-- message routing and every reply shape Keryx gives, the subscribe checks and their
-- order, presence on subscribe/unsubscribe/close, sessions over the socket — on the pure-Lua
-- fake of keryx.core (sockets, publish and a tiny Redis running the real presence scripts).
local fake = require "keryx.core"
local keryx = require "keryx"
local ws = require "keryx.ws"
local pipeline = require "keryx.pipeline"
local transport = require "keryx.transport.websocket"
local channels = require "keryx.channels"
local scripts = require "keryx.scripts"
local action = require "keryx.action"
local json = require "keryx.json"
local z = keryx.schema

local IP = "127.0.0.1"

local function decode(s)
    local v, err = json.decode(s)
    assert(v ~= nil, err)
    return v
end

local function register(def)
    if def.run == nil then def.run = function(params) return params end end
    local a = action.define(def)
    local reg = pipeline.registry
    reg.list[#reg.list + 1], reg.by_name[a.name] = a, a
    return a
end

local function define_channel(def)
    local c = keryx.channel(def)
    channels.register(c, "spec")
    return c
end

local function open(id, info)
    fake.ws_connect(id)
    return fake.run(ws.open, id, info or { identifier = IP })
end

--- Sends one frame (a table is JSON-encoded) and returns the raw reply texts and the
--- spoiled flag ws.message returned.
local function send_raw(id, msg)
    local text = type(msg) == "table" and assert(json.encode(msg)) or msg
    local spoiled = fake.run(ws.message, id, text)
    return fake.ws_take(id), spoiled
end

--- Sends and returns the one decoded reply (asserting there is exactly one).
local function send(id, msg)
    local replies, spoiled = send_raw(id, msg)
    assert.are.equal(1, #replies, "expected one reply, got " .. #replies)
    return decode(replies[1]), replies[1], spoiled
end

local function close(id)
    fake.ws_disconnect(id) -- C drops the socket and its subscriptions first
    return fake.run(ws.close, id, nil)
end

local function set_members(key)
    local out = {}
    for m in pairs(fake.store[key] or {}) do out[#out + 1] = m end
    table.sort(out)
    return out
end

local function events()
    local out = {}
    for _, p in ipairs(fake.published) do
        local v = decode(p)
        if v.sender == "presence" then
            local e = decode(v.message)
            out[#out + 1] = v.channel .. " " .. e.event .. " " .. e.presenceKey
        end
    end
    return out
end

local function logs_matching(pat)
    local out = {}
    for _, l in ipairs(fake.logs) do
        if l.msg:find(pat) then out[#out + 1] = l.msg end
    end
    return out
end

local function uid(id) return channels.uid(id) end

before_each(function()
    fake.reset()
    channels.reset()
    for k in pairs(ws.sockets) do ws.sockets[k] = nil end
    for k in pairs(ws.repairs) do ws.repairs[k] = nil end
    local reg = pipeline.registry
    for k in pairs(reg.list) do reg.list[k] = nil end
    for k in pairs(reg.by_name) do reg.by_name[k] = nil end
end)

describe("ws.open / ws.close", function()
    it("creates a websocket conn per socket and logs the connection", function()
        assert.is_false(open(1, { identifier = "10.0.0.9", correlation_id = "abc-1" }))
        local conn = ws.sockets[1].conn
        assert.are.equal("websocket", conn.type)
        assert.are.equal(1, conn.id)
        assert.are.equal(uid(1), conn.uid)
        assert.are.equal("10.0.0.9", conn.identifier)
        assert.are.equal("abc-1", conn.correlation_id)
        assert.are.same({ "New websocket connection from 10.0.0.9 (1)" }, logs_matching("websocket"))
        assert.are.equal(1, ws.count())
    end)

    it("drops the conn on close, logs it, and ignores later messages for that id", function()
        open(1)
        assert.is_false(close(1))
        assert.is_nil(ws.sockets[1])
        assert.are.same({ "websocket connection closed from 127.0.0.1 (1)" }, logs_matching("closed"))
        assert.is_false(fake.run(ws.message, 1, '{"messageType":"action","action":"x"}'))
        assert.are.equal(0, ws.count())
        assert.is_false(fake.run(ws.close, 1)) -- a second close is harmless
    end)
end)

describe("ws.message: actions", function()
    before_each(function()
        register {
            name = "echo",
            inputs = z.object { name = z.string():min(2), password = z.string():optional():secret() },
            run = function(p) return { name = p.name } end,
        }
        open(1)
    end)

    it("runs the action and answers {\"messageId\":…,\"response\":…} (compact, messageId first)", function()
        local reply, text, spoiled = send(1, { messageType = "action", action = "echo", params = { name = "Evan" }, messageId = 1 })
        assert.are.equal('{"messageId":1,"response":{"name":"Evan"}}', text)
        assert.are.same({ messageId = 1, response = { name = "Evan" } }, reply)
        assert.is_false(spoiled)
    end)

    it("echoes messageId verbatim whatever JSON it is, and omits it when absent", function()
        local cases = { '"abc"', "0", "-2.5", "true", '{"a":[1,2]}', "null" }
        for _, mid in ipairs(cases) do
            local _, text = send(1, '{"messageType":"action","action":"echo","params":{"name":"xy"},"messageId":' .. mid .. "}")
            assert.are.equal('{"messageId":' .. mid .. ',"response":{"name":"xy"}}', text)
        end
        local _, text = send(1, '{"messageType":"action","action":"echo","params":{"name":"xy"}}')
        assert.are.equal('{"response":{"name":"xy"}}', text)
    end)

    it("logs [ACTION:WEBSOCKET:OK] with [WEBSOCKET], the ip, no url, secrets redacted", function()
        fake.reset()
        open(1, { identifier = IP })
        send(1, { messageType = "action", action = "echo", params = { name = "Evan", password = "hunter22" } })
        local line = logs_matching("ACTION")[1]
        assert.matches('^%[ACTION:WEBSOCKET:OK%] echo %(%d+ms%) %[WEBSOCKET%] 127%.0%.0%.1 {.*}$', line)
        assert.matches('"password":"%[%[secret%]%]"', line)
        assert.is_nil(line:find("hunter22", 1, true))
    end)

    it("adds [cor:<id>] when the upgrade carried a correlation id", function()
        open(2, { identifier = IP, correlation_id = "req-7" })
        send(2, { messageType = "action", action = "echo", params = { name = "Evan" } })
        assert.matches("%[WEBSOCKET%] 127%.0%.0%.1 %[cor:req%-7%] ", logs_matching("ACTION")[1])
    end)

    it("answers a validation error with message, type, timestamp, key, value (in that order)", function()
        local reply, text = send(1, { messageType = "action", action = "echo", params = { name = "E" }, messageId = "m" })
        assert.matches('^{"messageId":"m","error":{"message":"name must be at least 2 characters","type":"CONNECTION_ACTION_PARAM_REQUIRED","timestamp":%d+,"key":"name","value":"E"', text)
        assert.are.equal(fake.now_ms(), reply.error.timestamp)
        assert.matches("^%[ACTION:WEBSOCKET:ERROR%] echo .* Error: name must be at least 2 characters", logs_matching("ACTION")[1])
    end)

    it("never echoes a secret input's value", function()
        register { name = "pw", inputs = z.object { password = z.string():min(8):secret() } }
        local reply, text = send(1, { messageType = "action", action = "pw", params = { password = "short" } })
        assert.are.equal("password", reply.error.key)
        assert.is_nil(reply.error.value)
        assert.is_nil(text:find("short", 1, true))
    end)

    it("includes the stack only per WEB_SERVER_INCLUDE_STACK_IN_ERRORS", function()
        register { name = "boom", run = function() error("kaput") end }
        local reply = send(1, { messageType = "action", action = "boom", messageId = 1 })
        assert.are.equal("CONNECTION_ACTION_RUN", reply.error.type)
        assert.matches("kaput", reply.error.message)
        assert.are.equal("string", type(reply.error.stack))
        fake.config.server.web.includeStackInErrors = false
        local text
        reply, text = send(1, { messageType = "action", action = "boom", messageId = 2 })
        assert.is_nil(reply.error.stack)
        assert.are.equal("Internal server error", reply.error.message)
        assert.is_nil(text:find("kaput", 1, true))
    end)

    it("types errors like HTTP: a typed error keeps its type, an untyped one spoils the coroutine", function()
        register { name = "nope", run = function() keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found") end }
        register { name = "boom", run = function() error("kaput") end }
        local reply, _, spoiled = send(1, { messageType = "action", action = "nope" })
        assert.are.same({ "Session not found", "CONNECTION_SESSION_NOT_FOUND" }, { reply.error.message, reply.error.type })
        assert.is_false(spoiled)
        reply, _, spoiled = send(1, { messageType = "action", action = "boom" })
        assert.are.equal("CONNECTION_ACTION_RUN", reply.error.type)
        assert.is_true(spoiled)
    end)

    it("applies the action timeout", function()
        register { name = "slow", timeout = 50, run = function() keryx.sleep(500); return { late = true } end }
        local reply = send(1, { messageType = "action", action = "slow", messageId = 3 })
        assert.are.equal("CONNECTION_ACTION_TIMEOUT", reply.error.type)
        assert.are.equal("Action 'slow' timed out after 50ms", reply.error.message)
    end)

    it("runs middleware, and rate-limit style headers do not pile up on the long-lived conn", function()
        local seen = {}
        register {
            name = "mw",
            middleware = { {
                before = function(_, conn)
                    conn:set_header("X-A", "1")
                    seen[#seen + 1] = rawget(conn, "_headers")
                end,
            } },
        }
        send(1, { messageType = "action", action = "mw" })
        send(1, { messageType = "action", action = "mw" })
        assert.are.same({ { "X-A", "1" }, { "X-A", "1" } }, seen)
    end)

    it("unknown action → CONNECTION_ACTION_NOT_FOUND `Action not found: <name>`; params not logged", function()
        local reply = send(1, { messageType = "action", action = "unknown", params = { password = "p4ss" }, messageId = 1 })
        assert.are.same({ "Action not found: unknown", "CONNECTION_ACTION_NOT_FOUND" }, { reply.error.message, reply.error.type })
        assert.are.equal(1, reply.messageId)
        local line = logs_matching("ACTION")[1]
        assert.matches("^%[ACTION:WEBSOCKET:ERROR%] unknown ", line)
        assert.is_nil(line:find("p4ss", 1, true))
        reply = send(1, { messageType = "action" })
        assert.are.equal("Action not found", reply.error.message)
        reply = send(1, { messageType = "action", action = 5 })
        assert.are.equal("Action not found", reply.error.message)
    end)

    it("params: absent or null → {}, null entries dropped, anything but an object refused", function()
        register { name = "raw" }
        assert.are.same({}, send(1, '{"messageType":"action","action":"raw"}').response)
        assert.are.same({}, send(1, '{"messageType":"action","action":"raw","params":null}').response)
        assert.are.same({ a = 1 }, send(1, '{"messageType":"action","action":"raw","params":{"a":1,"b":null}}').response)
        for _, p in ipairs { '"x"', "5", "[1,2]", "true" } do
            local reply = send(1, '{"messageType":"action","action":"raw","params":' .. p .. ',"messageId":9}')
            assert.are.same({ "params must be a JSON object", "CONNECTION_ACTION_PARAM_FORMATTING", 9 },
                { reply.error.message, reply.error.type, reply.messageId })
        end
    end)

    it("answers {} for an action returning nothing and an error for an unencodable response", function()
        register { name = "void", run = function() end }
        register { name = "fn", run = function() return { f = print } end }
        local _, text = send(1, { messageType = "action", action = "void", messageId = 1 })
        assert.are.equal('{"messageId":1,"response":{}}', text)
        local reply = send(1, { messageType = "action", action = "fn" })
        assert.matches("^cannot encode the response as JSON", reply.error.message)
    end)
end)

describe("ws.message: malformed frames", function()
    before_each(function() open(1) end)

    it("invalid JSON → CONNECTION_ACTION_RUN with the parser's message; the socket stays open", function()
        for _, text in ipairs { "{nope", "", '{"messageType":"action"', "\"unterminated" } do
            local reply = send(1, text)
            assert.are.equal("CONNECTION_ACTION_RUN", reply.error.type)
            assert.are.equal("string", type(reply.error.message))
            assert.is_true(#reply.error.message > 0)
            assert.is_nil(reply.messageId)
        end
        assert.is_nil(fake.ws_closed[1])
        assert.is_not_nil(ws.sockets[1])
    end)

    it("missing or unknown messageType → `messageType either missing or unknown`, messageId kept", function()
        local _, text = send(1, { messageType = "bogus", messageId = 42 })
        assert.matches('^{"messageId":42,"error":{"message":"messageType either missing or unknown","type":"CONNECTION_ACTION_RUN","timestamp":%d+', text)
        local reply = send(1, { messageId = "x" })
        assert.are.same({ "x", "messageType either missing or unknown" }, { reply.messageId, reply.error.message })
        for _, text2 in ipairs { "42", '"str"', "[1,2]", "null", "{}" } do
            reply = send(1, text2)
            assert.are.equal("messageType either missing or unknown", reply.error.message)
            assert.is_nil(reply.messageId)
        end
    end)

    it("never raises: a framework failure is answered and the coroutine reported spoiled", function()
        local real = transport.action
        transport.action = function() error("framework bug") end
        local ok, replies, spoiled = pcall(send_raw, 1, { messageType = "action", action = "x", messageId = 5 })
        transport.action = real
        assert(ok, replies)
        assert.is_true(spoiled)
        local reply = decode(replies[1])
        assert.are.same({ 5, "CONNECTION_ACTION_RUN" }, { reply.messageId, reply.error.type })
        assert.matches("framework bug", reply.error.message)
        assert.are.equal(1, #logs_matching("websocket message failed"))
    end)

    it("a reply to a socket that closed meanwhile is dropped quietly", function()
        register { name = "echo" }
        fake.ws_close(1, 1000, "bye")
        local replies, spoiled = send_raw(1, { messageType = "action", action = "echo" })
        assert.are.same({}, replies)
        assert.is_false(spoiled)
    end)
end)

describe("ws.message: the envelope read by core.ws_envelope", function()
    before_each(function() open(1) end)

    it("the fake's port gives json.decode's fields for every message it takes", function()
        local cases = dofile("spec/unit/ws_envelope_cases.lua") -- not a spec: C is tested on it too
        local r = cases.compare(json, fake.ws_envelope, 5000)
        assert.are.same({}, r.mismatches)
        assert.is_true(r.taken > r.checked / 5)
    end)

    it("replies as json.decode's path does, byte for byte, and falls back on what it does not take", function()
        register {
            name = "echo",
            run = function(params) return { got = params } end,
        }
        define_channel { name = "room" }
        local texts = {
            '{"messageType":"action","action":"echo","messageId":1}',
            ' { "messageType" : "action" , "action" : "echo" , "messageId" : -0 , "params" : { "a" : [1, null] } } ',
            '{"messageType":"action","action":"echo","messageId":"m","params":{"a":null,"s":"\\u00e9}"}}',
            '{"messageType":"action","action":"echo","params":{"a":}}', -- params fail: whole text's error
            '{"messageType":"action","action":"echo","params":{"a":1},"messageId":7}x',
            '{"messageType":"action","action":"nope","messageId":123456789012345}',
            '{"messageType":"action","action":"echo","params":{"a":1,"a":2}}',
            '{"messageType":"subscribe","channel":"room","messageId":2}',
            '{"messageType":"unsubscribe","channel":"room","messageId":3}',
            '{"messageType":"subscribe","channel":"bad name!"}',
            '{"messageType":"bogus","messageId":4}',
            '{"messageType":"action","action":"echo","params":[1]}',
            '{"messageType":"action","action":"echo","params":{"0":1}}',
            '{"messageType":"action","action":"echo","other":1}',
        }
        -- The stack's text names the line of ws.lua each path runs from: left out.
        fake.config.server.web.includeStackInErrors = false
        local taken = 0
        for _, text in ipairs(texts) do
            fake.ws_envelope_off = true
            local slow = send_raw(1, text)
            fake.ws_envelope_off = false
            local before = fake.ws_envelopes
            local fast = send_raw(1, text)
            taken = taken + fake.ws_envelopes - before
            assert.are.same(slow, fast, text)
        end
        assert.are.equal(11, taken)
    end)
end)

describe("ws.message: subscribe", function()
    local order
    before_each(function()
        order = {}
        define_channel {
            pattern = "^room:[%w-]+$",
            middleware = {
                { before = function(ch) order[#order + 1] = "before1 " .. ch end, after = function(ch) order[#order + 1] = "after1 " .. ch end },
                { before = function(ch) order[#order + 1] = "before2 " .. ch end },
            },
            authorize = function(ch) order[#order + 1] = "authorize " .. ch end,
        }
        open(1)
    end)

    it("subscribes: middleware before in order, authorize, C subscription, presence, join event", function()
        local _, text = send(1, { messageType = "subscribe", channel = "room:a", messageId = 1 })
        assert.are.equal('{"messageId":1,"subscribed":{"channel":"room:a"}}', text)
        assert.are.same({ "before1 room:a", "before2 room:a", "authorize room:a" }, order)
        assert.is_true(fake.ws_is_subscribed(1, "room:a"))
        assert.are.same({ uid(1) }, set_members("presence:{room:a}"))
        assert.are.same({ uid(1) }, set_members("presence:{room:a}:" .. uid(1)))
        assert.are.same({ "room:a join " .. uid(1) }, events())
        -- the joining socket hears its own join (it subscribed before presence was added)
        fake.deliver()
        local frame = decode(fake.ws_take(1)[1])
        assert.are.equal("presence", frame.message.sender)
    end)

    it("re-subscribing is idempotent: subscribed again, no second join", function()
        send(1, { messageType = "subscribe", channel = "room:a" })
        local reply = send(1, { messageType = "subscribe", channel = "room:a" })
        assert.are.same({ channel = "room:a" }, reply.subscribed)
        assert.are.equal(1, #events())
        assert.are.equal(1, fake.ws_subscription_count(1))
    end)

    it("refuses invalid names with CONNECTION_CHANNEL_VALIDATION and no key/value", function()
        for _, name in ipairs { "bad channel!", "", ("a"):rep(201), 5, json.null, "room:a\n" } do
            local msg = { messageType = "subscribe", messageId = 1, channel = name }
            local reply = send(1, msg)
            assert.is_string(reply.error.stack) -- stacks are on in tests: every Lua error has one
            reply.error.stack = nil
            assert.are.same({ message = "Invalid channel name", type = "CONNECTION_CHANNEL_VALIDATION",
                timestamp = fake.now_ms() }, reply.error)
        end
        local reply = send(1, { messageType = "subscribe", messageId = 2 })
        assert.are.equal("Invalid channel name", reply.error.message)
        assert.are.same({}, order)
    end)

    it("an unknown channel → CHANNEL_NOT_FOUND `Channel not found: <name>`, nothing run", function()
        local reply = send(1, { messageType = "subscribe", channel = "public-announcements", messageId = 1 })
        assert.are.same({ "Channel not found: public-announcements", "CHANNEL_NOT_FOUND" }, { reply.error.message, reply.error.type })
        assert.are.same({}, order)
        assert.is_false(fake.ws_is_subscribed(1, "public-announcements"))
    end)

    describe("the subscription cap (WS_MAX_SUBSCRIPTIONS)", function()
        before_each(function() fake.config.server.web.websocket.maxSubscriptions = 2 end)

        it("refuses past the cap with `Too many subscriptions (max n)`, before looking up the channel", function()
            assert.is_not_nil(send(1, { messageType = "subscribe", channel = "room:a" }).subscribed)
            assert.is_not_nil(send(1, { messageType = "subscribe", channel = "room:b" }).subscribed)
            order = {}
            local reply = send(1, { messageType = "subscribe", channel = "room:c", messageId = 3 })
            reply.error.stack = nil
            assert.are.same({ message = "Too many subscriptions (max 2)", type = "CONNECTION_CHANNEL_VALIDATION",
                timestamp = fake.now_ms() }, reply.error)
            reply = send(1, { messageType = "subscribe", channel = "undefined-channel" })
            assert.are.equal("Too many subscriptions (max 2)", reply.error.message)
            assert.are.same({}, order)
            -- the name is checked before the cap
            assert.are.equal("Invalid channel name", send(1, { messageType = "subscribe", channel = "bad!" }).error.message)
        end)

        it("lets an already-subscribed channel be subscribed again at the cap", function()
            send(1, { messageType = "subscribe", channel = "room:a" })
            send(1, { messageType = "subscribe", channel = "room:b" })
            assert.are.same({ channel = "room:b" }, send(1, { messageType = "subscribe", channel = "room:b" }).subscribed)
        end)

        it("0 disables the cap", function()
            fake.config.server.web.websocket.maxSubscriptions = 0
            for i = 1, 5 do
                assert.is_not_nil(send(1, { messageType = "subscribe", channel = "room:" .. i }).subscribed)
            end
        end)

        it("takes C's `limit` as the authority even when the count looked fine", function()
            local real = fake.ws_subscription_count
            fake.ws_subscription_count = function() return 0 end
            send(1, { messageType = "subscribe", channel = "room:a" })
            send(1, { messageType = "subscribe", channel = "room:b" })
            local reply = send(1, { messageType = "subscribe", channel = "room:c" })
            fake.ws_subscription_count = real
            assert.are.equal("Too many subscriptions (max 2)", reply.error.message)
            assert.is_nil(fake.store["presence:{room:c}"])
        end)
    end)

    it("a typed error from middleware before stops everything after it", function()
        channels.reset()
        define_channel {
            name = "guarded",
            middleware = {
                { before = function() keryx.error("CONNECTION_RATE_LIMITED", "slow down") end },
                { before = function() order[#order + 1] = "second" end },
            },
            authorize = function() order[#order + 1] = "authorize" end,
        }
        local reply = send(1, { messageType = "subscribe", channel = "guarded", messageId = 1 })
        assert.are.same({ "slow down", "CONNECTION_RATE_LIMITED" }, { reply.error.message, reply.error.type })
        assert.are.same({}, order)
        assert.is_false(fake.ws_is_subscribed(1, "guarded"))
    end)

    it("an untyped error in middleware is a bug: CONNECTION_ACTION_RUN, logged with its stack", function()
        channels.reset()
        define_channel { name = "buggy", middleware = { { before = function() local t = nil; return t.x end } } }
        local reply = send(1, { messageType = "subscribe", channel = "buggy" })
        assert.are.equal("CONNECTION_ACTION_RUN", reply.error.type)
        assert.are.equal(1, #logs_matching("middleware before failed"))
    end)

    describe("authorize", function()
        local function auth_channel(fn)
            channels.reset()
            define_channel { name = "private", authorize = fn }
        end

        it("a typed error propagates with its own type", function()
            auth_channel(function() keryx.error("CONNECTION_SESSION_NOT_FOUND", "Session not found") end)
            local reply = send(1, { messageType = "subscribe", channel = "private" })
            assert.are.same({ "Session not found", "CONNECTION_SESSION_NOT_FOUND" }, { reply.error.message, reply.error.type })
        end)

        it("any other error becomes CONNECTION_CHANNEL_AUTHORIZATION with its message", function()
            auth_channel(function() error("members only", 0) end)
            local reply = send(1, { messageType = "subscribe", channel = "private" })
            assert.are.same({ "members only", "CONNECTION_CHANNEL_AUTHORIZATION" }, { reply.error.message, reply.error.type })
            auth_channel(function() error({ code = 1 }) end)
            assert.are.equal("CONNECTION_CHANNEL_AUTHORIZATION", send(1, { messageType = "subscribe", channel = "private" }).error.type)
        end)

        it("returning false refuses too", function()
            auth_channel(function() return false end)
            local reply = send(1, { messageType = "subscribe", channel = "private" })
            assert.are.same({ "Not authorized for channel: private", "CONNECTION_CHANNEL_AUTHORIZATION" },
                { reply.error.message, reply.error.type })
        end)

        it("a refusal leaves no C subscription and no presence", function()
            auth_channel(function() error("no", 0) end)
            send(1, { messageType = "subscribe", channel = "private" })
            assert.is_false(fake.ws_is_subscribed(1, "private"))
            assert.is_nil(fake.store["presence:{private}"])
            assert.are.same({}, fake.published)
        end)
    end)

    it("presence_key: a custom key; a failing or bad one refuses the subscription", function()
        channels.reset()
        local key = "k1"
        define_channel { name = "keyed", presence_key = function() return key end }
        send(1, { messageType = "subscribe", channel = "keyed" })
        assert.are.same({ "k1" }, set_members("presence:{keyed}"))
        key = ""
        local reply = send(1, { messageType = "subscribe", channel = "keyed", messageId = 1 })
        assert.are.equal("CONNECTION_ACTION_RUN", reply.error.type)
        assert.matches("presence_key", reply.error.message)
    end)

    it("a changed presence key on re-subscribe moves the presence (leave old, join new)", function()
        channels.reset()
        local key = "anon"
        define_channel { name = "keyed", presence_key = function() return key end }
        send(1, { messageType = "subscribe", channel = "keyed" })
        key = "user-1"
        send(1, { messageType = "subscribe", channel = "keyed" })
        assert.are.same({ "user-1" }, set_members("presence:{keyed}"))
        assert.are.same({ "keyed join anon", "keyed leave anon", "keyed join user-1" }, events())
    end)

    it("presence is best effort: Redis down still subscribes (C holds it) and logs a warning", function()
        fake.redis_up = false
        local reply = send(1, { messageType = "subscribe", channel = "room:a" })
        assert.are.same({ channel = "room:a" }, reply.subscribed)
        assert.is_true(fake.ws_is_subscribed(1, "room:a"))
        assert.are.equal(1, #logs_matching("presence: cannot add"))
    end)

    -- While a subscribe waits for its presence add, the close (or an unsubscribe) task runs.
    -- Whether the add reaches Redis before or after that, nothing lingers and no client hears
    -- a join after the matching leave.
    local function race(before_add, during)
        local real = scripts.run
        local fired = false
        scripts.run = function(name, ...)
            if not fired and name == "presence_add" and before_add then fired = true; during() end
            local v, err = real(name, ...)
            if not fired and name == "presence_add" then fired = true; during() end
            return v, err
        end
        local ok, replies = pcall(send_raw, 1, { messageType = "subscribe", channel = "room:a" })
        scripts.run = real
        assert(ok, replies)
        return replies
    end

    local function close_now()
        fake.ws_disconnect(1)
        ws.close(1) -- already inside the subscribe's task: no nested fake.run
    end

    for _, before_add in ipairs { false, true } do
        local when = before_add and "before" or "after"
        it("a socket closing while its presence add is in flight (close " .. when .. " the add): no presence, no events", function()
            local replies = race(before_add, close_now)
            assert.are.same({}, replies)
            assert.is_nil(fake.store["presence:{room:a}"])
            assert.is_nil(fake.store["presence:{room:a}:" .. uid(1)])
            assert.are.same({}, events())
        end)

        it("an unsubscribe while the add is in flight (" .. when .. "): no presence, no events", function()
            local unsub_reply
            local replies = race(before_add, function()
                local text = assert(json.encode { messageType = "unsubscribe", channel = "room:a" })
                ws.message(1, text)
                unsub_reply = fake.ws_take(1)[1]
            end)
            assert.are.equal('{"unsubscribed":{"channel":"room:a"}}', unsub_reply)
            assert.are.same({ '{"subscribed":{"channel":"room:a"}}' }, replies)
            assert.is_nil(fake.store["presence:{room:a}"])
            assert.are.same({}, events())
        end)
    end

    it("a racing close leaves other sockets' shared presence key alone (no leave)", function()
        channels.reset()
        define_channel { name = "keyed", presence_key = function() return "shared" end }
        open(2)
        send(2, { messageType = "subscribe", channel = "keyed" })
        fake.published = {}
        local real = scripts.run
        scripts.run = function(name, ...)
            local v, err = real(name, ...)
            if name == "presence_add" then scripts.run = real; close_now() end
            return v, err
        end
        local ok, err = pcall(send_raw, 1, { messageType = "subscribe", channel = "keyed" })
        scripts.run = real
        assert(ok, err)
        assert.are.same({ "shared" }, set_members("presence:{keyed}"))
        assert.are.same({ uid(2) }, set_members("presence:{keyed}:shared"))
        assert.are.same({}, events())
    end)
end)

describe("ws.message: unsubscribe", function()
    local after_calls
    before_each(function()
        after_calls = 0
        define_channel {
            pattern = "^room:[%w-]+$",
            middleware = { { after = function() after_calls = after_calls + 1 end } },
        }
        open(1)
    end)

    it("removes presence (leave), the C subscription, runs middleware after, answers unsubscribed", function()
        send(1, { messageType = "subscribe", channel = "room:a" })
        local _, text = send(1, { messageType = "unsubscribe", channel = "room:a", messageId = 7 })
        assert.are.equal('{"messageId":7,"unsubscribed":{"channel":"room:a"}}', text)
        assert.is_false(fake.ws_is_subscribed(1, "room:a"))
        assert.is_nil(fake.store["presence:{room:a}"])
        assert.are.same({ "room:a join " .. uid(1), "room:a leave " .. uid(1) }, events())
        assert.are.equal(1, after_calls)
    end)

    it("answers unsubscribed for a never-joined channel (even an undefined one), without after", function()
        local reply = send(1, { messageType = "unsubscribe", channel = "room:zzz", messageId = 1 })
        assert.are.same({ channel = "room:zzz" }, reply.unsubscribed)
        reply = send(1, { messageType = "unsubscribe", channel = "nowhere" })
        assert.are.same({ channel = "nowhere" }, reply.unsubscribed)
        assert.are.equal(0, after_calls)
        assert.are.same({}, fake.published)
    end)

    it("validates the name like subscribe", function()
        local reply = send(1, { messageType = "unsubscribe", channel = "bad name", messageId = 1 })
        assert.are.same({ "Invalid channel name", "CONNECTION_CHANNEL_VALIDATION" }, { reply.error.message, reply.error.type })
    end)

    it("an error in middleware after is logged; the unsubscription stands", function()
        channels.reset()
        define_channel { name = "x", middleware = { { after = function() error("after boom") end } } }
        send(1, { messageType = "subscribe", channel = "x" })
        local reply = send(1, { messageType = "unsubscribe", channel = "x" })
        assert.are.same({ channel = "x" }, reply.unsubscribed)
        assert.are.equal(1, #logs_matching("middleware after failed"))
    end)
end)

describe("ws.close presence", function()
    before_each(function()
        define_channel { pattern = "^room:[%w-]+$", middleware = { { after = function() error("must not run") end } } }
    end)

    it("removes presence from every joined channel with leave events; channel after is not run", function()
        open(1)
        send(1, { messageType = "subscribe", channel = "room:a" })
        send(1, { messageType = "subscribe", channel = "room:b" })
        fake.published = {}
        close(1)
        local ev = events()
        table.sort(ev)
        assert.are.same({ "room:a leave " .. uid(1), "room:b leave " .. uid(1) }, ev)
        assert.is_nil(fake.store["presence:{room:a}"])
        assert.is_nil(fake.store["presence:{room:b}"])
        assert.are.same({}, logs_matching("after failed"))
    end)

    it("other sockets' presence stays", function()
        open(1)
        open(2)
        send(1, { messageType = "subscribe", channel = "room:a" })
        send(2, { messageType = "subscribe", channel = "room:a" })
        close(1)
        assert.are.same({ uid(2) }, set_members("presence:{room:a}"))
    end)
end)

describe("sessions over the socket and the example `messages` channel", function()
    before_each(function()
        -- The example app's channel file, as boot loads it.
        channels.register(dofile("app/channels/messages.lua"), "app/channels/messages.lua")
        channels.register(dofile("app/channels/room.lua"), "app/channels/room.lua")
        register {
            name = "login",
            inputs = z.object { user_id = z.integer() },
            run = function(p, conn)
                conn:update_session { user_id = p.user_id }
                local s = conn:regenerate_session()
                return { session = { id = s.id } }
            end,
        }
        register { name = "logout", run = function(_, conn) conn:destroy_session() end }
    end)

    it("refuses an anonymous socket, then accepts it after session:create-style login on the same conn", function()
        open(1)
        local reply = send(1, { messageType = "subscribe", channel = "messages", messageId = 1 })
        assert.are.same({ "Must be logged in to subscribe", "CONNECTION_CHANNEL_AUTHORIZATION", 1 },
            { reply.error.message, reply.error.type, reply.messageId })
        assert.is_false(fake.ws_is_subscribed(1, "messages"))

        local conn = ws.sockets[1].conn
        local login = send(1, { messageType = "action", action = "login", params = { user_id = 7 } })
        assert.are.equal(conn.session_id, login.response.session.id)
        assert.is_nil(rawget(conn, "_session_op")) -- no cookie ever goes to a socket
        assert.are.equal(conn, ws.sockets[1].conn)

        reply = send(1, { messageType = "subscribe", channel = "messages", messageId = 2 })
        assert.are.same({ channel = "messages" }, reply.subscribed)
        -- presence per user: the key is the user id
        assert.are.same({ "7" }, set_members("presence:{messages}"))
        assert.are.same({ "messages join 7" }, events())
    end)

    it("uses the session cookie sent with the upgrade", function()
        local rec = { id = fake.random_id(), createdAt = 1, data = { user_id = 9 } }
        fake.store["session:" .. rec.id] = json.encode(rec)
        open(1, { identifier = IP, session_id = rec.id })
        assert.are.same({ channel = "messages" }, send(1, { messageType = "subscribe", channel = "messages" }).subscribed)
        assert.are.same({ "9" }, set_members("presence:{messages}"))
    end)

    it("two sockets of one user are one presence: one join, leave only when the last closes", function()
        open(1)
        open(2)
        for _, id in ipairs { 1, 2 } do
            send(id, { messageType = "action", action = "login", params = { user_id = 7 } })
            send(id, { messageType = "subscribe", channel = "messages" })
        end
        assert.are.same({ "messages join 7" }, events())
        close(1)
        assert.are.same({ "messages join 7" }, events())
        assert.are.same({ "7" }, set_members("presence:{messages}"))
        close(2)
        assert.are.same({ "messages join 7", "messages leave 7" }, events())
        assert.is_nil(fake.store["presence:{messages}"])
    end)

    it("rooms are open to anyone, with the connection uid as presence key", function()
        open(1)
        assert.are.same({ channel = "room:lobby" }, send(1, { messageType = "subscribe", channel = "room:lobby" }).subscribed)
        assert.are.same({ uid(1) }, set_members("presence:{room:lobby}"))
        assert.are.equal("CHANNEL_NOT_FOUND", send(1, { messageType = "subscribe", channel = "room:a.b" }).error.type)
    end)

    it("a broadcast reaches every subscribed socket as {\"message\":{channel,message,sender}}", function()
        register {
            name = "say",
            inputs = z.object { text = z.string() },
            run = function(p, conn) return { ok = conn:broadcast("room:lobby", { text = p.text }) } end,
        }
        open(1)
        open(2)
        open(3)
        send(1, { messageType = "subscribe", channel = "room:lobby" })
        send(2, { messageType = "subscribe", channel = "room:lobby" })
        fake.deliver()
        for _, id in ipairs { 1, 2, 3 } do fake.ws_take(id) end
        assert.are.same({ ok = true }, send(1, { messageType = "action", action = "say", params = { text = "hi" } }).response)
        fake.deliver()
        local want = { message = { channel = "room:lobby", message = { text = "hi" }, sender = uid(1) } }
        assert.are.same(want, decode(fake.ws_take(1)[1]))
        assert.are.same(want, decode(fake.ws_take(2)[1]))
        assert.are.same({}, fake.ws_take(3))
        -- not subscribed: CONNECTION_NOT_SUBSCRIBED
        local reply = send(3, { messageType = "action", action = "say", params = { text = "x" } })
        assert.are.same({ "not subscribed to this channel", "CONNECTION_NOT_SUBSCRIBED" }, { reply.error.message, reply.error.type })
    end)
end)

describe("ws.heartbeat", function()
    before_each(function()
        define_channel { pattern = "^room:[%w-]+$" }
        define_channel { name = "keyed", presence_key = function() return "shared" end }
    end)

    it("refreshes the presence TTLs held by local sockets, one pipeline per channel", function()
        open(1)
        open(2)
        send(1, { messageType = "subscribe", channel = "room:a" })
        send(2, { messageType = "subscribe", channel = "room:a" })
        send(1, { messageType = "subscribe", channel = "keyed" })
        send(2, { messageType = "subscribe", channel = "keyed" })
        fake.ttl, fake.redis_log = {}, {}
        local pipelines = {}
        local redis = require "keryx.redis"
        local real = redis.pipeline
        redis.pipeline = function(cmds)
            pipelines[#pipelines + 1] = cmds
            return real(cmds)
        end
        local spoiled = fake.run(ws.heartbeat)
        redis.pipeline = real
        assert.is_false(spoiled)
        table.sort(pipelines, function(a, b) return a[1][2] < b[1][2] end)
        local members = { uid(1), uid(2) }
        table.sort(members)
        assert.are.same({
            { { "EXPIRE", "presence:{keyed}", 90 }, { "EXPIRE", "presence:{keyed}:shared", 90 } },
            { { "EXPIRE", "presence:{room:a}", 90 }, { "EXPIRE", "presence:{room:a}:" .. members[1], 90 },
                { "EXPIRE", "presence:{room:a}:" .. members[2], 90 } },
        }, pipelines)
        for _, p in ipairs(pipelines) do
            local tag = p[1][2]:match("{.-}")
            for _, c in ipairs(p) do assert.are.equal(tag, c[2]:match("{.-}")) end -- one slot each
        end
        assert.are.equal(90, fake.ttl["presence:{room:a}"])
        assert.are.equal(90, fake.ttl["presence:{keyed}:shared"])
    end)

    it("does nothing without sockets and survives Redis being down", function()
        assert.is_false(fake.run(ws.heartbeat))
        assert.are.same({}, fake.redis_log)
        open(1)
        send(1, { messageType = "subscribe", channel = "room:a" })
        fake.redis_up = false
        assert.is_false(fake.run(ws.heartbeat))
    end)
end)

describe("concurrent messages on one socket", function()
    before_each(function() fake.reset() end)

    it("do not share request state (metadata, headers) even while both are parked", function()
        local seen = {}
        register {
            name = "who",
            inputs = z.object { who = z.string(), ms = z.integer() },
            middleware = { {
                before = function(p, conn) conn.metadata.owner = p.who end,
                after = function(p, conn) seen[p.who] = conn.metadata.owner end,
            } },
            run = function(p) keryx.sleep(p.ms); return { ok = true } end,
        }
        open(1)
        -- alice parks for 300 ms; mallory arrives meanwhile and finishes first
        fake.spawn(ws.message, 1, json.encode { messageType = "action", action = "who", messageId = 1,
            params = { who = "alice", ms = 300 } })
        fake.spawn(ws.message, 1, json.encode { messageType = "action", action = "who", messageId = 2,
            params = { who = "mallory", ms = 10 } })
        fake.drain()
        assert.are.equal("alice", seen.alice)
        assert.are.equal("mallory", seen.mallory)
        assert.are.equal(2, #fake.ws_take(1))
    end)
end)

describe("presence after a Redis outage (the heartbeat repairs it)", function()
    before_each(function()
        define_channel { pattern = "^room:[%w-]+$" }
        open(1)
    end)

    it("an add that failed is retried: the member is present and its join announced", function()
        fake.redis_up = false
        send(1, { messageType = "subscribe", channel = "room:a" })
        assert.is_nil(fake.store["presence:{room:a}"])
        fake.run(ws.heartbeat) -- still down: kept for later
        assert.is_nil(fake.store["presence:{room:a}"])
        fake.redis_up = true
        fake.run(ws.heartbeat)
        assert.are.same({ uid(1) }, set_members("presence:{room:a}"))
        assert.are.same({ uid(1) }, set_members("presence:{room:a}:" .. uid(1)))
        assert.are.same({ "room:a join " .. uid(1) }, events())
        assert.are.same({}, ws.repairs)
        fake.run(ws.heartbeat) -- settled: no second join
        assert.are.equal(1, #events())
    end)

    it("a remove that failed (unsubscribe or close) is retried: the member is gone and its leave announced", function()
        open(2)
        send(1, { messageType = "subscribe", channel = "room:a" })
        send(2, { messageType = "subscribe", channel = "room:b" })
        fake.redis_up = false
        send(1, { messageType = "unsubscribe", channel = "room:a" })
        close(2)
        assert.are.same({ uid(1) }, set_members("presence:{room:a}"))
        assert.are.same({ uid(2) }, set_members("presence:{room:b}"))
        fake.redis_up = true
        open(3) -- the heartbeat runs while sockets are open
        fake.run(ws.heartbeat)
        assert.is_nil(fake.store["presence:{room:a}"])
        assert.is_nil(fake.store["presence:{room:b}"])
        local ev = events()
        table.sort(ev)
        assert.are.same({ "room:a join " .. uid(1), "room:a leave " .. uid(1), "room:b join " .. uid(2),
            "room:b leave " .. uid(2) }, ev)
        assert.are.same({}, ws.repairs)
    end)

    it("subscribed then unsubscribed during the outage: nothing is added, nothing announced", function()
        fake.redis_up = false
        send(1, { messageType = "subscribe", channel = "room:a" })
        send(1, { messageType = "unsubscribe", channel = "room:a" })
        fake.redis_up = true
        fake.run(ws.heartbeat)
        assert.is_nil(fake.store["presence:{room:a}"])
        assert.is_nil(fake.store["presence:{room:a}:" .. uid(1)])
        assert.are.same({}, events())
        assert.are.same({}, ws.repairs)
    end)

    it("a later success of the same operation settles the failure without the heartbeat", function()
        fake.redis_up = false
        send(1, { messageType = "subscribe", channel = "room:a" })
        fake.redis_up = true
        send(1, { messageType = "subscribe", channel = "room:a" }) -- re-subscribe repairs it itself
        assert.are.same({}, ws.repairs)
        assert.are.same({ uid(1) }, set_members("presence:{room:a}"))
    end)
end)
