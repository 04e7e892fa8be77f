-- keryx.pipeline — one action run, the same for every transport (SPEC §9.2, reference §1.2):
-- find action → validate inputs → middleware before (list order) → run → middleware after
-- (always) → one action log line → the transport's answer (web, cli, websocket). Runs inside the request's
-- coroutine, so anything the action waits on yields to the event loop.
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"
local params_mod = require "keryx.params"
local conn_mod = require "keryx.conn"

local M = {}

local config = core.config
local web_cfg = config.server.web
local xpcall, traceback, type, tostring, floor, concat = xpcall, debug.traceback, type, tostring, math.floor, table.concat
local gsub = string.gsub
local rawget, rawset, ipairs, pairs, next = rawget, rawset, ipairs, pairs, next
local clock_ms, now_ms, log_enabled, core_log = core.clock_ms, core.now_ms, core.log_enabled, core.log
local arm_timeout, aborted = core.arm_timeout, core.aborted
local empty_params = "{}"

M.registry = { list = {}, by_name = {} }

-- Gives every raised error its traceback (typed ones too: stacks are shown where enabled)
-- and turns anything untyped into CONNECTION_ACTION_RUN.
local function on_error(e)
    local ok, tb = pcall(traceback, tostring(e), 2)
    return errors.from_any(e, ok and tb or nil)
end

-- LuaJIT does not call the xpcall handler for memory errors or for an error inside the
-- handler (e.g. after a stack overflow): such errors arrive as plain strings.
local function as_typed(e)
    if errors.is(e) then return e end
    return errors.from_any(e, nil)
end

local function wants_stack(conn)
    if conn.type == "cli" then return config.cli.includeStackInErrors end
    return web_cfg.includeStackInErrors
end

local function validation_error(verr, conn)
    local e = errors.new("CONNECTION_ACTION_PARAM_REQUIRED", verr.message, verr.key)
    if not verr.secret then e.value = verr.value end
    if wants_stack(conn) then e.stack = traceback("CONNECTION_ACTION_PARAM_REQUIRED: " .. verr.message, 2) end
    return e
end

local function timeout_error(action, ms)
    return errors.new("CONNECTION_ACTION_TIMEOUT", ("Action '%s' timed out after %dms"):format(action.name, ms))
end

local function run_middleware_and_action(action, params, conn)
    for _, mw in ipairs(action.middleware) do
        if mw.before then
            local replaced = mw.before(params, conn)
            if replaced ~= nil then params = replaced end
        end
    end
    return action.run(params, conn), params
end

--- Runs `action` with raw params for conn. Returns response, err (typed error or nil).
function M.act(action, raw, conn)
    conn.metadata = {}
    local ms = action.timeout or config.actions.timeout
    if ms > 0 then arm_timeout(ms) end
    local params, verr = raw, nil
    if action.inputs then
        params, verr = action.inputs:parse(raw)
        if not params then return nil, validation_error(verr, conn) end
    end
    local ok, response, final_params = xpcall(run_middleware_and_action, on_error, action, params, conn)
    local err
    if ok then
        params = final_params
    else
        err = as_typed(response)
        response = nil
        if err.type == "CONNECTION_ACTION_RUN" then
            -- The coroutine may have hit the stack or memory cap: do not pool it.
            conn.discard_thread = true
            if err.message:find("not enough memory", 1, true) then collectgarbage() end
        end
    end
    local timeout_err -- one object, so after hooks see the same error the caller gets
    if aborted() then
        timeout_err = timeout_error(action, ms)
        err, response = timeout_err, nil
    end
    for _, mw in ipairs(action.middleware) do
        if mw.after then
            local aok, replaced = xpcall(mw.after, on_error, params, conn, response, err)
            if not aok then err, response = as_typed(replaced), nil
            elseif replaced ~= nil then response = replaced end
        end
    end
    -- Whatever happened after the timer fired (an after hook parked and was woken with the
    -- generic abort, or swallowed it), the answer is the action's timeout.
    if aborted() then err, response = timeout_err or timeout_error(action, ms), nil end
    return response, err
end

-- ---- log line ---------------------------------------------------------------------------

local function log_params(action, raw)
    if raw == nil or next(raw) == nil then return empty_params end
    local max = config.logger.maxParamLength
    local shown = raw
    if action and action.inputs then shown = action.inputs:redact(raw, max) end
    return json.encode(shown) or "{}"
end

