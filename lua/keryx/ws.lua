-- keryx.ws — the Lua side of WebSocket connections. lua_bridge.c runs
-- each entry point in a fresh task (a coroutine: Redis calls yield) and reads the first return
-- value: true = the coroutine is spoiled (stack or memory cap), do not pool it.
--
--   open(id, info)       info = {identifier, session_id?, correlation_id?} from the upgrade
--                        request: creates the websocket conn object kept for the socket's life.
--   message(id, text)    one text frame: {"messageType":"action"|"subscribe"|"unsubscribe",…};
--                        the reply goes back with core.ws_send. Never raises: every failure
--                        (bad JSON included) is an error reply, never a dropped socket.
--   close(id)            C has already dropped the socket and its C-side subscriptions: removes
--                        this socket's presence from every channel it joined.
--   heartbeat()          every PRESENCE_HEARTBEAT_INTERVAL while sockets are open: first retries
--                        the presence adds and removes that failed (Redis down or too slow), then
--                        refreshes the TTL of the presence keys held by this process's sockets,
--                        one pipeline per channel (each pipeline's keys share the channel's hash
--                        tag).
--
-- Subscriptions live in C (core.ws_subscribe: the fan-out of broadcasts needs no Lua); this
-- module keeps, per socket, the channels it joined with their presence key, for presence only.
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"
local conn_mod = require "keryx.conn"
local transport = require "keryx.transport.websocket"
local channels = require "keryx.channels"

local M = {}

local type, tostring, pairs, ipairs, xpcall, pcall, format = type, tostring, pairs, ipairs, xpcall, pcall, string.format
local ws_send, ws_send_held, channel_name_valid = core.ws_send, core.ws_send_held, core.channel_name_valid
local ws_send_held_for, ws_envelope = core.ws_send_held_for, core.ws_envelope
local HELD, ARRAY_MT, EMPTY_ARRAY = transport.HELD, transport.ARRAY_MT, json.empty_array
local ws_cfg = core.config.server.web.websocket

--- id -> { id, conn, channels = { [channel] = presence key }, adding = { [channel] = n }, closed }
local sockets = {}
M.sockets = sockets

local function id_string(id)
    if type(id) == "number" then return format("%.0f", id) end
    return tostring(id)
end

local function log(level, msg)
    if core.log_enabled(level) then core.log(level, msg) end
end

local on_error = errors.on_error

local function fail(mid, err_type, message)
    return transport.error_reply(mid, errors.new(err_type, message))
end

-- A raised error that is not typed is a bug in app or framework code: logged with its stack.
local function bug_reply(mid, err, what)
    if err.type == "CONNECTION_ACTION_RUN" then
        log("error", what .. " failed: " .. tostring(err.stack or err.message))
    end
    return transport.error_reply(mid, err)
end

-- ---- presence glue ----------------------------------------------------------------------
--
-- A subscribe's presence add waits for Redis; meanwhile the socket may close or unsubscribe
-- (other tasks). Those skip a channel whose add is in flight (s.adding) and leave the clean-up
-- to the subscribe task, which alone knows whether its join was announced: so a client never
-- sees a join after the matching leave, and nothing lingers until the TTL.

local function warn_presence(what, s, channel, err)
    log("warn", ("presence: cannot %s %s in %s (%s)"):format(what, s.conn.uid, channel, tostring(err)))
end

