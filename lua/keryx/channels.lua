-- keryx.channels — the registry of channel definitions, broadcasts and presence.
-- Application code uses:
--
--   keryx.channels.broadcast(channel, message [, sender])  → true | nil, err
--       publishes {"channel":"<name>","message":<message as JSON>,"sender":<sender>} on the
--       Redis pub/sub channel keryx:pubsub; every keryx process hands it, in C, to its local
--       sockets subscribed to <name> as {"message":{…}}. sender defaults to "server". err:
--       "invalid channel name", "message is not JSON-encodable: …", "closed" (Redis down: the
--       broadcast is dropped, never queued). Fire-and-forget: does not yield.
--   keryx.channels.members(channel) → { presence key, … } | nil, err   (SMEMBERS presence:{<ch>})
--
-- and, for the framework (boot.lua, keryx.ws, keryx.conn):
--
--   register(def, source), find(name) → definition | nil (exact names first, then patterns in
--   load order), reset(), uid(socket_id), presence_keys(ch, key), presence_add / presence_remove
--   (the scripts alone), presence_event(ch, "join"|"leave", key), join / leave (script + event),
--   presence_refresh(ch, keys), NODE.
--
-- Presence (the channel is the Redis Cluster hash tag, so one script touches one slot): `presence:{<ch>}` is the
-- SET of presence keys in the channel, `presence:{<ch>}:<key>` the SET of connection uids behind
-- one key; both expire after PRESENCE_TTL unless the heartbeat refreshes them. Join/leave
-- events go out on the channel itself, sender "presence", message the JSON *string*
-- {"event":"join"|"leave","presenceKey":"<key>"} (double-encoded, as Keryx does).
--
-- Connection uids are `<NODE>:<socket id>`: socket ids are only unique inside one process, and
-- presence sets are shared by every process on the Redis, so each process tags its ids with a
-- random NODE chosen at start-up.
local core = require "keryx.core"
local json = require "keryx.json"
local scripts = require "keryx.scripts"
local redis = require "keryx.redis"

local M = {}

local type, tostring, pcall, find, format, floor = type, tostring, pcall, string.find, string.format, math.floor
local channel_name_valid, publish = core.channel_name_valid, core.publish
local presence_cfg = core.config.channels

M.DEFAULT_SENDER = "server"
M.PRESENCE_SENDER = "presence"
M.MAX_PRESENCE_KEY = 256

-- 72 random bits: two processes sharing a Redis never pick the same tag in practice.
M.NODE = core.random_id():sub(1, 12)

-- ---- registry -------------------------------------------------------------------------------

M.registry = { by_name = {}, patterns = {}, list = {} }

function M.reset()
    M.registry = { by_name = {}, patterns = {}, list = {} }
end

