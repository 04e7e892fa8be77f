-- keryx.channel (definitions), keryx.channels (registry, broadcast payload, presence glue),
-- keryx.scripts (SHA-1, EVALSHA with the NOSCRIPT fallback), the Redis presence scripts run
-- against the fake store, conn:broadcast, boot loading app/channels, and the example app's
-- channels — all on the pure-Lua fake of keryx.core (spec/helpers/fake_core.lua).
local fake = require "keryx.core"
local keryx = require "keryx"
local channel = require "keryx.channel"
local channels = require "keryx.channels"
local scripts = require "keryx.scripts"
local conn_mod = require "keryx.conn"
local json = require "keryx.json"
local errors = require "keryx.errors"

local function decode(s)
    local v, err = json.decode(s)
    assert(v ~= nil, err)
    return v
end

local function set_members(key)
    local v = fake.store[key]
    if v == nil then return {} end
    assert.are.equal("table", type(v), key .. " is not a set")
    local out = {}
    for m in pairs(v) do out[#out + 1] = m end
    table.sort(out)
    return out
end

local function commands(name)
    local out = {}
    for _, c in ipairs(fake.redis_log) do
        if c[1] == name then out[#out + 1] = c end
    end
    return out
end

before_each(function()
    fake.reset()
    channels.reset()
end)

describe("keryx.channel definitions", function()
    it("accepts an exact name or a pattern, with defaults filled in", function()
        local c = keryx.channel { name = "messages" }
        assert.are.equal("messages", c.name)
        assert.is_nil(c.pattern)
        assert.are.same({}, c.middleware)
        assert.is_true(c.__keryx_channel)
        local p = keryx.channel { pattern = "^room:[%w-]+$", authorize = function() end }
        assert.are.equal("^room:[%w-]+$", p.pattern)
        assert.are.equal("function", type(p.authorize))
    end)

    local bad = {
        { "not a table", "x", "expects a table" },
        { "neither name nor pattern", {}, "exactly one of name" },
        { "both name and pattern", { name = "a", pattern = "^a$" }, "exactly one of name" },
        { "a name breaking the channel rule", { name = "bad channel!" }, "name must be" },
        { "an empty name", { name = "" }, "name must be" },
        { "a 201-character name", { name = ("a"):rep(201) }, "name must be" },
        { "a non-string name", { name = 42 }, "name must be" },
        { "a malformed pattern", { pattern = "^room:[%w" }, "not a valid Lua pattern" },
        { "a pattern ending in %", { pattern = "^a%" }, "not a valid Lua pattern" },
        { "an empty pattern", { pattern = "" }, "pattern must be" },
        { "authorize not a function", { name = "a", authorize = true }, "authorize must be" },
        { "presence_key not a function", { name = "a", presence_key = "id" }, "presence_key must be" },
        { "middleware not a list", { name = "a", middleware = "x" }, "middleware must be a list" },
        { "a middleware entry not a table", { name = "a", middleware = { 1 } }, "middleware%[1%] must be a table" },
        { "middleware before not a function", { name = "a", middleware = { { before = 1 } } }, "before must be" },
        { "middleware after not a function", { name = "a", middleware = { { after = 1 } } }, "after must be" },
        { "a misspelt field (Keryx's camelCase)", { name = "a", presenceKey = function() end }, "unknown field 'presenceKey'" },
    }
    for _, case in ipairs(bad) do
        it("refuses " .. case[1], function()
            local ok, err = pcall(keryx.channel, case[2])
            assert.is_false(ok)
            assert.matches(case[3], err)
        end)
    end

    it("blames the caller's line (the app file), not the framework", function()
        local ok, err = pcall(function() keryx.channel { name = "bad name" } end)
        assert.is_false(ok)
        assert.matches("channel_spec%.lua:%d+: channel 'bad name'", err)
    end)
end)

describe("keryx.channels registry", function()
    it("finds exact names before patterns, and patterns in load order", function()
        local first = keryx.channel { pattern = "^room:.+$" }
        local second = keryx.channel { pattern = "^room:[%w-]+$" }
        local exact = keryx.channel { name = "room:lobby" }
        channels.register(first, "a.lua")
        channels.register(second, "b.lua")
        channels.register(exact, "c.lua")
        assert.are.equal(exact, channels.find("room:lobby"))
        assert.are.equal(first, channels.find("room:kitchen"))
        assert.is_nil(channels.find("rooms:kitchen"))
        assert.is_nil(channels.find("xroom:a"))
        assert.is_nil(channels.find(nil))
        assert.is_nil(channels.find(5))
    end)

    it("treats an author's unanchored pattern literally as Lua does (anchoring is the author's job)", function()
        channels.register(keryx.channel { pattern = "room" })
        assert.is_not_nil(channels.find("my-room-1"))
    end)

    it("a pattern failing on some subject matches nothing there instead of raising", function()
        -- "(" unfinished capture is only reported when the rest of the pattern matches.
        local def = channel.define { pattern = "^x(" }
        channels.register(def)
        assert.is_nil(channels.find("x"))
        assert.is_nil(channels.find("y"))
    end)

    it("refuses duplicate names and duplicate patterns, naming the file", function()
        channels.register(keryx.channel { name = "a" }, "one.lua")
        assert.has_error(function() channels.register(keryx.channel { name = "a" }, "two.lua") end,
            "two.lua: duplicate channel name 'a'")
        channels.register(keryx.channel { pattern = "^b$" }, "one.lua")
        assert.has_error(function() channels.register(keryx.channel { pattern = "^b$" }, "three.lua") end,
            "three.lua: duplicate channel pattern '^b$'")
        assert.has_error(function() channels.register({ name = "raw" }, "four.lua") end,
            "four.lua: must return keryx.channel{...} or a list of them")
    end)
end)

describe("keryx.channels.broadcast", function()
    it("publishes exactly {\"channel\":…,\"message\":…,\"sender\":…} with the channel first", function()
        assert.is_true(channels.broadcast("messages", { message = { body = "hi/there" } }, "user-7"))
        assert.are.equal('{"channel":"messages","message":{"message":{"body":"hi/there"}},"sender":"user-7"}',
            fake.published[1])
    end)

    it("defaults the sender to \"server\" and encodes any JSON message (string, array, null)", function()
        assert.is_true(channels.broadcast("room:a", "text"))
        assert.is_true(channels.broadcast("room:a", json.array { 1, 2 }))
        assert.is_true(channels.broadcast("room:a", nil, 42))
        assert.are.same({
            '{"channel":"room:a","message":"text","sender":"server"}',
            '{"channel":"room:a","message":[1,2],"sender":"server"}',
            '{"channel":"room:a","message":null,"sender":42}',
        }, fake.published)
    end)

    it("refuses invalid channel names without publishing (the name is spliced into the payload)", function()
        for _, name in ipairs { 'a","sender":"x', "", ("a"):rep(201), "a b", "a\"", 7 } do
            local ok, err = channels.broadcast(name, {})
            assert.is_nil(ok)
            assert.are.equal("invalid channel name", err)
        end
        assert.are.same({}, fake.published)
    end)

    it("answers nil, err for an unencodable message and nil, \"closed\" while Redis is down", function()
        local ok, err = channels.broadcast("a", { f = print })
        assert.is_nil(ok)
        assert.matches("^message is not JSON%-encodable", err)
        fake.redis_up = false
        ok, err = channels.broadcast("a", {})
        assert.is_nil(ok)
        assert.are.equal("closed", err)
        assert.are.same({}, fake.published)
    end)

    it("is what keryx.channels is (lazy facade entry), so message:create's call reaches it", function()
        assert.are.equal(channels, keryx.channels)
        assert.are.equal("function", type(keryx.channels.broadcast))
    end)

    it("is delivered by C to subscribed sockets wrapped as {\"message\":<payload>}", function()
        fake.ws_connect(1)
        fake.ws_connect(2)
        fake.ws_subscribe(1, "messages")
        channels.broadcast("messages", { message = { body = "hi" } })
        assert.are.equal(1, fake.deliver())
        local got = decode(fake.ws_take(1)[1])
        assert.are.same({ message = { channel = "messages", message = { message = { body = "hi" } }, sender = "server" } }, got)
        assert.are.same({}, fake.ws_take(2))
    end)
end)

describe("keryx.scripts", function()
    it("computes SHA-1 (FIPS 180 vectors, block edges)", function()
        assert.are.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", scripts.sha1(""))
        assert.are.equal("a9993e364706816aba3e25717850c26c9cd0d89d", scripts.sha1("abc"))
        assert.are.equal("84983e441c3bd26ebaae4aa1f95129e5e54670f1",
            scripts.sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
        assert.are.equal("cef734ba81a024479e09eb5a75b6ddae62e6abf1", scripts.sha1(("x"):rep(55)))
        assert.are.equal("901305367c259952f4e7af8323f480d59f81335b", scripts.sha1(("x"):rep(56)))
        assert.are.equal("97b433c99a75e69bd8170ef41aacbfb370434b0d", scripts.sha1(("\255"):rep(119)))
    end)

    it("sends EVALSHA first, falls back to EVAL once on NOSCRIPT, then EVALSHA succeeds", function()
        local function run()
            return scripts.run("presence_add", { "presence:{c}:k", "presence:{c}" }, { "n:1", "k", 90 })
        end
        assert.are.equal(1, fake.run(run))
        local f = io.open("lua/redis/presence_add.lua", "rb")
        local text = f:read("*a")
        f:close()
        assert.are.same({ "EVALSHA", "EVAL" }, { fake.redis_log[1][1], fake.redis_log[2][1] })
        assert.are.equal(scripts.sha1(text), fake.redis_log[1][2])
        assert.are.equal(text, fake.redis_log[2][2])
        assert.are.equal(2, fake.redis_log[1][3])
        fake.redis_log = {}
        assert.are.equal(0, fake.run(run))
        assert.are.equal(1, #fake.redis_log)
        assert.are.equal("EVALSHA", fake.redis_log[1][1])
    end)

    it("passes a Redis outage through as nil, \"closed\" and refuses odd script names", function()
        fake.redis_up = false
        local v, err = fake.run(scripts.run, "presence_add", { "a", "b" }, { "x", "y", 1 })
        assert.is_nil(v)
        assert.are.equal("closed", err)
        assert.has_error(function() scripts.run("../../etc/passwd", {}) end)
        assert.has_error(function() scripts.run("missing_script", {}) end)
    end)
end)

describe("presence scripts and glue", function()
    local CH, MEMBERS_A = "presence:{room:a}", "presence:{room:a}:alice"

    it("add: both sets get the member and the TTL; join is published only for a new key", function()
        assert.is_true(fake.run(channels.join, "room:a", "alice", "n:1"))
        assert.are.same({ "alice" }, set_members(CH))
        assert.are.same({ "n:1" }, set_members(MEMBERS_A))
        assert.are.equal(90, fake.ttl[CH])
        assert.are.equal(90, fake.ttl[MEMBERS_A])
        -- a second connection of the same key: no second join
        assert.is_false(fake.run(channels.join, "room:a", "alice", "n:2"))
        assert.are.same({ "n:1", "n:2" }, set_members(MEMBERS_A))
        assert.are.equal(1, #fake.published)
        assert.are.equal('{"channel":"room:a","message":"{\\"event\\":\\"join\\",\\"presenceKey\\":\\"alice\\"}","sender":"presence"}',
            fake.published[1])
        -- double-encoded: the message is a JSON string holding the event
        local p = decode(fake.published[1])
        assert.are.equal("string", type(p.message))
        assert.are.same({ event = "join", presenceKey = "alice" }, decode(p.message))
    end)

    it("remove: leave only when the key's last connection goes; unknown ids change nothing", function()
        fake.run(channels.join, "room:a", "alice", "n:1")
        fake.run(channels.join, "room:a", "alice", "n:2")
        fake.run(channels.join, "room:a", "bob", "n:3")
        fake.published = {}
        assert.is_false(fake.run(channels.leave, "room:a", "alice", "n:9"))
        assert.is_false(fake.run(channels.leave, "room:a", "alice", "n:1"))
        assert.are.same({ "alice", "bob" }, set_members(CH))
        assert.are.same({}, fake.published)
        assert.is_true(fake.run(channels.leave, "room:a", "alice", "n:2"))
        assert.is_nil(fake.store[MEMBERS_A])
        assert.are.same({ "bob" }, set_members(CH))
        assert.are.same({ event = "leave", presenceKey = "alice" }, decode(decode(fake.published[1]).message))
        -- removing again is a no-op (no second leave)
        assert.is_false(fake.run(channels.leave, "room:a", "alice", "n:2"))
        assert.are.equal(1, #fake.published)
    end)

    it("presence_add / presence_remove alone publish nothing (the caller announces)", function()
        assert.is_true(fake.run(channels.presence_add, "room:a", "alice", "n:1"))
        assert.is_true(fake.run(channels.presence_remove, "room:a", "alice", "n:1"))
        assert.are.same({}, fake.published)
        assert.is_nil(fake.store[CH])
    end)

    it("keys carry the channel as hash tag, both in one slot", function()
        fake.run(channels.presence_add, "room:a", "alice", "n:1")
        local call = commands("EVAL")[1]
        assert.are.same({ "presence:{room:a}:alice", "presence:{room:a}" }, { call[4], call[5] })
    end)

    it("presence_add refuses a bad TTL inside the script (error reply, nothing written)", function()
        fake.config.channels.presenceTTL = 0
        local ok, err = fake.run(channels.join, "room:a", "alice", "n:1")
        assert.is_nil(ok)
        assert.matches("presence_add", err)
        assert.is_nil(fake.store[CH])
        assert.are.same({}, fake.published)
    end)

    it("answers nil, err while Redis is down and publishes nothing", function()
        fake.redis_up = false
        local ok, err = fake.run(channels.join, "room:a", "alice", "n:1")
        assert.is_nil(ok)
        assert.are.equal("closed", err)
        assert.are.same({}, fake.published)
    end)

    it("refresh: one pipeline per channel, EXPIRE on the channel set and each member set", function()
        fake.run(channels.presence_add, "room:a", "alice", "n:1")
        fake.run(channels.presence_add, "room:a", "bob", "n:2")
        fake.ttl = {}
        fake.redis_log = {}
        assert.is_true(fake.run(channels.presence_refresh, "room:a", { "alice", "bob" }))
        assert.are.same({
            { "EXPIRE", "presence:{room:a}", 90 },
            { "EXPIRE", "presence:{room:a}:alice", 90 },
            { "EXPIRE", "presence:{room:a}:bob", 90 },
        }, fake.redis_log)
        assert.are.equal(90, fake.ttl["presence:{room:a}:bob"])
    end)

    it("members lists the channel's presence keys", function()
        fake.run(channels.presence_add, "room:a", "bob", "n:2")
        fake.run(channels.presence_add, "room:a", "alice", "n:1")
        local m = fake.run(channels.members, "room:a")
        table.sort(m)
        assert.are.same({ "alice", "bob" }, m)
        assert.is_nil((channels.members("bad name")))
    end)

    it("presence keys: numbers become integer strings; empty, huge or odd values are refused", function()
        assert.are.equal("7", channels.presence_key_string(7))
        assert.are.equal("12345678901234", channels.presence_key_string(12345678901234))
        assert.are.equal("x", channels.presence_key_string("x"))
        assert.is_nil((channels.presence_key_string("")))
        assert.is_nil((channels.presence_key_string(("k"):rep(257))))
        assert.is_nil((channels.presence_key_string({})))
        assert.is_nil((channels.presence_key_string(nil)))
        assert.is_nil((channels.presence_key_string(0 / 0)))
    end)

    it("connection uids are <node>:<socket id> with a per-process random node", function()
        assert.matches("^[%w_-]+:17$", channels.uid(17))
        assert.are.equal(channels.NODE .. ":17", channels.uid(17))
        assert.are.equal(12, #channels.NODE)
    end)
end)

describe("conn:broadcast", function()
    it("broadcasts as the connection when the socket is subscribed", function()
        fake.ws_connect(3)
        fake.ws_subscribe(3, "room:a")
        local conn = conn_mod.new { type = "websocket", id = 3, uid = channels.uid(3), identifier = "1.2.3.4" }
        assert.is_true(conn:broadcast("room:a", { text = "yo" }))
        local p = decode(fake.published[1])
        assert.are.same({ channel = "room:a", message = { text = "yo" }, sender = channels.uid(3) }, p)
    end)

    it("raises CONNECTION_NOT_SUBSCRIBED otherwise (other channel, web conn, bad name)", function()
        fake.ws_connect(3)
        fake.ws_subscribe(3, "room:a")
        local ws_conn = conn_mod.new { type = "websocket", id = 3, identifier = "1.2.3.4" }
        local web_conn = conn_mod.new { type = "web", identifier = "1.2.3.4" }
        for _, case in ipairs { { ws_conn, "room:b" }, { web_conn, "room:a" }, { ws_conn, 5 } } do
            local ok, err = pcall(case[1].broadcast, case[1], case[2], {})
            assert.is_false(ok)
            assert.is_true(errors.is(err))
            assert.are.equal("CONNECTION_NOT_SUBSCRIBED", err.type)
            assert.are.equal("not subscribed to this channel", err.message)
            assert.are.equal(406, errors.status(err.type))
        end
        assert.are.same({}, fake.published)
    end)
end)

describe("boot loads app/channels", function()
    local boot = require "keryx.boot"
    local pipeline = require "keryx.pipeline"

    local function clear_actions()
        for k in pairs(pipeline.registry.list) do pipeline.registry.list[k] = nil end
        for k in pairs(pipeline.registry.by_name) do pipeline.registry.by_name[k] = nil end
    end

    before_each(clear_actions)
    after_each(clear_actions)

    it("registers the example app's channels and returns the websocket entry points", function()
        local saved = package.path
        package.path = "app/?.lua;" .. package.path -- as lua_bridge.c sets it: the app's modules
        local ok, entry = pcall(boot.start, "app")
        package.path = saved
        assert(ok, entry)
        for _, k in ipairs { "web", "cli", "list_actions", "ws_open", "ws_message", "ws_close", "on_start" } do
            assert.are.equal("function", type(entry[k]), k)
        end
        assert.are.equal("messages", channels.find("messages").name)
        assert.are.equal("^room:[%w-]+$", channels.find("room:lobby-2").pattern)
        assert.is_nil(channels.find("room:"))
        assert.is_nil(channels.find("room:a.b"))
        assert.is_nil(channels.find("public-announcements"))
    end)

    it("loads channel files sorted by name, accepts a list per file, and names a bad file", function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p " .. dir .. "/actions " .. dir .. "/channels") == 0)
        local function write(name, text)
            local f = assert(io.open(dir .. "/channels/" .. name, "w"))
            f:write(text)
            f:close()
        end
        write("b.lua", 'local k = require "keryx"; return { k.channel { pattern = "^x.*$" }, k.channel { name = "b" } }')
        write("a.lua", 'local k = require "keryx"; return k.channel { pattern = "^x:.*$" }')
        boot.start(dir)
        assert.are.equal("^x:.*$", channels.find("x:1").pattern) -- a.lua first
        assert.are.equal("b", channels.find("b").name)
        channels.reset()
        clear_actions()
        fake.reset() -- forgets the routes registered by the first boot
        write("c.lua", 'return { name = "plain table" }')
        local ok, err = pcall(boot.start, dir)
        os.execute("rm -rf " .. dir)
        assert.is_false(ok)
        assert.matches("c%.lua: must return keryx%.channel", err)
    end)
end)
