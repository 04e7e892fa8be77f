-- keryx.conn — the connection object an action receives.
--
-- Public fields: type ("web" | "websocket" | "cli" | "mcp": one tools/call), id, identifier,
-- correlation_id, metadata (request-scoped table for middleware), status (web: the answer's status, default 200),
-- session (loaded from Redis on first access, only when the request carried a well-formed
-- session cookie).
-- Methods:
--   conn:set_header(name, value)   web: adds a response header (kept in order, repeats allowed);
--                                  raises on a name that is not a token or a value with CR,
--                                  LF or NUL. Ignored by the WebSocket and CLI transports.
--   conn:set_content_type(ct)      web: answer with this Content-Type; when the action returns
--                                  a string it is the body verbatim (HTML, text…), any other
--                                  value is still JSON-encoded. Errors stay JSON.
--   conn:header(name)              web: the request header `name` (any case; the first one
--                                  when repeated), read lazily from C; nil when absent, for
--                                  WebSocket and CLI connections, and once the client is gone.
--   conn:stream{status?, headers?, sse?, content_type?}
--                                  web: begins a streamed answer now (Server-Sent Events or
--                                  chunked) and returns a keryx.Stream (s:event, s:write,
--                                  s:close), or nil, "closed"; the action's return value is
--                                  then ignored. See methods:stream below.
--   conn:update_session(t), conn:regenerate_session(), conn:destroy_session(), conn:broadcast()
-- The response headers, content type and session cookie operation are private fields that
-- keryx.transport.web hands to C among its six result values (see that file); the Set-Cookie line is
-- written in C (src/session.c), so the cookie never crosses into Lua.
-- A websocket conn (keryx.ws) lives as long as its socket: id is the socket id, uid the
-- cluster-unique `<node>:<id>`, and its session is cached on it once loaded or changed.
local core = require "keryx.core"
local errors = require "keryx.errors"
local session = require "keryx.session"
local json = require "keryx.json"

local M = {}
local methods = {}
local rawget, rawset, type, pairs, find, tostring, error = rawget, rawset, type, pairs, string.find, tostring, error
local setmetatable, sort = setmetatable, table.sort
local req_header = core.req_header
local stream_begin, stream_write, stream_event, stream_end = core.stream_begin, core.stream_write, core.stream_event,
    core.stream_end

-- The one "expire the cookie" operation (C only reads it).
local EXPIRE = { expire = true }

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

---@class keryx.Conn
---@field type "web"|"websocket"|"cli"
---@field id number? socket id (websocket)
---@field uid string? `<node>:<socket id>` (websocket)
---@field identifier string client IP, or `cli:<user>`
---@field correlation_id string?
---@field metadata table request-scoped scratch space for middleware
---@field status integer? web: the answer's status (default 200)
---@field session {id: string, createdAt: number, data: table}?

---@param fields table
---@return keryx.Conn
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

-- A streamed answer sent its headers when it began, so a cookie operation after that could
-- not reach the client: the session would change in Redis behind a cookie that never moves
-- (a regenerated session would log the client out). Raised before Redis is touched.
local function cookie_still_possible(self, fn)
    if rawget(self, "_stream") then
        error(fn .. ": the response is streamed (conn:stream), its headers are sent: no session cookie can follow", 3)
    end
end

-- An MCP call's session is the bearer token's user, in memory for that call only (keryx.mcp):
-- there is no cookie and no Redis record to change, and a tool must not believe it logged
-- someone in or out. Raised before Redis is touched.
local function session_fixed(self, fn)
    if self.type == "mcp" then
        error(errors.new("CONNECTION_TYPE_NOT_FOUND",
            fn .. ": an MCP call's session is its access token's user and cannot be changed over MCP"), 3)
    end
end

-- The cookie itself is written in C from this operation; only web answers carry cookies.
local function set_cookie(self, id)
    if self.type == "web" then rawset(self, "_session_op", id and { set = id } or EXPIRE) end
end

-- What C accepts in a field value (src/http_guard.c kx_http_field_value_valid) is checked
-- there again; refusing CR, LF and NUL here blames the line that tried to split a response.
local function check_value(fn, value)
    if find(value, "[%z\r\n]") then error(fn .. ": header value contains CR, LF or NUL", 3) end
end

--- Adds a response header (web). Names are tokens; values must not contain CR, LF or NUL.
---@param name string
---@param value string|number
-- The answer's header list (flat name, value pairs; keryx.transport.web hands it to C).
local function header_list(self)
    local h = rawget(self, "_headers")
    if not h then
        h = {}
        rawset(self, "_headers", h)
    end
    return h
end

function methods:set_header(name, value)
    value = tostring(value)
    if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+.^_`|~-]+$") then
        error("set_header: invalid header name", 2)
    end
    check_value("set_header", value)
    local h = header_list(self)
    local n = #h
    h[n + 1], h[n + 2] = name, value
end

--- Framework code only: the answer's flat name, value header list, for appending pairs built
--- from constant names and digit values (keryx.middleware.rate_limit's), which
--- set_header's checks would pass by construction.
M.header_list = header_list

--- Answers with this Content-Type (web); a string returned by the action is then the body.
---@param ct string e.g. "text/html; charset=utf-8"
function methods:set_content_type(ct)
    if type(ct) ~= "string" or ct == "" then error("set_content_type: content type must be a non-empty string", 2) end
    check_value("set_content_type", ct)
    rawset(self, "_content_type", ct)
end

--- A request header of the current HTTP request (any case), or nil.
---@param name string
---@return string?
function methods:header(name)
    if type(name) ~= "string" then error("header: name must be a string", 2) end
    if self.type ~= "web" then return nil end
    return req_header(name)
end

--- Merges t into the session's data, creating the session (and its cookie) when there is none.
--- A value of keryx.json.null removes that key.
---@param t table
---@return {id: string, createdAt: number, data: table}
function methods:update_session(t)
    if type(t) ~= "table" then error("update_session expects a table", 2) end
    session_fixed(self, "update_session")
    local rec = self.session
    local created = rec == nil
    if created then
        cookie_still_possible(self, "update_session")
        rec = session.new_record()
    end
    for k, v in pairs(t) do
        if v == json.null then rec.data[k] = nil else rec.data[k] = v end
    end
    session.save(rec)
    set_session(self, rec, rec.id)
    if created then set_cookie(self, rec.id) end
    return rec
end

--- Moves the session to a fresh id (call it on login: defeats session fixation).
---@return {id: string, createdAt: number, data: table}
function methods:regenerate_session()
    session_fixed(self, "regenerate_session")
    cookie_still_possible(self, "regenerate_session")
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

--- Broadcasts message on a channel this websocket is subscribed to (fanned out via Redis pub/sub); the
--- sender is the connection's uid (`<node>:<socket id>`, as in presence). Raises 406
--- CONNECTION_NOT_SUBSCRIBED `not subscribed to this channel` otherwise (always for non-websocket
--- connections: they have no subscriptions). Returns true | nil, err like keryx.channels.broadcast.
---@param channel string
---@param message any
---@return true|nil, string?
function methods:broadcast(channel, message)
    local id = rawget(owner(self), "id")
    if self.type ~= "websocket" or type(channel) ~= "string" or id == nil
        or not core.ws_is_subscribed(id, channel) then
        error(errors.new("CONNECTION_NOT_SUBSCRIBED", "not subscribed to this channel"), 2)
    end
    local channels = require "keryx.channels" -- lazily: channels is not needed by most requests
    return channels.broadcast(channel, message, channels.uid(id))
end

-- ---- streamed answers (src/lua_api_http.c) ----------------------------------------------

---@class keryx.Stream
---@field sse boolean  true for a Server-Sent Events stream, false for a chunked one
local stream_methods = {}
local stream_mt = { __index = stream_methods }

local function check_open(s, fn)
    if rawget(s, "_ended") then error("stream:" .. fn .. ": the stream was closed", 3) end
end

--- Sends raw text as one chunk (chunked streams; in an SSE stream it must be valid SSE text,
--- e.g. ": keep-alive\n\n"). Waits (yields) while the client is behind.
---@param text string|number
---@return true|nil ok
---@return "closed"|"aborted"|nil err  the client left (or was dropped for not reading); the action timed out
function stream_methods:write(text)
    check_open(self, "write")
    if type(text) == "number" then text = tostring(text) end
    if type(text) ~= "string" then error("stream:write: text must be a string", 2) end
    return stream_write(text)
end

--- Sends one Server-Sent Event: `event: name` (when name is not nil) and `data` split into
--- `data:` lines; a table is sent as its JSON text. Waits (yields) while the client is behind.
---@param name string|nil  the event type (no CR, LF or NUL); nil for the default "message"
---@param data string|number|table
---@return true|nil ok
---@return "closed"|"aborted"|nil err
function stream_methods:event(name, data)
    check_open(self, "event")
    if not rawget(self, "sse") then error("stream:event: the stream is not SSE (conn:stream{sse = true})", 2) end
    if name ~= nil and (type(name) ~= "string" or find(name, "[%z\r\n]")) then
        error("stream:event: name must be nil or a string without CR, LF or NUL", 2)
    end
    if type(data) == "table" then
        data = json.encode(data)
        if not data then error("stream:event: data cannot be encoded as JSON", 2) end
    elseif type(data) == "number" then
        data = tostring(data)
    elseif type(data) ~= "string" then
        error("stream:event: data must be a string, number or table", 2)
    end
    return stream_event(name, data)
end

--- Ends the response (keep-alive goes on with the next request). Closing twice does nothing;
--- a stream the action leaves open is closed for it when the action returns or fails.
function stream_methods:close()
    if rawget(self, "_ended") then return end
    rawset(self, "_ended", true)
    stream_end()
end

-- opts.headers as flat name, value pairs after the ones set with conn:set_header, in name
-- order so that the same table always gives the same bytes.
local function stream_headers(self, extra)
    if extra == nil then return rawget(self, "_headers") end
    if type(extra) ~= "table" then error("stream: headers must be a table of name = value", 3) end
    local names = {}
    for name in pairs(extra) do
        if type(name) ~= "string" then error("stream: header names must be strings", 3) end
        names[#names + 1] = name
    end
    sort(names)
    for _, name in ipairs(names) do methods.set_header(self, name, extra[name]) end
    return rawget(self, "_headers")
end

--- Begins a streamed answer (web only): the status line and headers go out now, with chunked
--- framing; then the action sends with s:event / s:write and ends with s:close(). Whatever
--- the action returns afterwards is ignored; a stream it leaves open (or an error midway) is
--- ended for it — the client sees a truncated stream, never a second response — and the
--- action log line is written as usual. A streamed response never sets the session cookie:
--- begin it after any session change that needs one (a pending one raises here).
--- Raises CONNECTION_TYPE_NOT_FOUND on a WebSocket or CLI connection.
---@param opts {status: integer?, headers: table<string, string|number>?, sse: boolean?, content_type: string?}?
---   status: default conn.status or 200 (200..599); headers: added to those of conn:set_header
---   (not Content-Length, Transfer-Encoding or Connection); sse: a text/event-stream with
---   `Cache-Control: no-cache`; content_type (chunked only): default conn:set_content_type's,
---   else "text/plain; charset=utf-8".
---@return keryx.Stream|nil stream
---@return "closed"|nil err  the client is already gone (later writes answer the same)
function methods:stream(opts)
    if self.type ~= "web" then
        local why = "conn:stream is for web requests only, not " .. tostring(self.type)
        error(errors.new("CONNECTION_TYPE_NOT_FOUND", why), 2)
    end
    opts = opts or {}
    if type(opts) ~= "table" then error("stream: options must be a table", 2) end
    if rawget(self, "_stream") then error("stream: the response was already begun", 2) end
    if rawget(self, "_session_op") then
        error("stream: a session cookie is pending, and a streamed response cannot set it", 2)
    end
    local sse = opts.sse == true
    local ctype = opts.content_type or rawget(self, "_content_type") or "text/plain; charset=utf-8"
    local headers = stream_headers(self, opts.headers)
    local status = opts.status or rawget(self, "status") or 200
    local ok, err = stream_begin(status, headers, ctype, sse and "sse" or "chunked")
    local s = setmetatable({ sse = sse }, stream_mt)
    rawset(self, "_stream", s)
    if not ok then return nil, err end
    return s
end

--- Whether this web answer was streamed (keryx.transport.web then sends nothing more).
function M.streamed(conn)
    return rawget(conn, "_stream") ~= nil
end

--- Deletes the session and expires the cookie (logout).
---@return boolean had_session
function methods:destroy_session()
    session_fixed(self, "destroy_session")
    local had_cookie = rawget(owner(self), "session_id") ~= nil
    local rec = self.session
    if rec or had_cookie then cookie_still_possible(self, "destroy_session") end
    if rec then session.delete(rec.id) end
    set_session(self, nil, nil)
    if rec or had_cookie then set_cookie(self, nil) end
    return rec ~= nil
end

return M