--- Adds a validated definition (keryx.channel{…}); raises on a duplicate name or pattern.
function M.register(def, source)
    source = source or "channel"
    if type(def) ~= "table" or not def.__keryx_channel then
        error(source .. ": must return keryx.channel{...} or a list of them", 0)
    end
    local reg = M.registry
    if def.name then
        if reg.by_name[def.name] then error(source .. ": duplicate channel name '" .. def.name .. "'", 0) end
        reg.by_name[def.name] = def
    else
        for _, other in ipairs(reg.patterns) do
            if other.pattern == def.pattern then
                error(source .. ": duplicate channel pattern '" .. def.pattern .. "'", 0)
            end
        end
        reg.patterns[#reg.patterns + 1] = def
    end
    reg.list[#reg.list + 1] = def
end

--- The definition serving channel `name`: the exact name first, then the first matching pattern.
function M.find(name)
    if type(name) ~= "string" then return nil end
    local reg = M.registry
    local def = reg.by_name[name]
    if def then return def end
    for _, p in ipairs(reg.patterns) do
        -- A pattern that turns out malformed on this subject matches nothing.
        local ok, s = pcall(find, name, p.pattern)
        if ok and s then return p end
    end
    return nil
end

-- ---- broadcast ------------------------------------------------------------------------------

--- The payload C relays: it must start exactly with {"channel":"<name>", (src/pubsub.h).
function M.payload(channel, message, sender)
    if type(channel) ~= "string" or not channel_name_valid(channel) then return nil, "invalid channel name" end
    if message == nil then message = json.null end
    local m, err = json.encode(message)
    if not m then return nil, "message is not JSON-encodable: " .. tostring(err) end
    if sender == nil then sender = M.DEFAULT_SENDER end
    local s, serr = json.encode(sender)
    if not s then return nil, "sender is not JSON-encodable: " .. tostring(serr) end
    -- Valid names are [A-Za-z0-9:._-] only: nothing to escape.
    return '{"channel":"' .. channel .. '","message":' .. m .. ',"sender":' .. s .. "}"
end

function M.broadcast(channel, message, sender)
    local payload, err = M.payload(channel, message, sender)
    if not payload then return nil, err end
    return publish(payload)
end

-- ---- presence -------------------------------------------------------------------------------

--- `<NODE>:<socket id>` — the connection's id in presence sets (cluster-unique).
function M.uid(socket_id)
    if type(socket_id) == "number" then return M.NODE .. ":" .. format("%.0f", socket_id) end
    return M.NODE .. ":" .. tostring(socket_id)
end

--- The channel set `presence:{<ch>}` and, given a key, the member set `presence:{<ch>}:<key>`.
function M.presence_keys(channel, key)
    local base = "presence:{" .. channel .. "}"
    if key == nil then return base end
    return base, base .. ":" .. key
end

--- A presence key as a string, or nil, err (functions may return numbers, e.g. a user id).
function M.presence_key_string(k)
    if type(k) == "number" then
        if k ~= k or k == math.huge or k == -math.huge then return nil, "presence key must be finite" end
        if k == floor(k) and k > -2 ^ 53 and k < 2 ^ 53 then k = format("%.0f", k) else k = tostring(k) end
    end
    if type(k) ~= "string" or k == "" or #k > M.MAX_PRESENCE_KEY then
        return nil, "presence key must be a string or number of 1.." .. M.MAX_PRESENCE_KEY .. " bytes"
    end
    return k
end

--- Publishes a presence event on the channel itself: sender "presence", message the JSON
--- *text* {"event":"join"|"leave","presenceKey":"<key>"} (double-encoded, as Keryx does).
function M.presence_event(channel, name, key)
    return M.broadcast(channel, '{"event":"' .. name .. '","presenceKey":' .. json.encode(key) .. "}",
        M.PRESENCE_SENDER)
end

local function script_result(v, err)
    if v == nil or v == false then return nil, tostring(err) end
    if type(v) == "table" and v.err then return nil, tostring(v.err) end
    return v
end

--- Adds uid under key in channel (lua/redis/presence_add.lua). Publishes nothing: the caller
--- announces the join (it may have to take the add back first).
--- → true (key new in the channel) | false (key already present) | nil, err
function M.presence_add(channel, key, uid)
    local chan_key, member_key = M.presence_keys(channel, key)
    local r, err = script_result(scripts.run("presence_add", { member_key, chan_key },
        { uid, key, presence_cfg.presenceTTL }))
    if r == nil then return nil, err end
    return r == 1
end

--- Removes uid from key in channel (lua/redis/presence_remove.lua). Publishes nothing.
--- → true (it was the key's last connection: the key left) | false | nil, err
function M.presence_remove(channel, key, uid)
    local chan_key, member_key = M.presence_keys(channel, key)
    local r, err = script_result(scripts.run("presence_remove", { member_key, chan_key }, { uid, key }))
    if r == nil then return nil, err end
    return r == 1
end

--- presence_add, then the join event when the key is new. → as presence_add
function M.join(channel, key, uid)
    local new, err = M.presence_add(channel, key, uid)
    if new then M.presence_event(channel, "join", key) end
    return new, err
end

--- presence_remove, then the leave event when the key left. → as presence_remove
function M.leave(channel, key, uid)
    local left, err = M.presence_remove(channel, key, uid)
    if left then M.presence_event(channel, "leave", key) end
    return left, err
end

--- Refreshes the TTL of channel's set and of each given presence key's member set, in one
--- pipeline (all keys share the channel's hash tag). → true | nil, err
function M.presence_refresh(channel, keys)
    local ttl = presence_cfg.presenceTTL
    local chan_key = M.presence_keys(channel)
    local cmds = { { "EXPIRE", chan_key, ttl } }
    for _, k in ipairs(keys) do
        local _, member_key = M.presence_keys(channel, k)
        cmds[#cmds + 1] = { "EXPIRE", member_key, ttl }
    end
    local res, err = redis.pipeline(cmds)
    if not res then return nil, err end
    for _, r in ipairs(res) do
        if type(r) == "table" and r.err then return nil, r.err end
    end
    return true
end

--- The presence keys currently in channel.
function M.members(channel)
    if type(channel) ~= "string" or not channel_name_valid(channel) then return nil, "invalid channel name" end
    local v, err = redis.call("SMEMBERS", M.presence_keys(channel))
    if v == nil or v == false then return nil, tostring(err) end
    local out = json.array()
    for i, k in ipairs(v) do out[i] = k end
    return out
end

return M
