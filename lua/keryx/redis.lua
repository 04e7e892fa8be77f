-- keryx.redis — Redis from actions. Every call yields the request's coroutine while Redis
-- answers; nothing blocks the server (SPEC §3, §9.14).
--   keryx.redis.call("GET", key)          → value | false, "ERR …" | nil, "closed"/"timeout"
--   keryx.redis.pipeline{{"INCR", k}, …}  → { value or {err = "…"}, … } | nil, "closed"/"timeout"
--   keryx.redis.null                      → what a nil reply becomes (== keryx.json.null)
--   keryx.redis.ok(v, err)                → v, or raises: 503 CONNECTION_SERVER_ERROR when Redis is
--                                           unreachable, 500 for an error reply
local core = require "keryx.core"
local errors = require "keryx.errors"

local M = {}
local redis_call, redis_pipeline = core.redis_call, core.redis_pipeline

M.null = core.redis_null

local check_abort = errors.check_aborted

function M.call(...)
    return check_abort(redis_call(...))
end

function M.pipeline(commands)
    return check_abort(redis_pipeline(commands))
end

--- True while the connection to Redis is up.
M.ready = core.redis_ready

--- Unwraps a call's result for code that cannot go on without Redis.
function M.ok(v, err)
    if v ~= nil and v ~= false then return v end
    if v == false then error(errors.new("CONNECTION_ACTION_RUN", "Redis error: " .. tostring(err)), 2) end
    error(errors.unavailable("Redis is unavailable (" .. tostring(err) .. "), try again shortly"), 2)
end

return M
