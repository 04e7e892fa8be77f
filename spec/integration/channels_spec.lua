-- Black-box specs for channels over WebSocket (security: channel validation, WebSocket protections)
-- on the default app (channels `messages`: logged-in users only, `room:<name>`: anyone) and a real
-- redis-server shared by two keryx processes:
--   * names are checked (Invalid channel name), undefined channels refused (CHANNEL_NOT_FOUND);
--   * subscribe / unsubscribe replies, also for a channel never joined;
--   * authorization: anonymous sockets are refused `messages`, the same socket after logging in
--     over the socket (session:create) is accepted, as is a socket upgraded with a session cookie;
--   * a message posted over HTTP to process B reaches a socket on process A (keryx:pubsub);
--   * presence: join/leave events, the Redis sets, per-user keys.
local H = require "server"
local W = require "ws_client"
local socket = require "socket"
local cjson = require "cjson"

local PASSWORD = "channels-Passw0rd"
math.randomseed(math.floor(socket.gettime() * 1000) % 2147483647)

local stop, open, error_of = H.stop, W.open, W.error_of

local function uniq(prefix)
    return prefix .. tostring(math.random(1, 1e9))
end

local function subscribe(ws, channel, mid)
    return ws:request { messageType = "subscribe", channel = channel, messageId = mid or 1 }
end

local function unsubscribe(ws, channel, mid)
    return ws:request { messageType = "unsubscribe", channel = channel, messageId = mid or 1 }
end

local function subscribed(ws, channel, mid)
    mid = mid or 1
    local reply, raw = subscribe(ws, channel, mid)
    assert.are.same({ messageId = mid, subscribed = { channel = channel } }, reply, raw)
end

--- One request with a JSON body; cookie is a session id.
local function call(srv, method, path, body, cookie)
    return H.call(srv, method, path, body, cookie and "__session=" .. cookie)
end

--- Creates a user over HTTP; returns email, id.
local function signup(srv)
    local email = uniq("chan-user-") .. "@example.com"
    local res = call(srv, "PUT", "/api/user", { name = "Channel User", email = email, password = PASSWORD })
    assert.are.equal(200, res.status, res.body)
    return email, H.json(res.body).user.id
end

--- Logs in over HTTP; returns the session id.
local function http_login(srv, email)
    local res = call(srv, "PUT", "/api/session", { email = email, password = PASSWORD })
    assert.are.equal(200, res.status, res.body)
    return H.json(res.body).session.id
end

--- Logs the socket in by running session:create over it.
local function ws_login(ws, email)
    local reply, raw = ws:request { messageType = "action", action = "session:create", messageId = "login",
        params = { email = email, password = PASSWORD } }
    assert.is_table(reply, raw)
    assert.is_table(reply.response, raw)
    assert.are.equal(email, reply.response.user.email)
    return reply
end

--- The presence event a broadcast carries: its message is a JSON *string*.
local function presence_event(b)
    assert.are.equal("presence", b.message.sender)
    assert.is_string(b.message.message, cjson.encode(b))
    return cjson.decode(b.message.message)
end

--- The next presence event of `kind` on channel received by ws (other broadcasts skipped).
local function next_event(ws, channel, kind, key, timeout)
    local b, err = ws:broadcast(channel, timeout or 2, function(m)
        if m.sender ~= "presence" or type(m.message) ~= "string" then return false end
        local ok, e = pcall(cjson.decode, m.message)
        return ok and type(e) == "table" and e.event == kind and (key == nil or e.presenceKey == key)
    end)
    assert.is_table(b, "no " .. kind .. " event on " .. channel .. " (" .. tostring(err) .. ")")
    return presence_event(b)
end

local function members(R, channel)
    local out = R.cli("SMEMBERS", "presence:{" .. channel .. "}")
    local set = {}
    for line in out:gmatch("[^\n]+") do set[line] = true end
    return set
end