-- Client-chosen text (an unknown action's name, messages quoting it) must not start a new
-- log line or carry terminal escapes (CWE-117): control bytes are shown escaped.
local function clean(s)
    return (gsub(s, "%c", function(c) return ("\\x%02x"):format(c:byte()) end))
end

--- The action line (SPEC §9.8): empty pieces are left out with their space.
function M.log_action(kind, action_name, started, method, identifier, url, cor, err, action, raw)
    local level = "info"
    if not log_enabled(level) then return end
    local parts = {
        ("[ACTION:%s:%s]"):format(kind, err and "ERROR" or "OK"),
        action_name and clean(action_name) or "null",
        ("(%dms)"):format(floor(clock_ms() - started + 0.5)),
    }
    if method then parts[#parts + 1] = "[" .. method .. "]" end
    parts[#parts + 1] = identifier .. (url and ("(" .. url .. ")") or "")
    if cor then parts[#parts + 1] = "[cor:" .. cor .. "]" end
    if err then parts[#parts + 1] = "Error: " .. clean(err.message) end
    parts[#parts + 1] = log_params(action, raw)
    local line = concat(parts, " ")
    if err and err.stack and err.type == "CONNECTION_ACTION_RUN" then line = line .. "\n" .. err.stack end
    core_log(level, line)
end

-- ---- web -------------------------------------------------------------------------------

local function envelope(err, include_stack)
    local env = errors.to_envelope(err, { include_stack = include_stack, now_ms = now_ms() })
    return json.encode(env) or '{"error":{"message":"error","type":"CONNECTION_ACTION_RUN"}}'
end

local function encode_response(response)
    if response == nil then return "{}" end
    local body, err = json.encode(response)
    if body then return body end
    return nil, errors.new("CONNECTION_ACTION_RUN", "cannot encode the response as JSON: " .. tostring(err))
end

--- Entry point for HTTP (called by lua_bridge.c in a fresh task).
--- Returns status, body, extra header lines, content type.
function M.web(action_id, req)
    local started = clock_ms()
    local action = M.registry.list[action_id]
    local conn = conn_mod.new {
        type = "web",
        identifier = req.identifier,
        correlation_id = req.correlation_id,
        method = req.method,
        session_id = req.session_id,
    }
    local raw, perr = params_mod.from_request(req)
    local response, err
    if raw then
        response, err = M.act(action, raw, conn)
    else
        err = perr
    end
    local body
    if not err then
        body, err = encode_response(response)
    end
    if log_enabled("info") then -- the URL is built only for the log line
        -- Without the query string: it may carry secret inputs, which the logged params redact.
        local url = "http://" .. (req.host or "localhost") .. (req.path or req.target:match("^[^?]*"))
        M.log_action("WEB", action.name, started, req.method, req.identifier, url, req.correlation_id, err, action, raw)
    end
    local extra = rawget(conn, "response_headers")
    local cookie = rawget(conn, "_set_cookie")
    if cookie then extra = (extra or "") .. cookie end
    if err then
        if err.retry_after then
            extra = (extra or "") .. "Retry-After: " .. tostring(err.retry_after) .. "\r\n"
        end
        return err.status or errors.status(err.type), envelope(err, web_cfg.includeStackInErrors), extra,
            nil, rawget(conn, "discard_thread")
    end
    return rawget(conn, "status") or 200, body, extra, nil, rawget(conn, "discard_thread")
end

-- ---- websocket -------------------------------------------------------------------------
--
-- Replies (reference §6, JSON-compact) are assembled by hand so that messageId comes first
-- and the error keeps the reference's field order (message, type, timestamp, key, value,
-- stack). messageId is any JSON value the client sent, re-encoded; nil = absent = omitted.

local ERROR_FIELDS = { "message", "type", "timestamp", "key", "value", "stack" }

--- '{"messageId":<id>,"<field>":<body JSON>}' (no messageId when message_id is nil).
function M.ws_reply(message_id, field, body)
    local mid = message_id ~= nil and json.encode(message_id) or nil
    if mid then return '{"messageId":' .. mid .. ',"' .. field .. '":' .. body .. "}" end
    return '{"' .. field .. '":' .. body .. "}"
end

--- The error reply for err (typed, or anything: it becomes CONNECTION_ACTION_RUN); the stack
--- is included per WEB_SERVER_INCLUDE_STACK_IN_ERRORS.
function M.ws_error_reply(message_id, err)
    local body = errors.to_envelope(err, { include_stack = web_cfg.includeStackInErrors, now_ms = now_ms() }).error
    local parts = {}
    for _, k in ipairs(ERROR_FIELDS) do
        local v = body[k]
        if v ~= nil then
            local enc = json.encode(v) -- an unencodable key/value (app-supplied) is left out
            if enc then parts[#parts + 1] = '"' .. k .. '":' .. enc end
        end
    end
    return M.ws_reply(message_id, "error", "{" .. concat(parts, ",") .. "}")
end

-- The message's params: absent or null → {}; a JSON object → its entries (null values
-- dropped, as for a JSON body); anything else → CONNECTION_ACTION_PARAM_FORMATTING.
local function ws_params(p)
    if p == nil or p == json.null then return {} end
    if type(p) ~= "table" or json.is_array(p) or (next(p) ~= nil and p[1] ~= nil) then
        return nil, errors.new("CONNECTION_ACTION_PARAM_FORMATTING", "params must be a JSON object")
    end
    local out = {}
    for k, v in pairs(p) do
        if v ~= json.null then out[k] = v end
    end
    return out
end

--- Runs action `name` for a websocket conn (reference §6 messageType "action"): the same
--- validation, middleware, timeout and typed errors as HTTP, one `[ACTION:WEBSOCKET:…]` log
--- line. raw is the message's `params` as decoded (nil/null = {}, else a JSON object).
--- Returns the reply text ({"messageId":…,"response":…} or {"messageId":…,"error":…}) and
--- true when the task's coroutine must not be pooled (the action hit the stack or memory cap).
function M.websocket(socket_conn, name, raw, message_id)
    local started = clock_ms()
    local conn = conn_mod.for_message(socket_conn) -- request state of its own, session re-read
    local action_name = type(name) == "string" and name or nil
    local action = action_name and M.registry.by_name[action_name] or nil
    local response, err
    if not action then
        err = errors.new("CONNECTION_ACTION_NOT_FOUND",
            action_name and ("Action not found: " .. action_name) or "Action not found")
    else
        raw, err = ws_params(raw)
        if raw then response, err = M.act(action, raw, conn) end
    end
    local reply
    if not err then
        local body
        body, err = encode_response(response)
        if body then reply = M.ws_reply(message_id, "response", body) end
    end
    -- An unknown action has no schema saying which params are secret: its params are not logged.
    M.log_action("WEBSOCKET", action_name, started, "WEBSOCKET", conn.identifier, nil, conn.correlation_id,
        err, action, action and raw or nil)
    local discard = rawget(conn, "discard_thread") or (err ~= nil and err.type == "CONNECTION_ACTION_RUN")
    if err then reply = M.ws_error_reply(message_id, err) end
    return reply, discard and true or false
end

-- ---- cli -------------------------------------------------------------------------------

local function cli_args(argv)
    local raw, i = {}, 1
    while i <= #argv do
        local a = argv[i]
        if a == "-q" or a == "--quiet" then -- main.c reads these too (quiet logging)
            i = i + 1
        elseif a:sub(1, 2) == "--" and #a > 2 then
            local k, v = a:match("^%-%-([^=]+)=(.*)$")
            if k then
                i = i + 1
            else
                k = a:sub(3)
                local nxt = argv[i + 1]
                if nxt ~= nil and nxt:sub(1, 2) ~= "--" and nxt ~= "-q" then
                    v, i = nxt, i + 2
                else
                    v, i = "true", i + 1
                end
            end
            local old = raw[k]
            if old == nil then raw[k] = v
            elseif type(old) == "table" then old[#old + 1] = v
            else raw[k] = { old, v } end
        else
            return nil, errors.new("CONNECTION_ACTION_PARAM_FORMATTING", "unexpected argument '" .. a .. "' (use --name value)")
        end
    end
    return raw
end

--- Entry point for `keryx run`. Returns exit code, stdout text, stderr text.
function M.cli(name, argv)
    local started = clock_ms()
    local identifier = "cli:" .. (os.getenv("USER") or "unknown")
    local conn = conn_mod.new { type = "cli", identifier = identifier }
    local action = M.registry.by_name[name]
    local raw, err = cli_args(argv)
    local response
    if not action then
        err = errors.new("CONNECTION_ACTION_NOT_FOUND", "Action not found: " .. tostring(name))
    elseif raw then
        response, err = M.act(action, raw, conn)
    end
    M.log_action("CLI", name, started, nil, identifier, nil, nil, err, action, raw)
    if not err then
        local out, eerr = json.encode({ response = response == nil and {} or response })
        if out then return 0, out, nil end
        err = errors.new("CONNECTION_ACTION_RUN", "cannot encode the response as JSON: " .. tostring(eerr))
    end
    local env = errors.to_envelope(err, { include_stack = config.cli.includeStackInErrors, now_ms = now_ms() })
    local text = json.encode({ response = {}, error = env.error })
    return 1, nil, text
end

return M
