-- keryx.transport.websocket — actions over a WebSocket (messageType "action"):
-- the same validation, middleware, timeout and typed errors as HTTP, one
-- `[ACTION:WEBSOCKET:…]` log line, and the reply text.
--
-- Replies (JSON-compact) are assembled by hand so that messageId comes first and the error
-- keeps the reference's field order (message, type, timestamp, key, value, stack). messageId
-- is any JSON value the client sent, re-encoded; nil = absent = omitted.
--
-- Owns: reply shapes. Callers: keryx.ws (message routing, subscribe replies). Never: sends
-- (keryx.ws does, with core.ws_send) or touches response headers, content type or cookies
-- (a socket has none: conn:set_header and the session cookie operation are ignored here).
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"

local M = {}

local web_cfg = core.config.server.web
local type, pairs, ipairs, next, rawget, concat = type, pairs, ipairs, next, rawget, table.concat
local clock_ms, now_ms, log_enabled = core.clock_ms, core.now_ms, core.log_enabled

local ERROR_FIELDS = { "message", "type", "timestamp", "key", "value", "stack" }

-- The body M.action returns when the response's JSON is held in C (core.ws_hold_json) for
-- core.ws_send_held: no Lua string for a text that is only ever copied into the frame.
local HELD = setmetatable({}, { __name = "keryx.transport.websocket.HELD" })
M.HELD = HELD
local ws_hold_json, ARRAY_MT, EMPTY_ARRAY = core.ws_hold_json, getmetatable(json.array()), json.empty_array
M.ARRAY_MT = ARRAY_MT

local HEADS = { response = '{"response":', error = '{"error":' }

--- '{"messageId":<id>,"<field>":' (no messageId when message_id is nil): a reply is its head,
--- a JSON body and "}". Kept apart, the three go to core.ws_send as pieces of one frame: no
--- Lua string joins them (a long new string costs its hashing and interning).
---@param message_id any
---@param field string
---@return string
function M.head(message_id, field)
    if message_id == nil then return HEADS[field] or ('{"' .. field .. '":') end
    local mid = json.encode(message_id)
    if mid then return '{"messageId":' .. mid .. ',"' .. field .. '":' end
    return HEADS[field] or ('{"' .. field .. '":')
end

--- '{"messageId":<id>,"<field>":<body JSON>}' (no messageId when message_id is nil).
---@param message_id any
---@param field string
---@param body string JSON text
---@return string
function M.reply(message_id, field, body)
    return M.head(message_id, field) .. body .. "}"
end

--- The error object's JSON for err (typed, or anything: it becomes CONNECTION_ACTION_RUN); the
--- stack is included per WEB_SERVER_INCLUDE_STACK_IN_ERRORS.
---@param err any
---@return string
function M.error_body(err)
    local body = errors.to_envelope(err, { include_stack = web_cfg.includeStackInErrors, now_ms = now_ms() }).error
    local parts = {}
    for _, k in ipairs(ERROR_FIELDS) do
        local v = body[k]
        if v ~= nil then
            local enc = json.encode(v) -- an unencodable key/value (app-supplied) is left out
            if enc then parts[#parts + 1] = '"' .. k .. '":' .. enc end
        end
    end
    return "{" .. concat(parts, ",") .. "}"
end

--- The error reply for err (see M.error_body).
---@param message_id any
---@param err any
---@return string
function M.error_reply(message_id, err)
    return M.reply(message_id, "error", M.error_body(err))
end

-- The message's params: absent or null → {}; a JSON object → its entries (null values
-- dropped, as for a JSON body); anything else → CONNECTION_ACTION_PARAM_FORMATTING. The
-- object is the message's own, just decoded: its nulls are dropped in place, with no copy.
local function ws_params(p)
    if p == nil or p == json.null then return {} end
    if type(p) ~= "table" or json.is_array(p) or (next(p) ~= nil and p[1] ~= nil) then
        return nil, errors.new("CONNECTION_ACTION_PARAM_FORMATTING", "params must be a JSON object")
    end
    for k, v in pairs(p) do
        if v == json.null then p[k] = nil end -- clearing a field during pairs is allowed
    end
    return p
end

-- The response's JSON: held in C (HELD) when the C encoder takes it, else as json.encode
-- answers (its Lua encoder, or the error).
local function encode(response)
    if response ~= nil and ws_hold_json(response, ARRAY_MT, EMPTY_ARRAY) then return HELD end
    return pipeline.encode_response(response)
end

--- Runs action `name` for a websocket conn. raw is the message's `params` as decoded
--- (nil/null = {}, else a JSON object). Returns the reply as its head and body (the text is
--- head .. body .. "}": {"messageId":…,"response":…} or {"messageId":…,"error":…}, see M.head;
--- body M.HELD, with no head: the response's JSON waits in C for core.ws_send_held_for (or
--- core.ws_send_held with M.head(message_id, "response")), which must be the next thing this VM
--- does with it) and true when the task's coroutine must not be pooled (the
--- action hit the stack or memory cap).
---@return string head, string body, boolean discard
function M.action(socket_conn, name, raw, message_id)
    -- The clock is read for the action log line only.
    local started = log_enabled("info") and clock_ms() or 0
    local conn = conn_mod.for_message(socket_conn) -- request state of its own, session re-read
    local action_name = type(name) == "string" and name or nil
    local action = action_name and pipeline.registry.by_name[action_name] or nil
    local response, err
    if not action then
        err = errors.new("CONNECTION_ACTION_NOT_FOUND",
            action_name and ("Action not found: " .. action_name) or "Action not found")
    else
        raw, err = ws_params(raw)
        if raw then response, err = pipeline.act(action, raw, conn) end
    end
    local body
    if not err then body, err = encode(response) end
    -- An unknown action has no schema saying which params are secret: its params are not logged.
    pipeline.log_action("WEBSOCKET", action_name, started, "WEBSOCKET", conn.identifier, nil, conn.correlation_id,
        err, action, action and raw or nil)
    local discard = rawget(conn, "discard_thread") or (err ~= nil and err.type == "CONNECTION_ACTION_RUN")
    if err then return M.head(message_id, "error"), M.error_body(err), discard and true or false end
    -- A held body's head is written in C (core.ws_send_held_for), when it can be: see keryx.ws.
    if body == HELD then return nil, HELD, discard and true or false end
    return M.head(message_id, "response"), body, discard and true or false
end

return M