describe("channels", function()
    local R, A, B

    setup(function()
        R = H.redis()
        A = H.start { env = { PROCESS_NAME = "node-a" } }
        B = H.start { env = { PROCESS_NAME = "node-b" } }
    end)
    teardown(function()
        stop(A)
        stop(B)
    end)
    after_each(function()
        assert.is_true(A:alive(), A:log())
        assert.is_true(B:alive(), B:log())
    end)

    it("refuses invalid channel names with CONNECTION_CHANNEL_VALIDATION and no key/value", function()
        local ws = open(A)
        local names = { "bad channel!", "", ("a"):rep(201), "room:lobby\n", "room/lobby", "room:lóbby",
            "room:lobby\0x", "*", "room:{lobby}" }
        for i, name in ipairs(names) do
            local reply, raw = subscribe(ws, name, i)
            local err = error_of(reply, raw)
            assert.are.equal(i, reply.messageId)
            assert.are.equal("Invalid channel name", err.message)
            assert.are.equal("CONNECTION_CHANNEL_VALIDATION", err.type)
            assert.is_nil(err.key)
            assert.is_nil(err.value)
        end
        -- not a string at all
        for i, ch in ipairs { 42, { "room:lobby" }, cjson.null, true } do
            local reply, raw = ws:request { messageType = "subscribe", channel = ch, messageId = 100 + i }
            assert.are.equal("Invalid channel name", error_of(reply, raw).message)
        end
        local reply, raw = ws:request { messageType = "subscribe", messageId = 200 }
        assert.are.equal("Invalid channel name", error_of(reply, raw).message)
        -- unsubscribe checks names the same way
        reply, raw = unsubscribe(ws, "bad channel!", 201)
        assert.are.equal("CONNECTION_CHANNEL_VALIDATION", error_of(reply, raw).type)
        -- 200 characters is the longest valid name: checked, then refused as undefined
        reply, raw = subscribe(ws, ("a"):rep(200), 202)
        assert.are.equal("CHANNEL_NOT_FOUND", error_of(reply, raw).type)
        ws:close(1000)
    end)

    it("refuses an undefined channel with CHANNEL_NOT_FOUND", function()
        local ws = open(A)
        local reply, raw = subscribe(ws, "public-announcements", 7)
        local err = error_of(reply, raw)
        assert.are.equal(7, reply.messageId)
        assert.are.equal("Channel not found: public-announcements", err.message)
        assert.are.equal("CHANNEL_NOT_FOUND", err.type)
        -- The room pattern is anchored and wants at least one [%w-] after the prefix.
        for _, name in ipairs { "room:", "xroom:lobby", "room:a.b", "room:a:b", "rooms:lobby", "messages2" } do
            reply, raw = subscribe(ws, name, name)
            err = error_of(reply, raw)
            assert.are.equal("Channel not found: " .. name, err.message)
        end
        ws:close(1000)
    end)

    it("subscribes to room:lobby and unsubscribes, also from a channel never joined", function()
        local ws = open(A)
        subscribed(ws, "room:lobby", "s1")
        -- subscribing twice is idempotent
        subscribed(ws, "room:lobby", "s2")
        local reply, raw = unsubscribe(ws, "room:lobby", "u1")
        assert.are.same({ messageId = "u1", unsubscribed = { channel = "room:lobby" } }, reply, raw)
        reply, raw = unsubscribe(ws, "room:never-joined", "u2")
        assert.are.same({ messageId = "u2", unsubscribed = { channel = "room:never-joined" } }, reply, raw)
        -- a defined-nowhere but valid name: unsubscribing is still a plain success
        reply, raw = unsubscribe(ws, "public-announcements", "u3")
        assert.are.same({ messageId = "u3", unsubscribed = { channel = "public-announcements" } }, reply, raw)
        -- without messageId, none in the reply
        assert(ws:send_json { messageType = "subscribe", channel = "room:lobby" })
        local r2, raw2 = ws:wait(function(v) return v.subscribed ~= nil end)
        assert.are.same({ subscribed = { channel = "room:lobby" } }, r2, raw2)
        ws:close(1000)
    end)

    it("refuses `messages` to an anonymous socket, accepts it once the socket logs in", function()
        local email = signup(A)
        local ws = open(A)
        local reply, raw = subscribe(ws, "messages", 1)
        local err = error_of(reply, raw)
        assert.are.equal(1, reply.messageId)
        assert.are.equal("CONNECTION_CHANNEL_AUTHORIZATION", err.type)
        assert.are.equal("Must be logged in to subscribe", err.message)
        -- a wrong password over the socket does not log it in
        local bad, braw = ws:request { messageType = "action", action = "session:create", messageId = 2,
            params = { email = email, password = "wrong-password" } }
        assert.are.equal("CONNECTION_SESSION_NOT_FOUND", error_of(bad, braw).type)
        assert.is_nil(braw:find("wrong-password", 1, true), braw)
        reply, raw = subscribe(ws, "messages", 3)
        assert.are.equal("CONNECTION_CHANNEL_AUTHORIZATION", error_of(reply, raw).type)
        ws_login(ws, email)
        subscribed(ws, "messages", 4)
        -- user:me over the same socket sees the session
        local me = ws:request { messageType = "action", action = "user:me", messageId = 5 }
        assert.are.equal(email, me.response.user.email)
        ws:close(1000)
    end)

    it("accepts `messages` for a socket upgraded with a logged-in session cookie, not a forged one", function()
        local email = signup(A)
        local sid = http_login(A, email)
        local ws = open(A, { Cookie = "__session=" .. sid })
        subscribed(ws, "messages", 1)
        ws:close(1000)
        local forged = open(A, { Cookie = "__session=" .. ("A"):rep(43) })
        local reply, raw = subscribe(forged, "messages", 2)
        assert.are.equal("CONNECTION_CHANNEL_AUTHORIZATION", error_of(reply, raw).type)
        forged:close(1000)
    end)

    it("sees a logout done over HTTP on a socket that is already open (no stale session)", function()
        local email = signup(A)
        local sid = http_login(A, email)
        local ws = open(A, { Cookie = "__session=" .. sid })
        local me = ws:request { messageType = "action", action = "user:me", messageId = 1 }
        assert.are.equal(email, me.response.user.email)
        local out = A:request { method = "DELETE", path = "/api/session", headers = { Cookie = "__session=" .. sid } }
        assert.are.equal(200, out.status)
        local after, raw = ws:request { messageType = "action", action = "user:me", messageId = 2 }
        assert.are.equal("CONNECTION_SESSION_NOT_FOUND", error_of(after, raw).type)
        local reply, sraw = subscribe(ws, "messages", 3)
        assert.are.equal("CONNECTION_CHANNEL_AUTHORIZATION", error_of(reply, sraw).type)
        ws:close(1000)
    end)

    it("delivers a message posted over HTTP to process B to a subscriber on process A", function()
        local email = signup(A)
        local on_a = open(A)
        ws_login(on_a, email)
        subscribed(on_a, "messages", 1)
        local on_b = open(B, { Cookie = "__session=" .. http_login(B, email) })
        subscribed(on_b, "messages", 1)
        -- A socket on A that is only in a room, and one that left `messages`, get nothing.
        local bystander = open(A)
        subscribed(bystander, "room:lobby", 1)
        local leaver = open(A)
        ws_login(leaver, email)
        subscribed(leaver, "messages", 1)
        local u = unsubscribe(leaver, "messages", 2)
        assert.are.same({ channel = "messages" }, u.unsubscribed)

        local poster = http_login(B, email)
        local body = uniq("hello across processes ")
        local res = call(B, "PUT", "/api/message", { body = body }, poster)
        assert.are.equal(200, res.status, res.body)
        local posted = H.json(res.body).message

        local is_post = function(m) return type(m.message) == "table" and type(m.message.message) == "table"
            and m.message.message.body == body end
        for name, ws in pairs { A = on_a, B = on_b } do
            local b, raw = ws:broadcast("messages", 2, is_post)
            assert.is_table(b, "socket on " .. name .. " got no broadcast (" .. tostring(raw) .. ")")
            assert.are.same({ "message" }, (function()
                local k = {}
                for key in pairs(b) do k[#k + 1] = key end
                return k
            end)(), raw)
            assert.are.equal("messages", b.message.channel)
            assert.are.same({ message = posted }, b.message.message, raw)
            assert.is_string(b.message.sender)
            assert.is_nil(b.messageId)
            -- the wire shape: {"message":{"channel":"messages","message":{"message":{…}},"sender":…}}
            assert.is_truthy(raw:match('^{"message":{"channel":"messages","message":{"message":{'), raw)
        end
        local stray = bystander:broadcast(nil, 0.3, is_post)
        assert.is_nil(stray, "a socket subscribed elsewhere received the post")
        stray = leaver:broadcast(nil, 0.1, is_post)
        assert.is_nil(stray, "an unsubscribed socket received the post")
        for _, ws in ipairs { on_a, on_b, bystander, leaver } do ws:close(1000) end
    end)

    it("publishes join/leave presence events and keeps presence:{<channel>} in Redis", function()
        local room = uniq("room:presence-")
        local x = open(A)
        subscribed(x, room, 1)
        local xkey = next_event(x, room, "join").presenceKey
        assert.is_string(xkey)
        local y = open(B) -- presence spans processes
        subscribed(y, room, 1)
        local joined = next_event(x, room, "join")
        local ykey = joined.presenceKey
        assert.are.same({ event = "join", presenceKey = ykey }, joined)
        assert.are_not.equal(xkey, ykey)
        local set = members(R, room)
        assert.is_true(set[xkey], R.cli("SMEMBERS", "presence:{" .. room .. "}"))
        assert.is_true(set[ykey], R.cli("SMEMBERS", "presence:{" .. room .. "}"))
        -- The member set of Y's key holds Y's connection; both keys expire (PRESENCE_TTL).
        assert.is_true(tonumber(R.cli("TTL", "presence:{" .. room .. "}")) > 0)
        assert.are.equal("1", R.cli("SCARD", "presence:{" .. room .. "}:" .. ykey))

        y:close(1000)
        local left = next_event(x, room, "leave", ykey)
        assert.are.same({ event = "leave", presenceKey = ykey }, left)
        H.sleep(0.05)
        set = members(R, room)
        assert.is_nil(set[ykey], "Y's key is still in presence:{" .. room .. "}")
        assert.is_true(set[xkey])
        assert.are.equal("0", R.cli("EXISTS", "presence:{" .. room .. "}:" .. ykey))

        -- Unsubscribing leaves too; the last one out empties the set.
        local r = unsubscribe(x, room, 2)
        assert.are.same({ channel = room }, r.unsubscribed)
        H.sleep(0.05)
        assert.are.equal("0", R.cli("EXISTS", "presence:{" .. room .. "}"))
        x:close(1000)
    end)

    it("leaves no presence behind when a socket closes while its subscribe is in flight", function()
        local room = uniq("room:race-")
        for _ = 1, 5 do
            local ws = open(A)
            assert(ws:send_json { messageType = "subscribe", channel = room, messageId = 1 })
            ws.sock:close() -- no close frame, no waiting for the reply
        end
        local deadline = socket.gettime() + 2
        while R.cli("EXISTS", "presence:{" .. room .. "}") ~= "0" and socket.gettime() < deadline do H.sleep(0.05) end
        assert.are.equal("0", R.cli("EXISTS", "presence:{" .. room .. "}"), R.cli("SMEMBERS", "presence:{" .. room .. "}"))
        assert.are.equal("", R.cli("KEYS", "presence:{" .. room .. "}*"))
    end)

    it("keys `messages` presence by user: two sockets of one user are one presence key", function()
        local email, uid = signup(A)
        local watcher_email = signup(A)
        local watcher = open(A)
        ws_login(watcher, watcher_email)
        subscribed(watcher, "messages", 1)
        local t1, t2 = open(A), open(B)
        ws_login(t1, email)
        ws_login(t2, email)
        subscribed(t1, "messages", 1)
        local join = next_event(watcher, "messages", "join", tostring(uid))
        assert.are.equal(tostring(uid), join.presenceKey)
        subscribed(t2, "messages", 1)
        -- no second join for the same user, and closing one tab is no leave
        t1:close(1000)
        local extra = watcher:broadcast("messages", 0.3, function(m)
            return m.sender == "presence" and type(m.message) == "string" and m.message:find('"presenceKey":"' .. uid .. '"', 1, true) ~= nil
        end)
        assert.is_nil(extra, "a second join/leave for the same user")
        assert.is_true(members(R, "messages")[tostring(uid)])
        t2:close(1000)
        next_event(watcher, "messages", "leave", tostring(uid))
        H.sleep(0.05)
        assert.is_nil(members(R, "messages")[tostring(uid)])
        watcher:close(1000)
    end)

    -- keryx writes what one read of its subscriber connection brings as one batch per socket
    -- (src/channels.c): a burst of PUBLISHes sent to Redis in one write must still reach every
    -- subscriber, on both processes, complete and in publish order; every fifth message is
    -- large (20 kB), the size whose frame is shared between sockets instead of copied.
    it("delivers a burst of publishes sent in one pipeline to every subscriber, in order", function()
        local room = uniq("room:burst-")
        local subs = {}
        for i = 1, 6 do
            local ws = open(i <= 4 and A or B)
            subscribed(ws, room, 1)
            subs[#subs + 1] = ws
        end
        local N, big = 40, string.rep("b", 20000)
        local cmds = {}
        for i = 1, N do
            -- keryx reads the channel from the payload's prefix: "channel" must come first.
            local payload = ('{"channel":"%s","message":{"i":%d,"pad":"%s"},"sender":"spec"}'):format(room, i,
                i % 5 == 0 and big or "")
            cmds[#cmds + 1] = ("*3\r\n$7\r\nPUBLISH\r\n$12\r\nkeryx:pubsub\r\n$%d\r\n%s\r\n"):format(#payload,
                payload)
        end
        local rc = assert(socket.connect("127.0.0.1", R.port))
        assert(rc:send(table.concat(cmds)))
        for i = 1, N do assert.are.equal(":2", rc:receive("*l"), "PUBLISH " .. i .. " reached both processes") end
        rc:close()
        for n, ws in ipairs(subs) do
            for i = 1, N do
                local m, raw = ws:next_message(room, 3)
                assert.is_table(m, ("socket %d: message %d missing (%s)"):format(n, i, tostring(raw)))
                assert.are.equal(i, m.i, ("socket %d: message %d out of order"):format(n, i))
                assert.are.equal(i % 5 == 0 and 20000 or 0, #m.pad)
            end
        end
        for _, ws in ipairs(subs) do ws:close(1000) end
    end)
end)
