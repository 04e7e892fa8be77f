-- keryx.errors: typed errors and their JSON envelope.
--
-- Owns the type -> HTTP status table (Keryx's, plus the types the C core decides itself)
-- and the shape `{error = {message, type, timestamp, key?, value?, stack?}}`.
-- Called by the pipeline, middleware, the facade (`keryx.error`) and application code.
-- It never logs, never encodes JSON and never decides whether stacks are shown: the caller
-- passes that in (WEB_SERVER_INCLUDE_STACK_IN_ERRORS and friends).
--
-- Besides type and message, an error may carry:
--   public_message  what clients see instead of `message` where stacks are off (production):
--                   set on untyped errors and framework bugs, whose text names files, lines and
--                   whatever the failing code had in hand (security: no stack traces to clients in production).
--   detail          text for the log only, never answered (what Redis said on a failure).
--   status, retry_after, stack, cause.

local M = {}

local type, tostring, pairs, pcall, rawset = type, tostring, pairs, pcall, rawset
local setmetatable, getmetatable, error = setmetatable, getmetatable, error
local os_time, math_floor = os.time, math.floor

-- Type -> HTTP status. Unknown types answer 500.
local STATUS = {
    SERVER_INITIALIZATION = 500,
    SERVER_START = 500,
    SERVER_STOP = 500,
    CONFIG_ERROR = 500,
    INITIALIZER_VALIDATION = 500,
    ACTION_VALIDATION = 500,
    TASK_VALIDATION = 500,
    SERVER_VALIDATION = 500,
    CONNECTION_SESSION_NOT_FOUND = 401,
    CONNECTION_SERVER_ERROR = 500,
    CONNECTION_ACTION_NOT_FOUND = 404,
    CONNECTION_ACTION_PARAM_REQUIRED = 406,
    CONNECTION_ACTION_PARAM_DEFAULT = 406,
    CONNECTION_ACTION_TIMEOUT = 408,
    CONNECTION_TASK_DEFINITION = 500,
    CONNECTION_ACTION_PARAM_VALIDATION = 406,
    -- Keryx says 406; a malformed JSON body is the client's syntax error, so 400 with this type.
    CONNECTION_ACTION_PARAM_FORMATTING = 400,
    CONNECTION_ACTION_RUN = 500,
    CONNECTION_TYPE_NOT_FOUND = 406,
    CONNECTION_NOT_SUBSCRIBED = 406,
    CONNECTION_CHANNEL_AUTHORIZATION = 403,
    CONNECTION_CHANNEL_VALIDATION = 400,
    CONNECTION_RATE_LIMITED = 429,
    -- decided in C (same envelope, never a stack)
    CONNECTION_BAD_REQUEST = 400,
    CONNECTION_FORBIDDEN = 403,
    CONNECTION_REQUEST_TIMEOUT = 408,
    CONNECTION_PAYLOAD_TOO_LARGE = 413,
    CONNECTION_HEADERS_TOO_LARGE = 431,
    CONNECTION_SERVER_BUSY = 503,
    CHANNEL_NOT_FOUND = 404,
}

-- Constants so callers can write errors.types.CONNECTION_ACTION_RUN and typos fail loudly.
M.types = setmetatable({}, {
    __index = function(_, k)
        error("keryx.errors: unknown error type '" .. tostring(k) .. "'", 2)
    end,
    __newindex = function()
        error("keryx.errors.types is read-only", 2)
    end,
})
for name in pairs(STATUS) do
    rawset(M.types, name, name)
end

M.mt = {
    __tostring = function(e)
        return e.message
    end,
}

--- A typed error object: {type, message, key?, value?}. Misuse (non-string type) raises.
function M.new(err_type, message, key, value)
    if type(err_type) ~= "string" or err_type == "" then
        error("keryx.errors.new: type must be a non-empty string", 2)
    end
    if message == nil then
        message = err_type
    elseif type(message) ~= "string" then
        message = tostring(message)
    end
    return setmetatable({ type = err_type, message = message, key = key, value = value }, M.mt)
end

M.GENERIC_MESSAGE = "Internal server error"
M.UNAVAILABLE_MESSAGE = "Service unavailable, try again shortly"

--- A dependency (Redis, the password pool) cannot answer: 503 CONNECTION_SERVER_ERROR with
--- Retry-After: 1. message is answered as is, so it must say nothing internal;
--- detail goes to the log only. An app raising CONNECTION_SERVER_ERROR itself still gets 500.
function M.unavailable(message, detail)
    local e = M.new("CONNECTION_SERVER_ERROR", message or M.UNAVAILABLE_MESSAGE)
    e.status = 503
    e.retry_after = 1
    e.detail = detail
    return e
end

--- The framework's own Redis failure (outage, timeout, or an error reply such as OOM under
--- maxmemory): always the generic 503, in development too; what Redis said is logged only.
function M.redis_failure(err)
    return M.unavailable(nil, "Redis: " .. tostring(err))
