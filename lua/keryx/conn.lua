-- keryx.conn — the connection object an action receives (SPEC §3): type, id, identifier,
-- correlation_id, metadata, session (loaded from Redis on first access, only when the request
-- carried a well-formed session cookie), the session and header methods, and broadcast.
-- A websocket conn (keryx.ws) lives as long as its socket: id is the socket id, uid the
-- cluster-unique `<node>:<id>`, and its session is cached on it once loaded or changed.
local core = require "keryx.core"
local errors = require "keryx.errors"
local session = require "keryx.session"
local json = require "keryx.json"

local M = {}
local methods = {}
local rawget, rawset, type, pairs, find = rawget, rawset, type, pairs, string.find
local session_cookie = core.session_cookie

-- Session state lives on the owner: the connection itself, or for one WebSocket message
-- (a per-message view, see M.for_message) the socket's connection.
local function owner(self)
    return rawget(self, "_socket") or self
end

local function load_session(self)
    self = owner(self)
    if rawget(self, "_session_loaded") then return nil end
    local id = rawget(self, "session_id")
    local rec = id and session.load(id) or nil
    rawset(self, "_session_loaded", true)
    if rec then rawset(self, "session", rec) end
    return rec
end

local function set_session(self, rec, id)
    self = owner(self)
    rawset(self, "session", rec)
    rawset(self, "session_id", id)
    rawset(self, "_session_loaded", true)
end

local mt = {
    __index = function(self, k)
        local m = methods[k]
        if m ~= nil then return m end
        if k == "session" then return load_session(self) end
        return nil
    end,
}

-- A message's view of a socket: its own request-scoped fields (metadata, response headers,
-- status, the spoiled-coroutine flag), everything else read from the socket's connection.
local message_mt = {
    __index = function(self, k)
        local m = methods[k]
        if m ~= nil then return m end
        return rawget(self, "_socket")[k]
    end,
}

function M.new(fields)
    return setmetatable(fields, mt)
end

--- Forgets the cached session so the next access reads Redis again: an open socket sees a
--- logout or an expiry done elsewhere.
function M.refresh(conn)
    conn = owner(conn)
    rawset(conn, "session", nil)
    rawset(conn, "_session_loaded", nil)
end

--- One WebSocket message's connection: concurrent messages of a socket do not share request
--- state, and the session is read afresh for each.
function M.for_message(socket_conn)
    M.refresh(socket_conn)
    return setmetatable({ _socket = socket_conn, metadata = {} }, message_mt)
end

local function set_cookie(self, id)
    -- Only web connections carry cookies; others keep the id on the connection.
    if self.type == "web" then rawset(self, "_set_cookie", session_cookie(id)) end
end

--- Adds a response header (web). Names are tokens; values must not contain CR, LF or NUL.
function methods:set_header(name, value)
    value = tostring(value)
    if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+.^_`|~-]+$") then
        error("set_header: invalid header name", 2)
    end
    if find(value, "[%z\r\n]") then error("set_header: header value contains CR, LF or NUL", 2) end
    rawset(self, "response_headers", (rawget(self, "response_headers") or "") .. name .. ": " .. value .. "\r\n")
end

--- Merges t into the session's data, creating the session (and its cookie) when there is none.
--- A value of keryx.json.null removes that key.
function methods:update_session(t)
    if type(t) ~= "table" then error("update_session expects a table", 2) end
    local rec = self.session
    local created = rec == nil
    if created then rec = session.new_record() end
    for k, v in pairs(t) do
        if v == json.null then rec.data[k] = nil else rec.data[k] = v end
    end
    session.save(rec)
    set_session(self, rec, rec.id)
    if created then set_cookie(self, rec.id) end
    return rec
end

--- Moves the session to a fresh id (call it on login: defeats session fixation).
function methods:regenerate_session()
    local old = self.session
    local rec = session.new_record(old and old.data or {})
    if old then
        rec.createdAt = old.createdAt
        session.replace(old.id, rec)
    else
        session.save(rec)
    end
    set_session(self, rec, rec.id)
    set_cookie(self, rec.id)
    return rec
end

--- Broadcasts message on a channel this websocket is subscribed to (reference §6.3); the
--- sender is the connection's uid (`<node>:<socket id>`, as in presence). Raises 406
--- CONNECTION_NOT_SUBSCRIBED `not subscribed to this channel` otherwise (always for non-websocket
--- connections: they have no subscriptions). Returns true | nil, err like keryx.channels.broadcast.
function methods:broadcast(channel, message)
    local id = rawget(owner(self), "id")
    if self.type ~= "websocket" or type(channel) ~= "string" or id == nil
        or not core.ws_is_subscribed(id, channel) then
        error(errors.new("CONNECTION_NOT_SUBSCRIBED", "not subscribed to this channel"), 2)
    end
    local channels = require "keryx.channels" -- lazily: channels is not needed by most requests
    return channels.broadcast(channel, message, channels.uid(id))
end

--- Deletes the session and expires the cookie (logout).
function methods:destroy_session()
    local had_cookie = rawget(owner(self), "session_id") ~= nil
    local rec = self.session
    if rec then session.delete(rec.id) end
    set_session(self, nil, nil)
    if rec or had_cookie then set_cookie(self, nil) end
    return rec ~= nil
end

return M
