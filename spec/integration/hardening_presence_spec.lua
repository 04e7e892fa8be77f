-- Hardening: presence is right again after a Redis outage. A presence add or remove that fails
-- while Redis is down is remembered and retried by the presence heartbeat once Redis is back
-- (lua/keryx/ws.lua), so a socket that subscribed during the outage becomes present and one
-- that unsubscribed or closed during it is removed, without waiting for PRESENCE_TTL (90 s
-- here) and without the client doing anything. PRESENCE_HEARTBEAT_INTERVAL is 1 s.
local H = require "server"
local W = require "ws_client"
local PR = require "private_redis"

local stop, eventually = H.stop, H.eventually
local CH = "room:lobby"
local SET = "presence:{" .. CH .. "}"

local function members(P)
    local out = {}
    for line in P:cli("SMEMBERS", SET):gmatch("[^\n]+") do out[#out + 1] = line end
    table.sort(out)
    return out
end

local function subscribe(ws, channel, mid)
    local reply, raw = ws:request { messageType = "subscribe", channel = channel, messageId = mid }
    assert.are.same({ channel = channel }, reply.subscribed, raw)
end

local function unsubscribe(ws, channel, mid)
    local reply, raw = ws:request { messageType = "unsubscribe", channel = channel, messageId = mid }
    assert.are.same({ channel = channel }, reply.unsubscribed, raw)
end

describe("hardening: presence after a Redis outage", function()
    local P, srv

    before_each(function()
        P = PR.new()
        srv = H.start { env = { REDIS_URL = P.url, PRESENCE_HEARTBEAT_INTERVAL = "1", PRESENCE_TTL = "90" } }
    end)
    after_each(function()
        stop(srv)
        if P then P:destroy() end
        P = nil
    end)

    it("a socket that subscribed while Redis was down is present once Redis is back", function()
        local ws = W.open(srv)
        P:stop()
        subscribe(ws, CH, 1) -- the subscription stands; its presence add failed
        assert.truthy(srv:wait_log("presence: cannot add"):find("presence: cannot add", 1, true))
        P:start()
        assert.are.same({}, members(P))
        local ok = eventually(8, function() return #members(P) == 1 end)
        assert.is_true(ok, "the member was never re-added:\n" .. srv:log())
        local uid = members(P)[1]
        assert.are.equal(uid, P:cli("SMEMBERS", SET .. ":" .. uid))
        local ttl = tonumber(P:cli("TTL", SET))
        assert.is_true(ttl > 0 and ttl <= 90, tostring(ttl))
        -- and it is a real member: leaving removes it
        unsubscribe(ws, CH, 2)
        assert.are.same({}, members(P))
        ws:close()
    end)

    it("sockets that unsubscribed or closed while Redis was down are removed once Redis is back", function()
        local a, b, keep = W.open(srv), W.open(srv), W.open(srv) -- keep: the heartbeat runs while sockets are open
        subscribe(a, CH, 1)
        subscribe(b, CH, 1)
        subscribe(keep, CH, 1)
        local before = members(P)
        assert.are.equal(3, #before)
        -- The outage must not wipe what Redis holds, or nothing would be left to repair: the
        -- restarted server loads this snapshot (same --dir), stale members included.
        assert.are.equal("OK", P:cli("SAVE"))
        P:kill()
        unsubscribe(a, CH, 2)
        b:close()
        assert.truthy(srv:wait_log("presence: cannot remove"):find("presence: cannot remove", 1, true))
        P:start()
        assert.are.same(before, members(P)) -- stale: a and b are still listed
        local ok = eventually(8, function() return #members(P) == 1 end)
        assert.is_true(ok, "stale members were never removed: " .. table.concat(members(P), " ") .. "\n" .. srv:log())
        -- the one left is `keep`: it can still leave normally
        unsubscribe(keep, CH, 2)
        assert.are.same({}, members(P))
        a:close()
        keep:close()
    end)
    it("the last socket closing while Redis was down is removed too (the heartbeat runs with no socket open)", function()
        local only = W.open(srv)
        subscribe(only, CH, 1)
        assert.are.equal(1, #members(P))
        assert.are.equal("OK", P:cli("SAVE"))
        P:kill()
        only:close()
        assert.truthy(srv:wait_log("presence: cannot remove"):find("presence: cannot remove", 1, true))
        P:start()
        assert.are.equal(1, #members(P)) -- stale, and no socket is left on this server
        local ok = eventually(8, function() return #members(P) == 0 end)
        assert.is_true(ok, "the last member was never removed:\n" .. srv:log())
    end)
end)
