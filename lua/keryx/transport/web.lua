-- keryx.transport.web — the HTTP transport: one action run per request, answered as SIX
-- values that lua_bridge.c reads by position (src/lua_bridge.c read_web_result; values rather
-- than a table, because C reads a table's field through a string lookup each, per request):
--
--   1 status        integer 100..599; nil when the action streamed its answer
--   2 body          string (JSON unless content_type says otherwise)
--   3 content_type  string: JSON_CONTENT_TYPE for every JSON answer (results and errors), else
--                 what the action chose with conn:set_content_type for a string it returned
--   4 headers       nil | { name1, value1, name2, value2, … }   flat pairs, in order, repeats
--                 allowed (conn:set_header appends; Retry-After of a 503 is appended last).
--                 C checks every name (token) and value (no CR, LF, NUL or other CTL) and
--                 answers 500 CONNECTION_SERVER_ERROR for the whole response if one is bad.
--   5 session       nil | { set = "<id>" } | { expire = true }   C writes the Set-Cookie line
--                 (src/session.c) with the configured flags
--   6 discard       true when the task's coroutine must not be pooled (stack or memory cap)
--
-- A streamed answer (conn:stream) returns nil, nil, nil, nil, nil, discard: C keeps its own
-- record of a begun stream (src/lua_api_http.c) and never answers such a request twice; it
-- ends a stream the action left open. M.result packs the six values into a table with these
-- names (streamed = true for a stream), for tests.
--
-- Owns: the request → conn mapping, the error envelope of web answers, the web log line.
-- Callers: lua_bridge.c (entry point `web` = M.from_c, through boot.lua). Never: formats header
-- text.
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"
local params_mod = require "keryx.params"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"

local M = {}

local web_cfg = core.config.server.web
local rawget, type, tostring = rawget, type, tostring
local now_ms, log_enabled = core.now_ms, core.log_enabled
local encode_response = pipeline.encode_response
-- The scheme the log line's URL names: the port speaks TLS when a certificate is configured.
local SCHEME = (web_cfg.tlsCert or "") ~= "" and "https://" or "http://"

-- JSON is UTF-8 by definition, but saying so stops clients and proxies guessing a legacy
-- charset for the body (README "What the C core enforces" has the C-decided errors' twin).
local JSON_CONTENT_TYPE = "application/json; charset=utf-8"
M.JSON_CONTENT_TYPE = JSON_CONTENT_TYPE

local function envelope(err, include_stack)
    local env = errors.to_envelope(err, { include_stack = include_stack, now_ms = now_ms() })
    return json.encode(env) or '{"error":{"message":"error","type":"CONNECTION_ACTION_RUN"}}'
end

-- A string answered under a content type the action chose is the body itself; anything
-- else is JSON, under the action's content type when it chose one (application/problem+json).
local function body_of(response, ctype)
    if ctype and type(response) == "string" then return response end
    return encode_response(response)
end

local function log_line(action, req, started, err, raw)
    if not log_enabled("info") then return end -- the URL is built only for the log line
    -- Without the query string: it may carry secret inputs, which the logged params redact.
    local url = SCHEME .. (req.host or "localhost") .. (req.path or req.target:match("^[^?]*"))
    pipeline.log_action("WEB", action.name, started, req.method, req.identifier, url, req.correlation_id, err,
        action, raw)
end

local function error_result(conn, err)
    local headers = rawget(conn, "_headers")
    if err.retry_after then
        headers = headers or {}
        local n = #headers
        headers[n + 1], headers[n + 2] = "Retry-After", tostring(err.retry_after)
    end
    return err.status or errors.status(err.type), envelope(err, web_cfg.includeStackInErrors), JSON_CONTENT_TYPE,
        headers, rawget(conn, "_session_op"), rawget(conn, "discard_thread") == true
end

--- The six values of M.web as one table (the names in this file's header comment; streamed =
--- true for a streamed answer): for tests and tools, never on the request path.
function M.result(status, body, content_type, headers, session, discard)
    return { status = status, body = body, content_type = content_type, headers = headers, session = session,
        discard = discard, streamed = status == nil or nil }
end

--- Entry point for HTTP (called by lua_bridge.c in a fresh task): the six values above.
---@param action_id integer
--- req: method, path, target, query?, body?, content_type?, host?, identifier, session_id?,
--- correlation_id?, params? (route params), as lua_bridge.c kx_lua_spawn_web builds it.
---@param req table
---@return integer|nil status, string|nil body, string|nil content_type
---@return table|nil headers, table|nil session, boolean discard
function M.web(action_id, req)
    -- The clock is read for the action log line only.
    local started = log_enabled("info") and core.clock_ms() or 0
    local action = pipeline.registry.list[action_id]
    local conn = conn_mod.new {
        type = "web",
        identifier = req.identifier,
        correlation_id = req.correlation_id,
        method = req.method,
        session_id = req.session_id,
        raw_body = action.raw_body and (req.body or "") or nil,
    }
    local raw, err
    if action.raw_body then raw = {} else raw, err = params_mod.from_request(req) end
    local response
    if raw then response, err = pipeline.act(action, raw, conn) end
    if conn_mod.streamed(conn) then
        -- The status line is out: an error midway (or the timeout) is for the log only.
        log_line(action, req, started, err, raw)
        return nil, nil, nil, nil, nil, rawget(conn, "discard_thread") == true
    end
    local ctype = rawget(conn, "_content_type")
    local body
    if not err then body, err = body_of(response, ctype) end
    log_line(action, req, started, err, raw)
    if err then return error_result(conn, err) end
    return rawget(conn, "status") or 200, body, ctype or JSON_CONTENT_TYPE, rawget(conn, "_headers"),
        rawget(conn, "_session_op"), rawget(conn, "discard_thread") == true
end

--- Entry point lua_bridge.c calls: the request as positional arguments (a table filled from C
--- costs a string lookup per field; this constructor costs none), then M.web.
function M.from_c(action_id, method, path, target, host, identifier, session_id, correlation_id, query, body,
                  content_type, params)
    return M.web(action_id, { method = method, path = path, target = target, host = host, identifier = identifier,
        session_id = session_id, correlation_id = correlation_id, query = query, body = body,
        content_type = content_type, params = params })
end

return M
