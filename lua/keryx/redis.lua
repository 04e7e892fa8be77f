-- keryx.redis — Redis from actions. Every call yields the request's coroutine while Redis
-- answers; nothing blocks the server.
--   keryx.redis.call("GET", key)          → value | false, "ERR …" | nil, "closed"/"timeout"
--   keryx.redis.pipeline{{"INCR", k}, …}  → { value or {err = "…"}, … } | nil, "closed"/"timeout"
--   keryx.redis.null                      → what a nil reply becomes (== keryx.json.null)
--   keryx.redis.ok(v, err)                → v, or raises 503 CONNECTION_SERVER_ERROR with a generic
--                                           message (Redis unreachable, too slow, or an error reply
--                                           such as OOM); what Redis said goes to the log only
--   keryx.redis.ok_all(res, err)          → res of a pipeline, or raises as ok, also when any of its
--                                           entries is an error reply
local core = require "keryx.core"
local errors = require "keryx.errors"

local M = {}
local type, ipairs, error = type, ipairs, error
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
    error(errors.redis_failure(err), 2)
end

--- Unwraps a pipeline's result: every entry must have succeeded.
function M.ok_all(res, err)
    if res == nil or res == false then error(errors.redis_failure(err), 2) end
    for _, r in ipairs(res) do
        if type(r) == "table" and r.err then error(errors.redis_failure(r.err), 2) end
    end
    return res
end

return M