end

--- A framework bug or an app bug the framework noticed (CONNECTION_ACTION_RUN): message is for
--- the log and for development; clients in production see the generic message.
function M.internal(message)
    local e = M.new("CONNECTION_ACTION_RUN", message)
    e.public_message = M.GENERIC_MESSAGE
    return e
end

--- error() with a typed error, blamed on the caller.
function M.raise(err_type, message, key, value)
    error(M.new(err_type, message, key, value), 2)
end

function M.is(e)
    return type(e) == "table" and getmetatable(e) == M.mt
end

--- HTTP status for a type; unknown types (and non-strings) are 500.
function M.status(err_type)
    return STATUS[err_type] or 500
end

function M.known(err_type)
    return STATUS[err_type] ~= nil
end

--- Any error value -> typed error. Typed errors pass through untouched; anything else
-- becomes CONNECTION_ACTION_RUN with message tostring(e), the traceback kept in `.stack`
-- for the log (and for the response only where the caller enables stacks).
function M.from_any(e, traceback)
    if M.is(e) then
        if traceback ~= nil and e.stack == nil then
            e.stack = traceback
        end
        return e
    end
    local ok, msg = pcall(tostring, e)
    if not ok or type(msg) ~= "string" then
        msg = "unknown error"
    elseif msg == "error in error handling" then
        -- LuaJIT's word for a handler that could not run: after an overflow of JIT-compiled
        -- frames it has no room left even for the smallest one.
        msg = "stack overflow (or out of memory) while handling an error: error in error handling"
    end
    local te = M.internal(msg)
    te.stack = traceback
    te.cause = e
    return te
end

--- The xpcall handler of every transport: keeps the traceback of whatever was raised (typed
--- errors too, for stacks where enabled) and turns anything untyped into CONNECTION_ACTION_RUN.
--- It runs on top of whatever raised. After a stack overflow LuaJIT leaves it almost no room
--- (JIT-compiled frames least of all): a C call there (a traceback) fails as "error in error
--- handling". So an overflow is handed back as it came — string.sub and type run without
--- growing the stack — and typed by the caller (pipeline as_typed, errors.from_any), without
--- a traceback. Anything else gets its traceback here, built in place.
local traceback, sub = debug.traceback, string.sub

local function with_traceback(e)
    if getmetatable(e) == M.mt then
        if e.stack == nil then e.stack = traceback(tostring(e), 3) end
        return e
    end
    if type(e) ~= "string" then return M.from_any(e, nil) end -- rare: tables, nil, numbers
    return setmetatable({ type = "CONNECTION_ACTION_RUN", message = e, public_message = M.GENERIC_MESSAGE,
        stack = traceback(e, 3), cause = e }, M.mt)
end

-- Kept this small on purpose: LuaJIT reserves a function's whole frame on entry, so the frame
-- that must fit after an overflow is this one, not with_traceback's.
function M.on_error(e)
    if type(e) == "string" and sub(e, -14) == "stack overflow" then return e end
    return with_traceback(e)
end

--- A waiting binding answers nil, "aborted" once the action's timeout fired while it was
--- parked: raise CONNECTION_ACTION_TIMEOUT so the action stops there. Else returns v, err.
function M.check_aborted(v, err)
    if v == nil and err == "aborted" then error(M.new("CONNECTION_ACTION_TIMEOUT", "action timed out"), 0) end
    return v, err
end

-- An error the framework built without raising it (an unknown action, a timeout) has no
-- traceback of its own; where stacks are shown every error raised in Lua carries one, so it
-- gets the answering transport's (level 4 under pcall: the caller of to_envelope).
local function stack_of(e, opts)
    local stack = opts.stack
    if stack == nil then stack = e.stack end
    if type(stack) == "string" then return stack end
    local text = e.type .. ": " .. e.message .. (e.detail and (" (" .. e.detail .. ")") or "")
    local ok, tb = pcall(debug.traceback, text, 4)
    return ok and tb or nil
end

--- The response envelope {error = {...}} (a fresh table; encode it with keryx.json).
-- opts.now_ms: timestamp (default os.time()*1000); opts.include_stack: add `stack` (opts.stack,
-- the error's own `.stack`, or a traceback taken here) and show `message`; without it an
-- error's public_message replaces its message.
function M.to_envelope(e, opts)
    opts = opts or {}
    if not M.is(e) then
        e = M.from_any(e)
    end
    local now = opts.now_ms
    if type(now) ~= "number" then
        now = os_time() * 1000
    end
    local message = e.message
    if not opts.include_stack and type(e.public_message) == "string" then message = e.public_message end
    local body = {
        message = message,
        type = e.type,
        timestamp = math_floor(now),
        key = e.key,
        value = e.value,
    }
    if opts.include_stack then body.stack = stack_of(e, opts) end
    return { error = body }
end

return M
