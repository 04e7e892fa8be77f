-- keryx.pipeline — one action run, the same for every transport, in Keryx's order:
-- find action → validate inputs → middleware before (list order) → run → middleware after
-- (always) → one action log line. Runs inside the request's coroutine, so anything the action
-- waits on yields to the event loop.
--
-- Owns: the action registry, act, log_action and the JSON encoding of a response.
-- Callers: the transports (keryx.transport.web / websocket / cli) and boot.lua.
-- Never: shapes a transport's answer (status, headers, reply text, exit code): each
-- transport file does that for itself.
local core = require "keryx.core"
local errors = require "keryx.errors"
local json = require "keryx.json"

local M = {}

local config = core.config
local web_cfg = config.server.web
local xpcall, traceback, tostring, floor, concat = xpcall, debug.traceback, tostring, math.floor, table.concat
local gsub = string.gsub
local ipairs, pairs, next = ipairs, pairs, next
local clock_ms, log_enabled, core_log = core.clock_ms, core.log_enabled, core.log
local metrics_action = core.metrics_action
local observability = config.observability
local arm_timeout, aborted = core.arm_timeout, core.aborted
local empty_params = "{}"

M.registry = { list = {}, by_name = {} }

local on_error = errors.on_error

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

local function act(action, raw, conn)
    conn.metadata = {}
    local ms = action.timeout or config.actions.timeout
    if ms > 0 then arm_timeout(ms) end
    local params = raw
    if action.inputs then
        local verr
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
    local middleware = action.middleware
    if middleware[1] == nil then return response, err end
    for _, mw in ipairs(middleware) do
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

--- Runs `action` with raw params for conn. Returns response, err (typed error or nil). Every
--- run is counted for the metrics (core.metrics_action) while they are on (OTEL_METRICS_ENABLED).
function M.act(action, raw, conn)
    -- Off (the default), a run costs no clock reads and no call into C for the metrics.
    if not observability.enabled then return act(action, raw, conn) end
    local started = clock_ms()
    local response, err = act(action, raw, conn)
    metrics_action(action.name, err == nil, clock_ms() - started)
    return response, err
end

-- ---- log line ---------------------------------------------------------------------------

-- Framework endpoints (internal: OAuth) carry codes, tokens, PKCE verifiers and the sign-in
-- form's password: their log line names the keys only.
local function secret_params(raw)
    local out = {}
    for k in pairs(raw) do out[k] = "[[secret]]" end
    return out
end

local function log_params(action, raw)
    if raw == nil or next(raw) == nil then return empty_params end
    if action and action.internal then return json.encode(secret_params(raw)) or "{}" end
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

-- LOG_FORMAT=json: the action line's facts as fields beside "message" (built only then).
local log_json, log_fields = config.logger.json, core.log_fields
local HAS_IP = { WEB = true, WEBSOCKET = true, MCP = true }

local function action_fields(kind, action_name, ms, method, identifier, url, cor, err)
    return {
        action = action_name, connection_type = kind:lower(), status = err and "ERROR" or "OK", duration_ms = ms,
        method = method, url = url, correlation_id = cor, identifier = identifier,
        ip = HAS_IP[kind] and identifier or nil, error = err and err.message, error_type = err and err.type,
    }
end

--- The action line: empty pieces are left out with their space, no trailing space. In the JSON
--- format the same line is the "message", with action_fields beside it.
function M.log_action(kind, action_name, started, method, identifier, url, cor, err, action, raw)
    local level = "info"
    if not log_enabled(level) then return end
    local ms = floor(clock_ms() - started + 0.5)
    local parts = {
        ("[ACTION:%s:%s]"):format(kind, err and "ERROR" or "OK"),
        action_name and clean(action_name) or "null",
        ("(%dms)"):format(ms),
    }
    if method then parts[#parts + 1] = "[" .. method .. "]" end
    parts[#parts + 1] = identifier .. (url and ("(" .. url .. ")") or "")
    if cor then parts[#parts + 1] = "[cor:" .. cor .. "]" end
    if err then
        parts[#parts + 1] = "Error: " .. clean(err.message) .. (err.detail and (" (" .. clean(err.detail) .. ")") or "")
    end
    parts[#parts + 1] = log_params(action, raw)
    local line = concat(parts, " ")
    if err and err.stack and err.type == "CONNECTION_ACTION_RUN" then line = line .. "\n" .. err.stack end
    if log_json then
        return log_fields(level, line, action_fields(kind, action_name, ms, method, identifier, url, cor, err))
    end
    core_log(level, line)
end

--- The action's response as JSON text ({} for nil), or nil, a CONNECTION_ACTION_RUN error.
function M.encode_response(response)
    if response == nil then return "{}" end
    local body, err = json.encode(response)
    if body then return body end
    return nil, errors.internal("cannot encode the response as JSON: " .. tostring(err))
end

return M