-- Presence that could not be written stays wrong after Redis is back unless someone writes it
-- again: a failed add would leave a subscribed socket absent until it re-subscribes, a failed
-- remove would leave a gone socket present (other sockets' heartbeats keep its key alive). So
-- each failure is remembered — the latest wish per (channel, key, uid) — and the heartbeat
-- retries it; any later add or remove of the triple that succeeds settles it.
local repairs = {} --- "<channel>\0<key>\0<uid>" -> { op = "add"|"remove", channel, key, uid, sid }
M.repairs = repairs

local function repair_id(channel, key, uid)
    return channel .. "\0" .. key .. "\0" .. uid
end

local function settle(s, op, channel, key, ok)
    local id = repair_id(channel, key, s.conn.uid)
    if ok then repairs[id] = nil; return end
    repairs[id] = { op = op, channel = channel, key = key, uid = s.conn.uid, sid = s.id }
end

local function leave(s, channel, key)
    local left, err = channels.leave(channel, key, s.conn.uid)
    if left == nil then warn_presence("remove", s, channel, err) end
    settle(s, "remove", channel, key, left ~= nil)
end

local function join(s, channel, key)
    s.adding[channel] = (s.adding[channel] or 0) + 1
    local new, err = channels.presence_add(channel, key, s.conn.uid)
    s.adding[channel] = s.adding[channel] - 1
    if s.adding[channel] == 0 then s.adding[channel] = nil end
    -- Presence is best effort: the subscription itself (in C) stands; the heartbeat repairs it.
    if new == nil then warn_presence("add", s, channel, err) end
    if not s.closed and s.channels[channel] == key then
        settle(s, "add", channel, key, new ~= nil)
        if new then channels.presence_event(channel, "join", key) end
        return
    end
    -- Closed or unsubscribed meanwhile: take the add back (a timed-out add may still have been
    -- applied). A key this add created was never announced, so its removal is not either.
    local left, rerr = channels.presence_remove(channel, key, s.conn.uid)
    settle(s, "remove", channel, key, left ~= nil)
    if left == nil then warn_presence("remove", s, channel, rerr)
    elseif left and new == false then channels.presence_event(channel, "leave", key) end
end

-- An add is still wanted only while its socket is subscribed with that key; else the member
-- must go.
local function still_wanted(r)
    if r.op ~= "add" then return "remove" end
    local s = sockets[r.sid]
    if s and not s.closed and s.channels[r.channel] == r.key then return "add" end
    return "remove"
end

-- One retry; false when Redis is still unreachable (the others would fail alike).
local function retry(id, r)
    local op = still_wanted(r)
    local res, err
    if op == "add" then res, err = channels.presence_add(r.channel, r.key, r.uid)
    else res, err = channels.presence_remove(r.channel, r.key, r.uid) end
    if res == nil then return err ~= "closed" end
    -- A subscribe or leave of the same triple may have run while this waited: theirs is newer.
    if repairs[id] == r then repairs[id] = nil end
    if res then channels.presence_event(r.channel, op == "add" and "join" or "leave", r.key) end
    log("info", ("presence: repaired %s of %s in %s"):format(op, r.uid, r.channel))
    return true
end

local function retry_repairs()
    local pending = {}
    for id, r in pairs(repairs) do pending[#pending + 1] = { id, r } end
    for _, p in ipairs(pending) do
        if repairs[p[1]] == p[2] and not retry(p[1], p[2]) then return end
    end
end

-- ---- subscribe / unsubscribe ----------------------------------------------------------------

local function too_many(mid)
    local msg = ("Too many subscriptions (max %d)"):format(ws_cfg.maxSubscriptions)
    return fail(mid, "CONNECTION_CHANNEL_VALIDATION", msg)
end

local function authorize(def, channel, conn, mid)
    if not def.authorize then return nil end
    local ok, res = xpcall(def.authorize, on_error, channel, conn)
    if not ok then
        if res.type == "CONNECTION_ACTION_RUN" and res.cause ~= nil then
            -- An untyped refusal (error "…") is still a refusal, typed as one; its text may
            -- name the file and line, so production answers the generic refusal.
            local e = errors.new("CONNECTION_CHANNEL_AUTHORIZATION", res.message)
            e.public_message = "Not authorized for channel: " .. channel
            e.stack = res.stack
            return transport.error_reply(mid, e)
        end
        return transport.error_reply(mid, res)
    end
    if res == false then
        return fail(mid, "CONNECTION_CHANNEL_AUTHORIZATION", "Not authorized for channel: " .. channel)
    end
    return nil
end

local function presence_key_of(def, conn)
    if not def.presence_key then return conn.uid end
    local ok, k = xpcall(def.presence_key, on_error, conn)
    if not ok then return nil, k end
    local key, err = channels.presence_key_string(k)
    if not key then return nil, errors.internal("presence_key: " .. err) end
    return key
end

-- Checks in order (Keryx's): name, subscription cap, definition, middleware before,
-- authorize; then the C subscription and presence.
local function subscribe(s, channel, mid)
    local id, conn = s.id, s.conn
    if type(channel) ~= "string" or not channel_name_valid(channel) then
        return fail(mid, "CONNECTION_CHANNEL_VALIDATION", "Invalid channel name")
    end
    local max = ws_cfg.maxSubscriptions
    if max > 0 and not core.ws_is_subscribed(id, channel) and core.ws_subscription_count(id) >= max then
        return too_many(mid)
    end
    local def = channels.find(channel)
    if not def then return fail(mid, "CHANNEL_NOT_FOUND", "Channel not found: " .. channel) end
    for _, mw in ipairs(def.middleware) do
        if mw.before then
            local ok, err = xpcall(mw.before, on_error, channel, conn)
            if not ok then return bug_reply(mid, err, "channel " .. channel .. " middleware before") end
        end
    end
    local refused = authorize(def, channel, conn, mid)
    if refused then return refused end
    local key, kerr = presence_key_of(def, conn)
    if not key then return bug_reply(mid, kerr, "channel " .. channel .. " presence_key") end
    -- C is the authority on the cap (another message of this socket may have subscribed
    -- meanwhile) and on whether the socket is still open.
    local ok, why = core.ws_subscribe(id, channel)
    if not ok then
        if why == "limit" then return too_many(mid) end
        if why == "closed" then return nil end
        return fail(mid, "CONNECTION_CHANNEL_VALIDATION", "Invalid channel name")
    end
    local old = s.channels[channel]
    s.channels[channel] = key
    if old ~= nil and old ~= key and not s.adding[channel] then leave(s, channel, old) end
    -- Also when already subscribed with this key: idempotent, and it repairs expired presence.
    join(s, channel, key)
    if s.closed then return nil end
    return transport.reply(mid, "subscribed", '{"channel":"' .. channel .. '"}')
end

local function unsubscribe(s, channel, mid)
    local id, conn = s.id, s.conn
    if type(channel) ~= "string" or not channel_name_valid(channel) then
        return fail(mid, "CONNECTION_CHANNEL_VALIDATION", "Invalid channel name")
    end
    local key = s.channels[channel]
    local was = key ~= nil or core.ws_is_subscribed(id, channel)
    if key ~= nil then
        s.channels[channel] = nil
        if not s.adding[channel] then leave(s, channel, key) end
    end
    core.ws_unsubscribe(id, channel)
    -- `after` runs only for a socket that was subscribed; its errors are logged, the
    -- unsubscription stands.
    local def = was and channels.find(channel)
    if def then
        for _, mw in ipairs(def.middleware) do
            if mw.after then
                local ok, err = xpcall(mw.after, on_error, channel, conn)
                if not ok then
                    log("warn", ("channel %s middleware after failed: %s"):format(channel,
                        tostring(err.stack or err.message)))
                end
            end
        end
    end
    return transport.reply(mid, "unsubscribed", '{"channel":"' .. channel .. '"}')
end

-- ---- entry points ---------------------------------------------------------------------------

function M.open(id, info)
    info = type(info) == "table" and info or {}
    local identifier = type(info.identifier) == "string" and info.identifier or "unknown"
    local conn = conn_mod.new {
        type = "websocket",
        id = id,
        uid = channels.uid(id),
        identifier = identifier,
        session_id = info.session_id,
        correlation_id = info.correlation_id,
    }
    sockets[id] = { id = id, conn = conn, channels = {}, adding = {}, closed = false }
    log("info", ("New websocket connection from %s (%s)"):format(identifier, id_string(id)))
    return false
end

-- The message's fields: kind (messageType), name (action), params (decoded), channel, mid
-- (messageId). Returns the reply (text, or head and body: see transport.action) and whether the
-- coroutine is spoiled.
local function route(s, kind, name, params, channel, mid)
    conn_mod.refresh(s.conn) -- every message reads the session afresh (a logout elsewhere counts)
    if kind == "action" then
        return transport.action(s.conn, name, params, mid)
    elseif kind == "subscribe" then
        return subscribe(s, channel, mid)
    elseif kind == "unsubscribe" then
        return unsubscribe(s, channel, mid)
    end
    return fail(mid, "CONNECTION_ACTION_RUN", "messageType either missing or unknown")
end

-- msg, err: the message decoded by json.decode (which never raises); mid its messageId.
local function handle(s, msg, err, mid)
    if type(msg) == "table" then return route(s, msg.messageType, msg.action, msg.params, msg.channel, mid) end
    conn_mod.refresh(s.conn)
    if msg == nil then return fail(nil, "CONNECTION_ACTION_RUN", tostring(err)) end
    return fail(nil, "CONNECTION_ACTION_RUN", "messageType either missing or unknown")
end

-- The simple envelope (most messages) read in C, without json.decode building the message's
-- table: see core.ws_envelope. Its params object comes as JSON text, decoded here by the same
-- json.decode; nil when C did not take the text, or when params does not decode (json.decode of
-- the whole text then gives today's error message).
local function envelope(text)
    local kind, name, mid, channel, params_json = ws_envelope(text)
    if kind == nil then return nil end
    local params
    if params_json ~= nil then
        params = json.decode(params_json)
        if params == nil then return nil end
    end
    return kind, name, params, channel, mid
end

function M.message(id, text)
    local s = sockets[id]
    if not s then return false end -- closed before this message's task ran
    local ok, reply, body, discard
    local kind, name, params, channel, mid = envelope(text)
    if kind ~= nil then
        ok, reply, body, discard = xpcall(route, on_error, s, kind, name, params, channel, mid)
    else
        local msg, err = json.decode(text)
        mid = type(msg) == "table" and msg.messageId or nil -- decoded tables have no metatable
        ok, reply, body, discard = xpcall(handle, on_error, s, msg, err, mid)
    end
    if not ok then
        -- A framework failure (or the stack/memory cap): answer it, and spoil the coroutine.
        discard = true
        local typed = errors.is(reply) and reply or errors.from_any(reply)
        local rok, r = pcall(bug_reply, mid, typed, "websocket message")
        reply, body = rok and r or nil, nil
    end
    -- An action's reply comes as head and body (transport.head): one frame, not joined in Lua;
    -- a HELD body is in C already.
    if body == HELD then
        -- false: the C encoder left messageId to json.lua; the JSON is still held
        if ws_send_held_for(id, mid, ARRAY_MT, EMPTY_ARRAY) == false then
            ws_send_held(id, transport.head(mid, "response"))
        end
    elseif body then ws_send(id, reply, body, "}")
    elseif reply then ws_send(id, reply) end
    return discard and true or false
end

function M.close(id)
    local s = sockets[id]
    if not s then return false end
    sockets[id] = nil
    s.closed = true
    log("info", ("websocket connection closed from %s (%s)"):format(s.conn.identifier, id_string(id)))
    -- A snapshot: removals yield, and a subscribe still in flight may touch s.channels.
    local joined = {}
    for channel, key in pairs(s.channels) do
        if not s.adding[channel] then joined[#joined + 1] = { channel, key } end
    end
    for _, ck in ipairs(joined) do leave(s, ck[1], ck[2]) end
    return false
end

function M.heartbeat()
    retry_repairs()
    local by_channel = {}
    for _, s in pairs(sockets) do
        for channel, key in pairs(s.channels) do
            local set = by_channel[channel]
            if not set then set = {}; by_channel[channel] = set end
            set[key] = true
        end
    end
    for channel, set in pairs(by_channel) do
        local keys = {}
        for k in pairs(set) do keys[#keys + 1] = k end
        table.sort(keys)
        local ok, err = channels.presence_refresh(channel, keys)
        if not ok then
            -- Redis is down: every channel would fail alike (redis.c logs the outage itself).
            if err == "closed" then break end
            log("warn", ("presence: cannot refresh %s (%s)"):format(channel, tostring(err)))
        end
    end
    return false
end

--- Open sockets this process knows (specs, status).
function M.count()
    local n = 0
    for _ in pairs(sockets) do n = n + 1 end
    return n
end

return M
